"""Everything a client does in one zone is visible, identical, in the other."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import os
import subprocess
import time
import tomllib

import pytest
from botocore.exceptions import ClientError

from conftest import caught_up, versions, wait_synced

MiB = 1024 * 1024


def test_versioned_bucket_keeps_every_version_in_the_same_order(zone_a, zone_b, bucket):
    zone_a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    wait_synced()
    assert zone_b.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    for i in range(3):
        zone_a.put_object(Bucket=bucket, Key="doc", Body=f"a{i}".encode())
        zone_b.put_object(Bucket=bucket, Key="doc", Body=f"b{i}".encode())
    zone_b.put_object(Bucket=bucket, Key="gone", Body=b"x")
    zone_a.delete_object(Bucket=bucket, Key="doc")  # a delete marker
    wait_synced()
    va, vb = versions(zone_a, bucket), versions(zone_b, bucket)
    assert va == vb
    assert len([v for v in va if v[1] == "doc"]) == 7
    # The newest stays current in both zones: the delete marker.
    for c in (zone_a, zone_b):
        with pytest.raises(ClientError) as e:
            c.get_object(Bucket=bucket, Key="doc")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # Removing one version by id replicates.
    vid = next(v[2] for v in va if v[1] == "gone")
    zone_a.delete_object(Bucket=bucket, Key="gone", VersionId=vid)
    wait_synced()
    assert versions(zone_a, bucket) == versions(zone_b, bucket)
    assert not [v for v in versions(zone_b, bucket) if v[1] == "gone"]


def test_suspended_bucket_null_versions(zone_a, zone_b, bucket):
    zone_a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    zone_a.put_object(Bucket=bucket, Key="k", Body=b"v1")
    zone_a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    zone_a.put_object(Bucket=bucket, Key="k", Body=b"null-1")
    zone_a.put_object(Bucket=bucket, Key="k", Body=b"null-2")
    wait_synced()
    assert versions(zone_a, bucket) == versions(zone_b, bucket)
    assert zone_b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"null-2"
    assert zone_b.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"


def test_multipart_copy_metadata_tags_and_acl_arrive_identical(zone_a, zone_b, bucket):
    parts = [bytes([i]) * (5 * MiB) for i in range(2)] + [b"tail" * 1000]
    up = zone_a.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="application/x-test", Metadata={"color": "blue"})
    done = []
    for n, p in enumerate(parts, 1):
        r = zone_a.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=p)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    zone_a.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    zone_a.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    zone_a.put_object(Bucket=bucket, Key="meta", Body=b"m", Metadata={"owner": "ops"}, ContentType="text/plain", CacheControl="no-cache")
    zone_a.put_object_tagging(Bucket=bucket, Key="meta", Tagging={"TagSet": [{"Key": "env", "Value": "prod"}]})
    zone_a.put_object_acl(Bucket=bucket, Key="meta", ACL="public-read")
    zone_a.put_object(Bucket=bucket, Key="empty", Body=b"")
    wait_synced()
    body = b"".join(parts)
    for key in ("mp", "copy"):
        ha, hb = zone_a.head_object(Bucket=bucket, Key=key), zone_b.head_object(Bucket=bucket, Key=key)
        assert ha["ETag"] == hb["ETag"]
        assert ha["LastModified"] == hb["LastModified"]
        got = zone_b.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(body).digest()
        # The kept checksum (and its type) travel with the version.
        sums = [
            {k: v for k, v in c.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED").items() if k.startswith("Checksum")}
            for c in (zone_a, zone_b)
        ]
        assert sums[0] == sums[1] and sums[0], sums
    assert zone_b.head_object(Bucket=bucket, Key="mp")["ETag"].endswith('-3"')
    p2 = zone_b.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert p2["Body"].read() == parts[1]
    hb = zone_b.head_object(Bucket=bucket, Key="meta")
    assert hb["Metadata"] == {"owner": "ops"} and hb["ContentType"] == "text/plain" and hb["CacheControl"] == "no-cache"
    assert zone_b.head_object(Bucket=bucket, Key="mp")["Metadata"] == {"color": "blue"}
    assert zone_b.get_object_tagging(Bucket=bucket, Key="meta")["TagSet"] == [{"Key": "env", "Value": "prod"}]
    grants = zone_b.get_object_acl(Bucket=bucket, Key="meta")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)
    assert zone_b.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""


def test_bucket_settings_made_on_the_secondary_reach_the_master(zone_a, zone_b, bucket):
    zone_b.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    # Forwarded to the master: there at once.
    assert zone_a.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "storage"}]
    zone_b.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert zone_a.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    zone_b.put_bucket_acl(Bucket=bucket, ACL="public-read")
    grants = zone_a.get_bucket_acl(Bucket=bucket)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") for g in grants)


def test_a_bucket_created_and_deleted_in_one_zone_comes_and_goes_in_the_other(zone_a, zone_b):
    zone_b.create_bucket(Bucket="sync-lifecycle")  # through the secondary
    zone_b.put_object(Bucket="sync-lifecycle", Key="x", Body=b"1")
    wait_synced()
    assert zone_a.get_object(Bucket="sync-lifecycle", Key="x")["Body"].read() == b"1"
    zone_a.delete_object(Bucket="sync-lifecycle", Key="x")
    wait_synced()
    zone_a.delete_bucket(Bucket="sync-lifecycle")
    wait_synced()
    names = {b["Name"] for b in zone_b.list_buckets()["Buckets"]}
    assert "sync-lifecycle" not in names


def test_the_seeds_conflict_resolver_leaves_one_version_in_both_zones(zone_a, zone_b, bucket):
    zone_a.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    wait_synced()

    def writes(client, tag):
        for i in range(5):
            client.put_object(Bucket=bucket, Key="contested", Body=f"{tag}{i}".encode())

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda a: writes(*a), [(zone_a, "a"), (zone_b, "b")]))
    wait_synced()
    assert versions(zone_a, bucket) == versions(zone_b, bucket)
    # The seed's resolver (conflict_resolver.py), 'last_modified' strategy, run against zone A.
    response = zone_a.list_object_versions(Bucket=bucket, Prefix="contested")
    vs = sorted(response.get("Versions", []), key=lambda x: x["LastModified"], reverse=True)
    assert len(vs) == 10, "both zones' versions are preserved"
    winner = vs[0]
    for v in vs:
        if v["VersionId"] != winner["VersionId"]:
            zone_a.delete_object(Bucket=bucket, Key="contested", VersionId=v["VersionId"])
    wait_synced()
    for c in (zone_a, zone_b):
        left = c.list_object_versions(Bucket=bucket, Prefix="contested").get("Versions", [])
        assert [v["VersionId"] for v in left] == [winner["VersionId"]]


def _meridian(conf: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([os.environ["MERIDIAN_BIN"], "-c", conf, *args], capture_output=True, check=True)


def test_encrypted_objects_arrive_sealed_and_sse_c_stays_home(zone_a, zone_b, bucket):
    mark = b"SYNC-PLAINTEXT-CANARY;"
    kms_body, default_body = mark * 5000, mark * 3000
    zone_a.put_object(Bucket=bucket, Key="kms", Body=kms_body, ServerSideEncryption="aws:kms",
                      SSEKMSKeyId="testkey-1")
    zone_a.put_object(Bucket=bucket, Key="default", Body=default_body)
    wait_synced()
    got = zone_b.get_object(Bucket=bucket, Key="kms")
    assert got["Body"].read() == kms_body
    assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == "testkey-1"
    assert got["ETag"] == zone_a.head_object(Bucket=bucket, Key="kms")["ETag"]
    got = zone_b.get_object(Bucket=bucket, Key="default")
    assert got["Body"].read() == default_body and got["ServerSideEncryption"] == "AES256"
    # Zone B sealed what it stored: none of its stripes of the bucket is plaintext.
    conf_b = os.environ["ZONE_B_CONF"]
    bid = json.loads(_meridian(conf_b, "--format", "json", "bucket", "stats", "--bucket", bucket).stdout)["id"]
    with open(conf_b, "rb") as f:
        cfg = tomllib.load(f)
    zone = cfg["gateway"]["0"].get("zone") or cfg["global"]["rgw_zone"]
    data_pool = f"{zone}.meridian.buckets.data"
    stripes = [o for o in _meridian(conf_b, "ls", "-p", data_pool).stdout.decode().split() if o.startswith(bid + "_")]
    assert len(stripes) >= 2, stripes
    for o in stripes:
        assert mark not in _meridian(conf_b, "get", "-p", data_pool, o, "-").stdout, o
    # SSE-C data cannot be read without its owner's key: it stays in zone A,
    # zone B says why in its sync error log (and is not "caught up" until an
    # operator has seen and removed the entry).
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": base64.b64encode(hashlib.md5(key).digest()).decode()}
    zone_a.put_object(Bucket=bucket, Key="ssec", Body=mark, **ssec)
    deadline = time.time() + 90
    errors = []
    while time.time() < deadline and not errors:
        time.sleep(1)
        errors = json.loads(_meridian(conf_b, "--format", "json", "sync", "error", "list", "--bucket", bucket).stdout)
    assert [e["entry"]["key"] for e in errors] == ["ssec"], errors
    assert "cannot be replicated" in errors[0]["entry"]["error"], errors
    assert not caught_up(conf_b)
    _meridian(conf_b, "sync", "error", "delete", "--error-marker", errors[0]["marker"])
    wait_synced()
    assert zone_a.get_object(Bucket=bucket, Key="ssec", **ssec)["Body"].read() == mark
    with pytest.raises(ClientError):
        zone_b.head_object(Bucket=bucket, Key="ssec", **ssec)
