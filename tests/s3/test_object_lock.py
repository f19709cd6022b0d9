"""Object lock: buckets created with it (versioned for good), default
retention, GOVERNANCE and COMPLIANCE retention and legal hold per version,
who may bypass GOVERNANCE, and every delete path (DeleteObject,
DeleteObjects, lifecycle) refusing to remove a protected version until its
protection ends; plus the requests S3 refuses."""

import datetime
import json
import os
import time

import pytest

from conftest import expect_error, meridian, meridian_only

DAY_S = float(os.environ.get("MERIDIAN_LC_DAY_S", "0"))


def in_seconds(s):
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=s)


@pytest.fixture
def locked(s3, bucket_factory):
    """A bucket created with object lock."""
    return bucket_factory(ObjectLockEnabledForBucket=True)


def delete_version(s3, bucket, key, vid, **kw):
    return s3.delete_object(Bucket=bucket, Key=key, VersionId=vid, **kw)


def test_a_bucket_created_with_object_lock_is_versioned_for_good(s3, locked):
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"
    cfg = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]
    assert cfg["ObjectLockEnabled"] == "Enabled" and "Rule" not in cfg
    with expect_error("InvalidBucketState", 409):
        s3.put_bucket_versioning(Bucket=locked, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=locked)["Status"] == "Enabled"


def test_governance_retention_holds_unless_the_owner_bypasses_it(s3, s3_b, locked):
    until = in_seconds(3600)
    v = s3.put_object(
        Bucket=locked, Key="k", Body=b"kept", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )["VersionId"]
    head = s3.head_object(Bucket=locked, Key="k")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert abs((head["ObjectLockRetainUntilDate"] - until).total_seconds()) < 1
    r = s3.get_object_retention(Bucket=locked, Key="k")["Retention"]
    assert r["Mode"] == "GOVERNANCE"
    with expect_error("AccessDenied", 403):
        delete_version(s3, locked, "k", v)
    # A delete without a version id only stacks a delete marker on it.
    marker = s3.delete_object(Bucket=locked, Key="k")
    assert marker["DeleteMarker"] is True
    assert s3.get_object(Bucket=locked, Key="k", VersionId=v)["Body"].read() == b"kept"
    # Shortening needs the bypass, too.
    with expect_error("AccessDenied", 403):
        s3.put_object_retention(
            Bucket=locked, Key="k", VersionId=v,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": in_seconds(60)},
        )
    # Another user who may write the bucket may not bypass the owner's retention.
    s3.put_bucket_acl(Bucket=locked, GrantWrite=f'id="{s3_b.list_buckets()["Owner"]["ID"]}"',
                      GrantFullControl=f'id="{s3.list_buckets()["Owner"]["ID"]}"')
    with expect_error("AccessDenied", 403):
        delete_version(s3_b, locked, "k", v, BypassGovernanceRetention=True)
    delete_version(s3, locked, "k", v, BypassGovernanceRetention=True)
    with expect_error({"NoSuchVersion", "404"}, 404):
        s3.head_object(Bucket=locked, Key="k", VersionId=v)


