"""Bucket lifecycle: configurations stored and checked, and passes that
expire current versions (by prefix and by tag), noncurrent versions, lone
delete markers and old multipart uploads, with `meridian lc process|list`.
The suite's cluster makes a lifecycle day a few seconds
(rgw_lc_debug_interval, as RGW's tests do)."""

import os
import time

from conftest import expect_error, meridian, meridian_only

DAY_S = float(os.environ.get("MERIDIAN_LC_DAY_S", "0"))


def versions_of(s3, bucket, key):
    page = s3.list_object_versions(Bucket=bucket, Prefix=key)
    vs = [v for v in page.get("Versions", []) if v["Key"] == key]
    ms = [m for m in page.get("DeleteMarkers", []) if m["Key"] == key]
    return vs, ms


def test_lifecycle_configuration_is_stored_and_checked(s3, bucket):
    with expect_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    rules = [
        {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7}},
        {"ID": "scratch", "Status": "Disabled",
         "Filter": {"And": {"Prefix": "s/", "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2}},
        {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": ""},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in got] == ["tmp", "scratch", "mpu"]
    assert got[0]["Expiration"]["Days"] == 7 and got[0]["Filter"]["Prefix"] == "tmp/"
    assert got[1]["Status"] == "Disabled"
    assert sorted(t["Key"] for t in got[1]["Filter"]["And"]["Tags"]) == ["a", "b"]
    assert got[1]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3, "NewerNoncurrentVersions": 2}
    assert got[2]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 2
    for bad in (
        [{"ID": "z", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 0}}],
        [{"ID": "d", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}},
         {"ID": "d", "Status": "Enabled", "Filter": {"Prefix": "x"}, "Expiration": {"Days": 2}}],
    ):
        with expect_error("InvalidArgument", 400):
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": bad})
    with expect_error("NotImplemented", 501):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [{"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""},
                                               "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}]},
        )
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 3, "refused means unchanged"
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with expect_error("NoSuchLifecycleConfiguration", 404):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


@meridian_only("needs days of seconds (rgw_lc_debug_interval) and `meridian lc`")
def test_lifecycle_pass_expires_what_the_rules_name_and_nothing_else(s3, bucket):
    assert DAY_S > 0, "the suite's cluster sets rgw_lc_debug_interval (MERIDIAN_LC_DAY_S)"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [
            {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 1}},
            {"ID": "scratch", "Status": "Enabled", "Filter": {"Tag": {"Key": "class", "Value": "scratch"}},
             "Expiration": {"Days": 1}},
            {"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            {"ID": "markers", "Status": "Enabled", "Filter": {"Prefix": "gone/"},
             "Expiration": {"ExpiredObjectDeleteMarker": True}},
            {"ID": "mpu", "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}},
        ]},
    )
    s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"temporary")
    s3.put_object(Bucket=bucket, Key="keep/b", Body=b"first")
    s3.put_object(Bucket=bucket, Key="keep/b", Body=b"second")
    s3.put_object(Bucket=bucket, Key="keep/scratch", Body=b"s", Tagging="class=scratch")
    s3.put_object(Bucket=bucket, Key="keep/plain", Body=b"p", Tagging="class=precious")
    s3.put_object(Bucket=bucket, Key="gone/c", Body=b"c")
    s3.delete_object(Bucket=bucket, Key="gone/c")
    s3.create_multipart_upload(Bucket=bucket, Key="upload")
    time.sleep(DAY_S * 1.5)
    # Written after the day passed: not expired.
    s3.put_object(Bucket=bucket, Key="tmp/fresh", Body=b"new")
    for _ in range(2):  # the second pass finds the marker that the first left alone
        done = meridian("lc", "process", "--bucket", bucket)
        assert [d["status"] for d in done] == ["COMPLETE"], done
    # (Checked first: it is younger than a day for a few seconds only.)
    assert s3.get_object(Bucket=bucket, Key="tmp/fresh")["Body"].read() == b"new"
    # Expired current versions are behind a delete marker now.
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="tmp/a")
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="keep/scratch")
    assert s3.get_object(Bucket=bucket, Key="keep/plain")["Body"].read() == b"p"
    # The replaced version went; the current one stays.
    vs, ms = versions_of(s3, bucket, "keep/b")
    assert [v["IsLatest"] for v in vs] == [True] and ms == []
    assert s3.get_object(Bucket=bucket, Key="keep/b")["Body"].read() == b"second"
    # gone/c: its version went as noncurrent, then its lone marker.
    assert versions_of(s3, bucket, "gone/c") == ([], [])
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    listed = {s["bucket"]: s for s in meridian("lc", "list")}
    assert listed[bucket]["status"] == "COMPLETE"
    assert listed[bucket]["expired"] >= 0 and listed[bucket]["finished_ms"] >= listed[bucket]["started_ms"]


