"""Per-user ACL grants: x-amz-grant-* headers on CreateBucket, PutObject,
CreateMultipartUpload and CopyObject, AccessControlPolicy bodies on
PutBucketAcl/PutObjectAcl, each permission (READ, WRITE, READ_ACP,
WRITE_ACP, FULL_CONTROL) allowing exactly what it names to the grantee and
nothing to anyone else, and the requests S3 refuses."""

import pytest

from conftest import expect_error, meridian_only, unique_bucket_name

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"


def uid_of(client):
    return client.list_buckets()["Owner"]["ID"]


@pytest.fixture(scope="module")
def uid_b(s3_b):
    return uid_of(s3_b)


def grants_of(acl):
    """{(grantee id or uri, permission)} of a Get*Acl answer."""
    return {(g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in acl["Grants"]}


def policy(owner, *grants):
    """An AccessControlPolicy granting (id, permission) pairs besides the owner's control."""
    body = [{"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"}]
    for who, perm in grants:
        grantee = {"Type": "Group", "URI": who} if who.startswith("http") else {"Type": "CanonicalUser", "ID": who}
        body.append({"Grantee": grantee, "Permission": perm})
    return {"Grants": body, "Owner": {"ID": owner}}


@meridian_only("moto does not enforce ACL grants")
def test_object_read_grant_lets_that_user_read_that_object_only(s3, s3_b, s3_anon, bucket, uid_b):
    s3.put_object(Bucket=bucket, Key="shared", Body=b"for b", GrantRead=f'id="{uid_b}"')
    s3.put_object(Bucket=bucket, Key="private", Body=b"not for b")
    assert s3_b.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"for b"
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="private")
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="shared")
    # READ is not READ_ACP, nor WRITE_ACP, nor listing the bucket.
    with expect_error("AccessDenied", 403):
        s3_b.get_object_acl(Bucket=bucket, Key="shared")
    with expect_error("AccessDenied", 403):
        s3_b.put_object_acl(Bucket=bucket, Key="shared", ACL="public-read")
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket)
    me = uid_of(s3)
    assert grants_of(s3.get_object_acl(Bucket=bucket, Key="shared")) == {
        (me, "FULL_CONTROL"),
        (uid_b, "READ"),
    }
    # Taking the grant away takes the access away.
    s3.put_object_acl(Bucket=bucket, Key="shared", ACL="private")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="shared")


@meridian_only("moto does not enforce ACL grants")
def test_object_acp_grants_allow_reading_and_replacing_the_acl(s3, s3_b, s3_anon, bucket, uid_b):
    me = uid_of(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.put_object_acl(Bucket=bucket, Key="k", AccessControlPolicy=policy(me, (uid_b, "READ_ACP")))
    assert (uid_b, "READ_ACP") in grants_of(s3_b.get_object_acl(Bucket=bucket, Key="k"))
    with expect_error("AccessDenied", 403):
        s3_b.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="k")
    # WRITE_ACP: b may now open the object to everyone.
    s3.put_object_acl(Bucket=bucket, Key="k", GrantWriteACP=f'id="{uid_b}"')
    s3_b.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert s3_anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
    # ... and that replaced b's own grant: b has no WRITE_ACP left.
    with expect_error("AccessDenied", 403):
        s3_b.put_object_acl(Bucket=bucket, Key="k", ACL="private")


