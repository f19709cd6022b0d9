"""Two gateways of one zone share the data: write through one, read and list
through the other; a multipart upload spread over both; versioning set on
one is honoured by the other.  Skips unless S3_ENDPOINTS names two gateways."""

import hashlib
import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    MiB,
    expect_error,
    get_body,
    md5_hex,
    multipart_etag,
    random_bytes,
    two_gateways,
)

pytestmark = two_gateways


@pytest.fixture
def gw(s3_clients):
    return s3_clients[0], s3_clients[1]


def test_a_policy_set_through_one_gateway_binds_the_other(gw, bucket_factory):
    g0, g1 = gw
    name = bucket_factory(client=g0)
    g0.put_object(Bucket=name, Key="k", Body=b"k")
    assert get_body(g1, name, "k") == b"k"  # g1 has the bucket cached now
    g0.put_bucket_policy(Bucket=name, Policy=json.dumps({"Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/*"}]}))
    # Within the bucket cache's TTL (rgw_cache_ttl_ms, 2 s by default).
    deadline = time.time() + 10
    while True:
        try:
            g1.get_object(Bucket=name, Key="k")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "AccessDenied"
            break
        assert time.time() < deadline, "gateway 1 never applied the policy set through gateway 0"
        time.sleep(0.2)
    g0.delete_bucket_policy(Bucket=name)


def test_bucket_visible_on_both(gw, bucket_factory):
    g0, g1 = gw
    name = bucket_factory(client=g0)
    g1.head_bucket(Bucket=name)
    assert name in {b["Name"] for b in g1.list_buckets()["Buckets"]}
    g1.delete_bucket(Bucket=name)
    with expect_error({"404", "NoSuchBucket"}, 404):
        g0.head_bucket(Bucket=name)


def test_write_one_read_list_other(gw, bucket_factory):
    g0, g1 = gw
    b = bucket_factory(client=g0)
    small = b"written through gateway 0"
    big = random_bytes(9 * MiB + 1)
    g0.put_object(Bucket=b, Key="small", Body=small, Metadata={"via": "gw0"})
    g0.put_object(Bucket=b, Key="dir/big", Body=big)
    g1.put_object(Bucket=b, Key="dir/from-1", Body=b"written through gateway 1")

    assert get_body(g1, b, "small") == small
    assert g1.head_object(Bucket=b, Key="small")["Metadata"] == {"via": "gw0"}
    got = g1.get_object(Bucket=b, Key="dir/big")
    assert got["ETag"] == f'"{md5_hex(big)}"'
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(big).digest()
    assert g1.get_object(Bucket=b, Key="dir/big", Range="bytes=4194300-4194309")["Body"].read() == big[4194300:4194310]
    assert get_body(g0, b, "dir/from-1") == b"written through gateway 1"

    for g in (g0, g1):
        page = g.list_objects_v2(Bucket=b)
        assert [o["Key"] for o in page["Contents"]] == ["dir/big", "dir/from-1", "small"]
        page = g.list_objects_v2(Bucket=b, Delimiter="/")
        assert [c["Prefix"] for c in page["CommonPrefixes"]] == ["dir/"]

    # Overwrite and delete through one, observed through the other.
    g1.put_object(Bucket=b, Key="small", Body=b"v2")
    assert get_body(g0, b, "small") == b"v2"
    g0.delete_object(Bucket=b, Key="small")
    with expect_error("NoSuchKey", 404):
        g1.get_object(Bucket=b, Key="small")
    assert [o["Key"] for o in g1.list_objects_v2(Bucket=b)["Contents"]] == ["dir/big", "dir/from-1"]


def test_multipart_across_gateways(gw, bucket_factory):
    g0, g1 = gw
    b = bucket_factory(client=g0)
    parts = [random_bytes(6 * MiB) for _ in range(4)] + [random_bytes(123)]
    uid = g0.create_multipart_upload(Bucket=b, Key="spread")["UploadId"]
    assert [u["UploadId"] for u in g1.list_multipart_uploads(Bucket=b)["Uploads"]] == [uid]
    done = []
    for n, data in enumerate(parts, start=1):
        g = g0 if n % 2 else g1
        r = g.upload_part(Bucket=b, Key="spread", UploadId=uid, PartNumber=n, Body=data)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    for g in (g0, g1):
        listed = g.list_parts(Bucket=b, Key="spread", UploadId=uid)["Parts"]
        assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [
            (d["PartNumber"], d["ETag"], len(p)) for d, p in zip(done, parts)
        ]
    res = g1.complete_multipart_upload(Bucket=b, Key="spread", UploadId=uid, MultipartUpload={"Parts": done})
    assert res["ETag"] == multipart_etag(parts)
    got = g0.get_object(Bucket=b, Key="spread")
    assert got["ETag"] == multipart_etag(parts)
    assert hashlib.sha256(got["Body"].read()).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()
    assert not g0.list_multipart_uploads(Bucket=b).get("Uploads")


def test_abort_on_other_gateway(gw, bucket_factory):
    g0, g1 = gw
    b = bucket_factory(client=g0)
    uid = g0.create_multipart_upload(Bucket=b, Key="k")["UploadId"]
    g0.upload_part(Bucket=b, Key="k", UploadId=uid, PartNumber=1, Body=b"x")
    g1.abort_multipart_upload(Bucket=b, Key="k", UploadId=uid)
    assert not g0.list_multipart_uploads(Bucket=b).get("Uploads")
    with expect_error("NoSuchUpload", 404):
        g0.list_parts(Bucket=b, Key="k", UploadId=uid)


def test_versioning_shared(gw, bucket_factory):
    g0, g1 = gw
    b = bucket_factory(client=g0)
    g0.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    assert g1.get_bucket_versioning(Bucket=b)["Status"] == "Enabled"
    v1 = g1.put_object(Bucket=b, Key="k", Body=b"one")["VersionId"]
    v2 = g0.put_object(Bucket=b, Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and "null" not in (v1, v2)
    marker = g1.delete_object(Bucket=b, Key="k")["VersionId"]
    with expect_error("NoSuchKey", 404):
        g0.get_object(Bucket=b, Key="k")
    for g in (g0, g1):
        lv = g.list_object_versions(Bucket=b)
        assert [v["VersionId"] for v in lv["Versions"]] == [v2, v1]
        assert [(m["VersionId"], m["IsLatest"]) for m in lv["DeleteMarkers"]] == [(marker, True)]
        assert get_body(g, b, "k", VersionId=v1) == b"one"
    g0.delete_object(Bucket=b, Key="k", VersionId=marker)
    assert get_body(g1, b, "k") == b"two"
    g1.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Suspended"})
    assert g0.get_bucket_versioning(Bucket=b)["Status"] == "Suspended"
    assert g0.put_object(Bucket=b, Key="k2", Body=b"n").get("VersionId", "null") == "null"
