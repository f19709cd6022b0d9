"""Bucket CRUD, location, name validation and ownership errors."""

import random
import string

import pytest
from botocore.exceptions import ClientError

from conftest import (
    IS_MERIDIAN,
    REGION,
    ZONEGROUP,
    assert_s3_error,
    error_status,
    expect_error,
    make_client,
    meridian_only,
    raw_request,
    unique_bucket_name,
)


def bucket_names(client):
    return {b["Name"] for b in client.list_buckets()["Buckets"]}


def test_create_head_list_delete(s3, bucket_factory):
    name = bucket_factory(create=False)
    with expect_error({"404", "NoSuchBucket"}, 404):
        s3.head_bucket(Bucket=name)
    assert name not in bucket_names(s3)

    resp = s3.create_bucket(Bucket=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    listing = s3.list_buckets()
    assert name in {b["Name"] for b in listing["Buckets"]}
    entry = next(b for b in listing["Buckets"] if b["Name"] == name)
    assert entry.get("CreationDate") is not None
    assert listing.get("Owner", {}).get("ID"), "ListBuckets must name the owner"
    # A fresh bucket is empty.
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0

    s3.delete_bucket(Bucket=name)
    with expect_error({"404", "NoSuchBucket"}, 404):
        s3.head_bucket(Bucket=name)
    assert name not in bucket_names(s3)
    with expect_error("NoSuchBucket", 404):
        s3.delete_bucket(Bucket=name)


def test_create_without_location_constraint(s3, bucket):
    loc = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    if IS_MERIDIAN:
        # A bucket made without a constraint lives in the zonegroup it was
        # sent to; S3 reports the default region as an empty constraint.
        assert loc in (None, "", ZONEGROUP), loc
    elif REGION == "us-east-1":
        assert loc in (None, ""), loc
    else:
        assert loc in (None, "", REGION), loc


def test_create_with_location_constraint(bucket_factory):
    if IS_MERIDIAN:
        lc, client = ZONEGROUP, make_client()
    else:
        # Outside Meridian use a real AWS region other than us-east-1 (which
        # AWS refuses as an explicit constraint).
        lc = REGION if REGION != "us-east-1" else "eu-west-1"
        client = make_client(region=lc)
    name = bucket_factory(client=client, CreateBucketConfiguration={"LocationConstraint": lc})
    assert client.get_bucket_location(Bucket=name)["LocationConstraint"] == lc
    client.head_bucket(Bucket=name)


@meridian_only("only Meridian knows its zonegroup; moto accepts any AWS region name")
def test_create_with_foreign_location_constraint_rejected(s3, bucket_factory):
    name = bucket_factory(create=False)
    body = (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        "<LocationConstraint>no-such-zonegroup-xyz</LocationConstraint></CreateBucketConfiguration>"
    ).encode()
    r = raw_request("PUT", f"/{name}", body=body)
    assert_s3_error(r, {"InvalidLocationConstraint", "IllegalLocationConstraintException"}, 400)
    with expect_error({"404", "NoSuchBucket"}, 404):
        s3.head_bucket(Bucket=name)


def test_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"still here")
    with expect_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    # Nothing was touched.
    assert s3.get_object(Bucket=bucket, Key="keep/me")["Body"].read() == b"still here"
    s3.head_bucket(Bucket=bucket)


def test_no_such_bucket(s3):
    name = unique_bucket_name()
    with expect_error("NoSuchBucket", 404):
        s3.list_objects_v2(Bucket=name)
    with expect_error("NoSuchBucket", 404):
        s3.list_objects(Bucket=name)
    with expect_error("NoSuchBucket", 404):
        s3.get_object(Bucket=name, Key="k")
    with expect_error("NoSuchBucket", 404):
        s3.put_object(Bucket=name, Key="k", Body=b"x")
    with expect_error("NoSuchBucket", 404):
        s3.get_bucket_versioning(Bucket=name)
    with expect_error("NoSuchBucket", 404):
        s3.get_bucket_location(Bucket=name)
    r = raw_request("GET", f"/{name}")
    err = assert_s3_error(r, "NoSuchBucket", 404)
    assert err.get("BucketName", name) == name


def test_recreate_own_bucket_keeps_contents(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"precious")
    try:
        resp = s3.create_bucket(Bucket=bucket)
    except ClientError as e:
        # Every region but us-east-1 answers 409 BucketAlreadyOwnedByYou.
        assert e.response["Error"]["Code"] == "BucketAlreadyOwnedByYou", e.response["Error"]
        assert error_status(e) == 409
    else:
        # us-east-1 (legacy) answers 200 and changes nothing.
        assert REGION == "us-east-1" or not IS_MERIDIAN, "re-create must be 409 outside us-east-1"
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"precious"


def test_bucket_already_exists_for_other_owner(s3, s3_b, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"owned by A")
    with expect_error("BucketAlreadyExists", 409):
        s3_b.create_bucket(Bucket=bucket)
    with expect_error("BucketAlreadyExists", 409):
        s3_b.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": ZONEGROUP})
    # Still A's, with A's data; B does not list it.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"owned by A"
    assert bucket not in bucket_names(s3_b)
    assert bucket in bucket_names(s3)


def test_list_buckets_is_per_owner(s3, s3_b, bucket, bucket_factory):
    b_bucket = bucket_factory(client=s3_b)
    assert b_bucket in bucket_names(s3_b)
    assert b_bucket not in bucket_names(s3)
    assert bucket not in bucket_names(s3_b)
    assert s3.list_buckets()["Owner"]["ID"] != s3_b.list_buckets()["Owner"]["ID"]


_MOTO_NAMES = "moto validates only the length of bucket names"

INVALID_NAMES = [
    pytest.param("ab", id="too-short"),
    pytest.param("a" * 64, id="too-long"),
    pytest.param("Upper-Case-Name", id="uppercase", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("192.168.5.4", id="ip-address", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("double..dot", id="double-dot", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("-leading-dash", id="leading-dash", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("trailing-dash-", id="trailing-dash", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("under_score", id="underscore", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("dot.-dash", id="dot-dash", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("amzn-s3-demo-bucket", id="reserved-prefix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("my-bucket--x-s3", id="reserved-suffix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("my-bucket.mrap", id="mrap-suffix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("xn--punycode", id="xn-prefix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("sthree-bucket", id="sthree-prefix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("my-bucket-s3alias", id="s3alias-suffix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("my-bucket--ol-s3", id="ol-s3-suffix", marks=meridian_only(_MOTO_NAMES)),
    pytest.param("my-bucket--table-s3", id="table-s3-suffix", marks=meridian_only(_MOTO_NAMES)),
]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_bucket_name(s3, name):
    # boto3 validates names client-side, so sign a raw request instead.
    r = raw_request("PUT", f"/{name}")
    try:
        assert_s3_error(r, "InvalidBucketName", 400)
    finally:
        if r.status_code == 200:  # the server wrongly created it: clean up
            raw_request("DELETE", f"/{name}")
    listed = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert name not in listed


def test_valid_edge_names(s3, bucket_factory):
    """Names at the limits that AWS accepts: 3 and 63 characters, dots, digits."""
    base = unique_bucket_name()
    short = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(3))
    for name in (short, ("t-" + base + "x" * 63)[:63], "t." + base[2:] + ".d1"):
        bucket_factory(name=name)
        s3.head_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="k", Body=b"v")
        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == b"v"