@meridian_only("moto does not enforce ACL grants")
def test_bucket_grants_by_body_write_then_read(s3, s3_b, bucket, uid_b):
    me = uid_of(s3)
    with expect_error("AccessDenied", 403):
        s3_b.put_object(Bucket=bucket, Key="from-b", Body=b"b")
    s3.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy(me, (uid_b, "WRITE")))
    s3_b.put_object(Bucket=bucket, Key="from-b", Body=b"b")
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_b.get_bucket_acl(Bucket=bucket)
    s3.put_bucket_acl(
        Bucket=bucket, AccessControlPolicy=policy(me, (uid_b, "WRITE"), (uid_b, "READ"), (uid_b, "READ_ACP"))
    )
    keys = [o["Key"] for o in s3_b.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["from-b"]
    assert grants_of(s3_b.get_bucket_acl(Bucket=bucket)) == {
        (me, "FULL_CONTROL"),
        (uid_b, "WRITE"),
        (uid_b, "READ"),
        (uid_b, "READ_ACP"),
    }
    # b wrote it, b owns it; the bucket owner still reads it.
    assert s3.get_object(Bucket=bucket, Key="from-b")["Body"].read() == b"b"
    # A canned ACL replaces every grant.
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert grants_of(s3.get_bucket_acl(Bucket=bucket)) == {(me, "FULL_CONTROL")}
    with expect_error("AccessDenied", 403):
        s3_b.put_object(Bucket=bucket, Key="again", Body=b"b")


@meridian_only("moto does not enforce ACL grants")
def test_full_control_grant_on_a_new_bucket_and_group_grants(s3, s3_b, s3_anon, bucket_factory, uid_b):
    name = bucket_factory.register(unique_bucket_name())
    s3.create_bucket(Bucket=name, GrantFullControl=f'id="{uid_b}"', GrantRead=f'uri="{ALL_USERS}"')
    s3_b.put_object(Bucket=name, Key="k", Body=b"by b")
    assert [o["Key"] for o in s3_anon.list_objects_v2(Bucket=name)["Contents"]] == ["k"]
    # FULL_CONTROL includes WRITE_ACP: b may close the bucket to everyone else.
    s3_b.put_bucket_acl(Bucket=name, ACL="private")
    with expect_error("AccessDenied", 403):
        s3_anon.list_objects_v2(Bucket=name)
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=name)
    # The owner never loses control of their bucket.
    assert grants_of(s3.get_bucket_acl(Bucket=name)) == {(uid_of(s3), "FULL_CONTROL")}


@meridian_only("moto does not enforce ACL grants")
def test_multipart_and_copy_take_the_grants_of_their_request(s3, s3_b, bucket, uid_b):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", GrantRead=f'id="{uid_b}"')
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 100)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3_b.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"m" * 100
    # A copy does not inherit its source's ACL...
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "mp"})
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="copy")
    # ... but takes the grants its own request names.
    s3.copy_object(
        Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "mp"}, GrantRead=f'id="{uid_b}"'
    )
    assert s3_b.get_object(Bucket=bucket, Key="copy2")["Body"].read() == b"m" * 100


def test_bad_grant_requests_are_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    with expect_error("InvalidArgument", 400):
        s3.put_object_acl(Bucket=bucket, Key="k", GrantRead='id="no-such-user-anywhere"')
    with expect_error("InvalidArgument", 400):
        s3.put_object_acl(Bucket=bucket, Key="k", GrantRead='uri="http://example.com/not-a-group"')
    with expect_error("InvalidRequest", 400):
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read", GrantRead=f'uri="{ALL_USERS}"')
    with expect_error("UnresolvableGrantByEmailAddress", 400):
        s3.put_object_acl(Bucket=bucket, Key="k", GrantRead='emailAddress="nobody@example.com"')
    with expect_error("NotImplemented", 501):
        s3.put_bucket_acl(Bucket=bucket, GrantWrite=f'uri="{LOG_DELIVERY}"')
    # Nothing was changed by the refused requests.
    assert len(s3.get_object_acl(Bucket=bucket, Key="k")["Grants"]) == 1
    assert len(s3.get_bucket_acl(Bucket=bucket)["Grants"]) == 1


@meridian_only("moto does not enforce ACL grants")
def test_authenticated_users_grant_admits_any_signed_caller_not_anonymous(s3, s3_b, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"for members", GrantRead=f'uri="{AUTHENTICATED}"')
    assert s3_b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"for members"
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="k")
    assert (AUTHENTICATED, "READ") in grants_of(s3.get_object_acl(Bucket=bucket, Key="k"))


@meridian_only("moto does not enforce ACL grants")
def test_aws_cli_grants_read(aws, s3, s3_b, bucket, uid_b, tmp_path):
    src = tmp_path / "f.txt"
    src.write_bytes(b"via the cli")
    aws("s3", "cp", str(src), f"s3://{bucket}/f.txt", "--grants", f"read=id={uid_b}")
    assert s3_b.get_object(Bucket=bucket, Key="f.txt")["Body"].read() == b"via the cli"
    aws("s3api", "put-object-acl", "--bucket", bucket, "--key", "f.txt", "--acl", "private")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="f.txt")