@meridian_only("needs `meridian lc process`")
def test_expiration_by_date_size_and_and_filters_and_newer_noncurrent_versions(s3, bucket):
    import datetime

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    midnight = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [
            # A date already past: everything under dated/ expires on the next pass.
            {"ID": "date", "Status": "Enabled", "Filter": {"Prefix": "dated/"}, "Expiration": {"Date": midnight}},
            # Only objects over 1000 bytes under big/.
            {"ID": "size", "Status": "Enabled",
             "Filter": {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1000}}, "Expiration": {"Date": midnight}},
            # Prefix and tag together.
            {"ID": "and", "Status": "Enabled",
             "Filter": {"And": {"Prefix": "t/", "Tags": [{"Key": "tier", "Value": "tmp"}]}},
             "Expiration": {"Date": midnight}},
            # Keep the newest noncurrent version of each key, however old.
            {"ID": "newer", "Status": "Enabled", "Filter": {"Prefix": "v/"},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
        ]},
    )
    s3.put_object(Bucket=bucket, Key="dated/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="undated/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="big/large", Body=b"x" * 2000)
    s3.put_object(Bucket=bucket, Key="big/small", Body=b"x" * 10)
    s3.put_object(Bucket=bucket, Key="t/tagged", Body=b"t", Tagging="tier=tmp")
    s3.put_object(Bucket=bucket, Key="t/untagged", Body=b"t")
    for i in range(4):
        s3.put_object(Bucket=bucket, Key="v/k", Body=f"v{i}".encode())
    time.sleep(max(DAY_S, 0) * 1.5)
    done = meridian("lc", "process", "--bucket", bucket)
    assert [d["status"] for d in done] == ["COMPLETE"], done
    current = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert current == {"undated/a", "big/small", "t/untagged", "v/k"}, current
    vs, _ = versions_of(s3, bucket, "v/k")
    # The current version and the newest noncurrent one stay.
    assert [s3.get_object(Bucket=bucket, Key="v/k", VersionId=v["VersionId"])["Body"].read() for v in vs] == [b"v3", b"v2"]


@meridian_only("needs days of seconds (rgw_lc_debug_interval) and `meridian lc`")
def test_noncurrent_days_count_from_the_replacement_not_the_write(s3, bucket):
    assert DAY_S > 0
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": ""},
                                           "NoncurrentVersionExpiration": {"NoncurrentDays": 1}}]},
    )
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    time.sleep(DAY_S * 1.5)
    # v1 is older than a day, but noncurrent only from now.
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    meridian("lc", "process", "--bucket", bucket)
    assert len(versions_of(s3, bucket, "k")[0]) == 2
    time.sleep(DAY_S * 1.5)
    meridian("lc", "process", "--bucket", bucket)
    vs, _ = versions_of(s3, bucket, "k")
    assert len(vs) == 1 and s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"


@meridian_only("needs days of seconds (rgw_lc_debug_interval)")
def test_the_gateways_worker_runs_the_rules_without_being_asked(s3, bucket):
    """No `lc process`: the zone's lifecycle worker (one gateway, by lease)
    passes every debug-day and expires the object on its own."""
    assert DAY_S > 0
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                                           "Expiration": {"Days": 1}}]},
    )
    s3.put_object(Bucket=bucket, Key="tmp/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"k")
    deadline = time.time() + DAY_S * 8
    while s3.list_objects_v2(Bucket=bucket, Prefix="tmp/").get("KeyCount", 0):
        assert time.time() < deadline, "the lifecycle worker never expired tmp/a"
        time.sleep(1)
    assert s3.get_object(Bucket=bucket, Key="keep")["Body"].read() == b"k"
    listed = {s["bucket"]: s for s in meridian("lc", "list")}
    # (A later pass may have run since, finding nothing more to expire.)
    assert listed[bucket]["status"] == "COMPLETE", listed[bucket]
