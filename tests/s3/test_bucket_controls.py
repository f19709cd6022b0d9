"""A bucket's public access block (each of its four settings) and object
ownership controls (BucketOwnerEnforced, BucketOwnerPreferred), stored, read
back, removed, and enforced on ACLs, policies and object ownership."""

import json

import pytest

from conftest import expect_error, meridian_only, unique_bucket_name

ALL_USERS = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'


def uid_of(client):
    return client.list_buckets()["Owner"]["ID"]


def pab(s3, bucket, **settings):
    cfg = {k: settings.get(k, False) for k in
           ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=cfg)


def public_read_policy(bucket):
    return json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                      "Resource": f"arn:aws:s3:::{bucket}/*"}]})


def object_owner(s3, bucket, key):
    return s3.get_object_acl(Bucket=bucket, Key=key)["Owner"]["ID"]


def test_public_access_block_is_stored_read_back_and_removed(s3, s3_b, bucket):
    with expect_error("NoSuchPublicAccessBlockConfiguration", 404):
        s3.get_public_access_block(Bucket=bucket)
    pab(s3, bucket, BlockPublicAcls=True, RestrictPublicBuckets=True)
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == {"BlockPublicAcls": True, "IgnorePublicAcls": False, "BlockPublicPolicy": False,
                   "RestrictPublicBuckets": True}
    with expect_error("AccessDenied", 403):
        s3_b.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={"BlockPublicAcls": False})
    s3.delete_public_access_block(Bucket=bucket)
    with expect_error("NoSuchPublicAccessBlockConfiguration", 404):
        s3.get_public_access_block(Bucket=bucket)


@meridian_only("moto does not enforce public access blocks")
def test_block_and_ignore_public_acls(s3, s3_b, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="was-public", Body=b"p", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="for-b", Body=b"b", GrantRead=f'id="{uid_of(s3_b)}"')
    assert s3_anon.get_object(Bucket=bucket, Key="was-public")["Body"].read() == b"p"
    pab(s3, bucket, BlockPublicAcls=True)
    for attempt in (
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read"),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead=ALL_USERS),
        lambda: s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write"),
        lambda: s3.put_object_acl(Bucket=bucket, Key="for-b", ACL="authenticated-read"),
    ):
        with expect_error("AccessDenied", 403):
            attempt()
    # Private ACLs and grants to named users are still fine; existing public ACLs still count.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead=f'id="{uid_of(s3_b)}"')
    assert s3_anon.get_object(Bucket=bucket, Key="was-public")["Body"].read() == b"p"
    pab(s3, bucket, IgnorePublicAcls=True)
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="was-public")
    assert s3_b.get_object(Bucket=bucket, Key="for-b")["Body"].read() == b"b"
    s3.delete_public_access_block(Bucket=bucket)
    assert s3_anon.get_object(Bucket=bucket, Key="was-public")["Body"].read() == b"p"


@meridian_only("moto does not enforce public access blocks")
def test_block_and_restrict_public_policies(s3, s3_b, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="doc", Body=b"d")
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    assert s3_anon.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"d"
    pab(s3, bucket, RestrictPublicBuckets=True)
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="doc")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="doc")
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"d"
    pab(s3, bucket, BlockPublicPolicy=True)
    s3.delete_bucket_policy(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    # A policy for a named user is not public.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam:::user/{uid_of(s3_b)}"]},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    assert s3_b.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"d"
    # Nor is an Allow to everyone that a condition narrows (here: from loopback).
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}))
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False


def test_object_writer_objects_stay_readable_and_deletable_by_the_bucket_owner(s3, s3_b, bucket):
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{uid_of(s3_b)}"',
                      GrantFullControl=f'id="{uid_of(s3)}"')
    s3_b.put_object(Bucket=bucket, Key="theirs", Body=b"written by b")
    assert object_owner(s3, bucket, "theirs") == uid_of(s3_b)
    assert s3.get_object(Bucket=bucket, Key="theirs")["Body"].read() == b"written by b"
    s3.delete_object(Bucket=bucket, Key="theirs")
    with expect_error({"NoSuchKey", "404"}, 404):
        s3.head_object(Bucket=bucket, Key="theirs")


def test_ownership_controls_are_stored_read_back_and_removed(s3, bucket, bucket_factory):
    with expect_error("OwnershipControlsNotFoundError", 404):
        s3.get_bucket_ownership_controls(Bucket=bucket)
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerPreferred"}]
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    with expect_error("OwnershipControlsNotFoundError", 404):
        s3.get_bucket_ownership_controls(Bucket=bucket)
    name = bucket_factory.register(unique_bucket_name())
    with expect_error("InvalidBucketAclWithObjectOwnership", 400):
        s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerEnforced", ACL="public-read")
    s3.create_bucket(Bucket=name, ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]


@meridian_only("moto does not enforce ownership controls")
def test_bucket_owner_enforced_turns_acls_off_and_owns_every_object(s3, s3_b, bucket):
    me, b = uid_of(s3), uid_of(s3_b)
    s3.put_object(Bucket=bucket, Key="shared", Body=b"s", GrantRead=f'id="{b}"')
    assert s3_b.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    # ACLs no longer grant anything, and cannot be set.
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="shared")
    with expect_error("AccessControlListNotSupported", 400):
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    with expect_error("AccessControlListNotSupported", 400):
        s3.put_object_acl(Bucket=bucket, Key="shared", GrantRead=f'id="{b}"')
    with expect_error("AccessControlListNotSupported", 400):
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    # Access is by policy only; what another user writes belongs to the bucket owner.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Statement": [{
        "Effect": "Allow", "Principal": {"AWS": [b]}, "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    s3_b.put_object(Bucket=bucket, Key="from-b", Body=b"b")
    assert object_owner(s3, bucket, "from-b") == me
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="from-b")


@meridian_only("moto does not apply ownership controls")
def test_bucket_owner_preferred_takes_objects_written_with_owner_full_control(s3, s3_b, bucket):
    me, b = uid_of(s3), uid_of(s3_b)
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'id="{b}"', GrantFullControl=f'id="{me}"')
    s3_b.put_object(Bucket=bucket, Key="given", Body=b"g", ACL="bucket-owner-full-control")
    s3_b.put_object(Bucket=bucket, Key="kept", Body=b"k")
    assert object_owner(s3, bucket, "given") == me
    assert object_owner(s3, bucket, "kept") == b


@pytest.mark.parametrize("bad", ["Everyone", ""])
def test_unknown_ownership_is_refused(s3, bucket, bad):
    with expect_error({"MalformedXML", "InvalidArgument", "InvalidRequest"}, 400):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": bad}]})