def test_compliance_retention_holds_until_it_ends(s3, locked):
    v = s3.put_object(
        Bucket=locked, Key="c", Body=b"c", ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=in_seconds(4)
    )["VersionId"]
    with expect_error("AccessDenied", 403):
        delete_version(s3, locked, "c", v, BypassGovernanceRetention=True)
    for weaker in ({"Mode": "COMPLIANCE", "RetainUntilDate": in_seconds(1)},
                   {"Mode": "GOVERNANCE", "RetainUntilDate": in_seconds(3600)}):
        with expect_error("AccessDenied", 403):
            s3.put_object_retention(Bucket=locked, Key="c", VersionId=v, Retention=weaker,
                                    BypassGovernanceRetention=True)
    # Extending is always allowed.
    s3.put_object_retention(Bucket=locked, Key="c", VersionId=v,
                            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": in_seconds(6)})
    time.sleep(3)
    with expect_error("AccessDenied", 403):
        delete_version(s3, locked, "c", v)
    time.sleep(4)
    delete_version(s3, locked, "c", v)
    assert s3.list_object_versions(Bucket=locked).get("Versions", []) == []


def test_legal_hold_holds_whatever_the_retention(s3, locked):
    v = s3.put_object(Bucket=locked, Key="h", Body=b"h", ObjectLockLegalHoldStatus="ON")["VersionId"]
    assert s3.head_object(Bucket=locked, Key="h")["ObjectLockLegalHoldStatus"] == "ON"
    with expect_error("AccessDenied", 403):
        delete_version(s3, locked, "h", v, BypassGovernanceRetention=True)
    s3.put_object_legal_hold(Bucket=locked, Key="h", VersionId=v, LegalHold={"Status": "OFF"})
    assert s3.get_object_legal_hold(Bucket=locked, Key="h")["LegalHold"]["Status"] == "OFF"
    delete_version(s3, locked, "h", v)


def test_default_retention_applies_to_new_versions_and_delete_objects_honours_it(s3, locked):
    s3.put_object(Bucket=locked, Key="before", Body=b"b")
    s3.put_object_lock_configuration(
        Bucket=locked,
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                 "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}},
    )
    rule = s3.get_object_lock_configuration(Bucket=locked)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}
    after = s3.put_object(Bucket=locked, Key="after", Body=b"a")["VersionId"]
    head = s3.head_object(Bucket=locked, Key="after")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    left = head["ObjectLockRetainUntilDate"] - in_seconds(0)
    assert datetime.timedelta(hours=23) < left <= datetime.timedelta(days=1)
    before = s3.head_object(Bucket=locked, Key="before")
    assert "ObjectLockMode" not in before
    out = s3.delete_objects(Bucket=locked, Delete={"Objects": [
        {"Key": "after", "VersionId": after},
        {"Key": "before", "VersionId": before["VersionId"]},
    ]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["before"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("after", "AccessDenied")]
    # A copy gets the destination's default, not its source's retention.
    s3.put_object_lock_configuration(
        Bucket=locked, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
    )
    s3.copy_object(Bucket=locked, Key="copy", CopySource={"Bucket": locked, "Key": "after"})
    assert "ObjectLockMode" not in s3.head_object(Bucket=locked, Key="copy")


@meridian_only("needs days of seconds (rgw_lc_debug_interval) and `meridian lc`")
def test_lifecycle_leaves_protected_versions_alone(s3, locked):
    assert DAY_S > 0
    s3.put_bucket_lifecycle_configuration(
        Bucket=locked,
        LifecycleConfiguration={"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
                                           "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]},
    )
    held = s3.put_object(Bucket=locked, Key="p", Body=b"1", ObjectLockMode="GOVERNANCE",
                         ObjectLockRetainUntilDate=in_seconds(3600))["VersionId"]
    free = s3.put_object(Bucket=locked, Key="q", Body=b"1")["VersionId"]
    s3.put_object(Bucket=locked, Key="p", Body=b"2")
    s3.put_object(Bucket=locked, Key="q", Body=b"2")
    time.sleep(DAY_S * 1.5)
    done = meridian("lc", "process", "--bucket", locked)
    assert [d["status"] for d in done] == ["COMPLETE"], done
    # (The gateways' own lifecycle worker may have taken q's old version first.)
    assert done[0]["kept_by_object_lock"] == 1, done
    assert s3.get_object(Bucket=locked, Key="p", VersionId=held)["Body"].read() == b"1"
    with expect_error({"NoSuchVersion", "404"}, 404):
        s3.head_object(Bucket=locked, Key="q", VersionId=free)


def test_object_lock_requests_s3_refuses(s3, bucket, bucket_factory):
    with expect_error("ObjectLockConfigurationNotFoundError", 404):
        s3.get_object_lock_configuration(Bucket=bucket)
    with expect_error("InvalidRequest", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=in_seconds(60))
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with expect_error("InvalidRequest", 400):
        s3.put_object_legal_hold(Bucket=bucket, Key="k", LegalHold={"Status": "ON"})
    # Object lock needs versioning first.
    with expect_error("InvalidBucketState", 409):
        s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})
    locked = bucket_factory(ObjectLockEnabledForBucket=True)
    with expect_error("InvalidArgument", 400):
        s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE",
                      ObjectLockRetainUntilDate=in_seconds(-60))
    with expect_error("InvalidArgument", 400):
        s3.put_object(Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE")
    with expect_error("MalformedXML", 400):
        s3.put_object_lock_configuration(
            Bucket=locked,
            ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {
                "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1, "Years": 1}}},
        )
    s3.put_object(Bucket=locked, Key="plain", Body=b"x")
    with expect_error("NoSuchObjectLockConfiguration", 404):
        s3.get_object_retention(Bucket=locked, Key="plain")
    assert s3.list_object_versions(Bucket=locked)["Versions"][0]["Key"] == "plain"


def test_lock_enabled_on_an_existing_versioned_bucket_and_compliance_default_in_years(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={"ObjectLockEnabled": "Enabled",
                                 "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 1}}},
    )
    rule = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["Rule"]
    assert rule["DefaultRetention"] == {"Mode": "COMPLIANCE", "Years": 1}
    v = s3.put_object(Bucket=bucket, Key="k", Body=b"kept a year")["VersionId"]
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["ObjectLockMode"] == "COMPLIANCE"
    left = got["ObjectLockRetainUntilDate"] - in_seconds(0)
    assert datetime.timedelta(days=364) < left <= datetime.timedelta(days=366)
    # COMPLIANCE: not even the owner with the bypass.
    with expect_error("AccessDenied", 403):
        delete_version(s3, bucket, "k", v, BypassGovernanceRetention=True)
    with expect_error("InvalidBucketState", 409):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


def test_copy_and_multipart_take_lock_headers_and_the_owner_may_shorten_with_bypass(s3, locked):
    until = in_seconds(3600)
    s3.put_object(Bucket=locked, Key="src", Body=b"s")
    c = s3.copy_object(
        Bucket=locked, Key="copy", CopySource={"Bucket": locked, "Key": "src"},
        ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until, ObjectLockLegalHoldStatus="ON",
    )
    head = s3.head_object(Bucket=locked, Key="copy")
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
    up = s3.create_multipart_upload(
        Bucket=locked, Key="mp", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )
    part = s3.upload_part(Bucket=locked, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"m")
    v = s3.complete_multipart_upload(
        Bucket=locked, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )["VersionId"]
    assert s3.get_object_retention(Bucket=locked, Key="mp")["Retention"]["Mode"] == "GOVERNANCE"
    # The owner shortens GOVERNANCE retention with the bypass, then may delete.
    s3.put_object_retention(
        Bucket=locked, Key="mp", VersionId=v, BypassGovernanceRetention=True,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": in_seconds(1)},
    )
    time.sleep(1.5)
    delete_version(s3, locked, "mp", v)
    s3.put_object_legal_hold(Bucket=locked, Key="copy", VersionId=c["VersionId"], LegalHold={"Status": "OFF"})


@meridian_only("moto does not evaluate s3:BypassGovernanceRetention in policies")
def test_a_policy_may_grant_the_governance_bypass(s3, s3_b, locked):
    uid_b = s3_b.list_buckets()["Owner"]["ID"]
    v = s3.put_object(
        Bucket=locked, Key="k", Body=b"x", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=in_seconds(3600)
    )["VersionId"]
    s3.put_bucket_policy(Bucket=locked, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam:::user/{uid_b}"]},
            "Action": ["s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"],
            "Resource": [f"arn:aws:s3:::{locked}/*"],
        }],
    }))
    with expect_error("AccessDenied", 403):
        delete_version(s3_b, locked, "k", v)
    delete_version(s3_b, locked, "k", v, BypassGovernanceRetention=True)
    with expect_error({"NoSuchVersion", "404"}, 404):
        s3.head_object(Bucket=locked, Key="k", VersionId=v)
