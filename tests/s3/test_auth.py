"""Authentication and authorization errors: unknown key, wrong secret,
clock skew, payload hash mismatch, anonymous access, owner isolation,
canned ACLs and suspended users."""

import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import hmac
import os
import secrets
import time
import uuid
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
import requests

from conftest import (
    ACCESS_KEY,
    ENDPOINT,
    SECRET_KEY,
    assert_s3_error,
    destroy_bucket,
    expect_error,
    get_body,
    make_client,
    meridian,
    meridian_only,
    obj_path,
    raw_request,
    unique_bucket_name,
)

MOTO_NO_AUTH = "moto (without IAM auth) accepts any access key and signature"


def utcnow():
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# ------------------------------------------------------------- signatures


def test_valid_raw_signed_request(s3, bucket):
    """The raw signer used by the negative tests produces requests the server accepts."""
    r = raw_request("PUT", obj_path(bucket, "raw key+/x"), body=b"raw body", headers={"x-amz-meta-a": "b"})
    assert r.status_code == 200, r.content
    r = raw_request("GET", obj_path(bucket, "raw key+/x"))
    assert r.status_code == 200 and r.content == b"raw body"
    assert s3.head_object(Bucket=bucket, Key="raw key+/x")["Metadata"] == {"a": "b"}
    r = raw_request("PUT", obj_path(bucket, "unsigned"), body=b"u", payload_hash="UNSIGNED-PAYLOAD")
    assert r.status_code == 200, r.content
    assert get_body(s3, bucket, "unsigned") == b"u"
    # Slight clock skew (well inside 15 minutes) is fine.
    r = raw_request("GET", obj_path(bucket, "unsigned"), now=utcnow() - dt.timedelta(minutes=3))
    assert r.status_code == 200 and r.content == b"u"


@meridian_only(MOTO_NO_AUTH)
def test_unknown_access_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bad = make_client(access_key="AKIDNOSUCHKEY" + uuid.uuid4().hex[:8].upper(), secret_key="whatever")
    with expect_error("InvalidAccessKeyId", 403):
        bad.get_object(Bucket=bucket, Key="k")
    with expect_error("InvalidAccessKeyId", 403):
        bad.list_buckets()
    r = raw_request("PUT", obj_path(bucket, "k"), body=b"evil", access_key="AKIDNOSUCHKEY0000", secret_key="x")
    assert_s3_error(r, "InvalidAccessKeyId", 403)
    assert get_body(s3, bucket, "k") == b"x"


@meridian_only(MOTO_NO_AUTH)
def test_wrong_secret(s3, bucket):
    from conftest import ACCESS_KEY

    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bad = make_client(access_key=ACCESS_KEY, secret_key="definitely-not-the-secret")
    with expect_error("SignatureDoesNotMatch", 403):
        bad.get_object(Bucket=bucket, Key="k")
    with expect_error("SignatureDoesNotMatch", 403):
        bad.put_object(Bucket=bucket, Key="k", Body=b"evil")
    r = raw_request("DELETE", obj_path(bucket, "k"), secret_key="wrong")
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    assert get_body(s3, bucket, "k") == b"x"


@meridian_only(MOTO_NO_AUTH)
def test_header_changed_after_signing(s3, bucket):
    from conftest import build_url, send, sign_request

    req = sign_request("PUT", build_url(ENDPOINT, obj_path(bucket, "k")), {"x-amz-meta-v": "1"}, b"body")
    req.headers["x-amz-meta-v"] = "2"  # a signed header, changed afterwards
    r = send(req)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")


@meridian_only(MOTO_NO_AUTH + " and never checks x-amz-date")
@pytest.mark.parametrize("minutes", [-20, 20])
def test_request_time_too_skewed(s3, bucket, minutes):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    when = utcnow() + dt.timedelta(minutes=minutes)
    r = raw_request("GET", obj_path(bucket, "k"), now=when)
    assert r.request.headers["X-Amz-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    assert_s3_error(r, "RequestTimeTooSkewed", 403)
    r = raw_request("PUT", obj_path(bucket, "k"), body=b"stale write", now=when)
    assert_s3_error(r, "RequestTimeTooSkewed", 403)
    assert get_body(s3, bucket, "k") == b"x"


def sigv2_signature(to_sign):
    return base64.b64encode(hmac.new(SECRET_KEY.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


def flip_one_char(sig):
    """The signature with one base64 character changed (still valid base64)."""
    i = len(sig) // 2
    return sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1:]


def sigv2_request(method, path, when, body=b"", tamper=False):
    """A header-signed SigV2 request (HMAC-SHA1 over the method, the Date and the resource)."""
    date = email.utils.format_datetime(when.replace(tzinfo=dt.timezone.utc), usegmt=True)
    sig = sigv2_signature(f"{method}\n\n\n{date}\n{path}")
    if tamper:
        sig = flip_one_char(sig)
    headers = {"Date": date, "Authorization": f"AWS {ACCESS_KEY}:{sig}"}
    return requests.request(method, ENDPOINT + path, headers=headers, data=body, timeout=30)


@meridian_only(MOTO_NO_AUTH + " and never checks Date")
@pytest.mark.parametrize("minutes", [-20, 20])
def test_sigv2_request_time_too_skewed(s3, bucket, minutes):
    """SigV2 signs the Date; a request more than 15 minutes off is refused, so a
    captured request cannot be replayed later."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    r = sigv2_request("GET", obj_path(bucket, "k"), utcnow())
    assert r.status_code == 200 and r.content == b"x", r.content[:300]
    when = utcnow() + dt.timedelta(minutes=minutes)
    r = sigv2_request("GET", obj_path(bucket, "k"), when)
    assert_s3_error(r, "RequestTimeTooSkewed", 403)
    r = sigv2_request("PUT", obj_path(bucket, "k"), when, body=b"stale write")
    assert_s3_error(r, "RequestTimeTooSkewed", 403)
    assert get_body(s3, bucket, "k") == b"x"


@meridian_only(MOTO_NO_AUTH)
def test_sigv2_signatures_are_verified(s3, bucket):
    """Header-signed and presigned SigV2 requests work with the right
    signature and get SignatureDoesNotMatch with one character changed (the
    gateway compares SigV2 signatures in constant time before s3s does)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    path = obj_path(bucket, "k")
    r = sigv2_request("GET", path, utcnow())
    assert r.status_code == 200 and r.content == b"x", r.content[:300]
    assert_s3_error(sigv2_request("GET", path, utcnow(), tamper=True), "SignatureDoesNotMatch", 403)
    r = sigv2_request("PUT", path, utcnow(), body=b"forged", tamper=True)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    assert get_body(s3, bucket, "k") == b"x"
    expires = int(time.time()) + 300
    sig = sigv2_signature(f"GET\n\n\n{expires}\n{path}")

    def presigned(signature):
        q = f"AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature={quote(signature, safe='')}"
        return requests.get(f"{ENDPOINT}{path}?{q}", timeout=30)

    r = presigned(sig)
    assert r.status_code == 200 and r.content == b"x", r.content[:300]
    assert_s3_error(presigned(flip_one_char(sig)), "SignatureDoesNotMatch", 403)


@meridian_only("moto accepts POST uploads")
def test_unsigned_form_post_to_a_private_bucket_is_denied(s3, bucket):
    r = requests.post(
        f"{ENDPOINT}/{bucket}",
        files={"key": (None, "k"), "file": ("k", b"data")},
        timeout=30,
    )
    assert_s3_error(r, "AccessDenied", 403)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")


@meridian_only("moto does not verify x-amz-content-sha256 against the body")
def test_payload_hash_mismatch(s3, bucket):
    r = raw_request(
        "PUT", obj_path(bucket, "k"), body=b"what was sent", payload_hash=hashlib.sha256(b"what was signed").hexdigest()
    )
    assert_s3_error(r, {"XAmzContentSHA256Mismatch", "BadDigest"}, 400)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")


@meridian_only(MOTO_NO_AUTH)
def test_malformed_authorization_header(s3, bucket):
    for value in (
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=onlykey, SignedHeaders=host, Signature=00",
        "Bearer abc",
    ):
        r = raw_request(
            "GET",
            f"/{bucket}",
            sign=False,
            headers={"Authorization": value, "x-amz-date": utcnow().strftime("%Y%m%dT%H%M%SZ")},
        )
        assert r.status_code in (400, 403), (value, r.status_code)
        assert_s3_error(
            r, {"AuthorizationHeaderMalformed", "AccessDenied", "InvalidArgument", "InvalidRequest", "SignatureDoesNotMatch"}
        )


# --------------------------------------------------------------- anonymous


def test_anonymous_get_private_object_denied(s3, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    with expect_error({"AccessDenied", "403"}, 403):
        s3_anon.get_object(Bucket=bucket, Key="private")
    r = requests.get(f"{ENDPOINT}/{bucket}/private", timeout=30)
    assert r.status_code == 403 and b"secret" not in r.content


@meridian_only("moto lets anonymous requests list and write private buckets, and sends 403s without an XML body")
def test_anonymous_private_bucket_denied(s3, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    r = requests.get(f"{ENDPOINT}/{bucket}/private", timeout=30)
    assert_s3_error(r, "AccessDenied", 403)
    with expect_error("AccessDenied", 403):
        s3_anon.list_objects_v2(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_anon.put_object(Bucket=bucket, Key="anon", Body=b"x")
    with expect_error("AccessDenied", 403):
        s3_anon.delete_object(Bucket=bucket, Key="private")
    assert get_body(s3, bucket, "private") == b"secret"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["private"]


def test_public_read_object_canned_acl(s3, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"for everyone", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv", Body=b"mine")
    assert s3_anon.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"for everyone"
    r = requests.get(f"{ENDPOINT}/{bucket}/pub", timeout=30)
    assert r.status_code == 200 and r.content == b"for everyone"
    with expect_error({"AccessDenied", "403"}, 403):
        s3_anon.get_object(Bucket=bucket, Key="priv")
    # Made public later with PutObjectAcl, and private again.
    s3.put_object_acl(Bucket=bucket, Key="priv", ACL="public-read")
    assert s3_anon.get_object(Bucket=bucket, Key="priv")["Body"].read() == b"mine"
    s3.put_object_acl(Bucket=bucket, Key="priv", ACL="private")
    with expect_error({"AccessDenied", "403"}, 403):
        s3_anon.get_object(Bucket=bucket, Key="priv")


def test_get_object_acl_reports_canned_acl(s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"x", ACL="public-read")
    s3.put_object(Bucket=bucket, Key="priv", Body=b"y")
    all_users = "http://acs.amazonaws.com/groups/global/AllUsers"
    pub = s3.get_object_acl(Bucket=bucket, Key="pub")
    assert any(g["Grantee"].get("URI") == all_users and g["Permission"] == "READ" for g in pub["Grants"]), pub
    assert any(g["Permission"] == "FULL_CONTROL" and g["Grantee"].get("ID") == pub["Owner"]["ID"] for g in pub["Grants"])
    priv = s3.get_object_acl(Bucket=bucket, Key="priv")
    assert not any(g["Grantee"].get("URI") == all_users for g in priv["Grants"]), priv


@meridian_only("moto lets anonymous requests list private buckets, so the ACL makes no difference there")
def test_public_read_bucket_canned_acl(s3, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="obj", Body=b"x")
    with expect_error("AccessDenied", 403):
        s3_anon.list_objects_v2(Bucket=bucket)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert [o["Key"] for o in s3_anon.list_objects_v2(Bucket=bucket)["Contents"]] == ["obj"]
    # Bucket READ lets anyone list, not read objects or write.
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="obj")
    with expect_error("AccessDenied", 403):
        s3_anon.put_object(Bucket=bucket, Key="anon", Body=b"x")
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    with expect_error("AccessDenied", 403):
        s3_anon.list_objects_v2(Bucket=bucket)


# ----------------------------------------------------------- other owners


def test_other_user_denied(s3, s3_b, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"A's data")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="k")
    with expect_error({"AccessDenied", "403"}, 403):
        s3_b.head_object(Bucket=bucket, Key="k")
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_b.put_object(Bucket=bucket, Key="k", Body=b"B was here")
    with expect_error("AccessDenied", 403):
        s3_b.delete_object(Bucket=bucket, Key="k")
    with expect_error("AccessDenied", 403):
        s3_b.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    with expect_error("AccessDenied", 403):
        s3_b.delete_bucket(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_b.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with expect_error("AccessDenied", 403):
        s3_b.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert get_body(s3, bucket, "k") == b"A's data"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)


def test_other_user_cannot_copy_out(s3, s3_b, bucket, bucket_factory):
    s3.put_object(Bucket=bucket, Key="k", Body=b"A's data")
    b_bucket = bucket_factory(client=s3_b)
    with expect_error("AccessDenied", 403):
        s3_b.copy_object(Bucket=b_bucket, Key="stolen", CopySource={"Bucket": bucket, "Key": "k"})
    with expect_error({"404", "NoSuchKey"}, 404):
        s3_b.head_object(Bucket=b_bucket, Key="stolen")


def test_other_user_reads_public_read(s3, s3_b, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"shared")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="k")
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="public-read")
    assert s3_b.get_object(Bucket=bucket, Key="k")["Body"].read() == b"shared"
    assert s3_anon.get_object(Bucket=bucket, Key="k")["Body"].read() == b"shared"
    # Still read-only for B.
    with expect_error("AccessDenied", 403):
        s3_b.put_object(Bucket=bucket, Key="k", Body=b"B")
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert [o["Key"] for o in s3_b.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    assert [o["Key"] for o in s3_anon.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


# ------------------------------------------------------------- suspended user


# How long gateways may serve a cached user record (rgw_cache_ttl_ms).
CACHE_TTL_S = float(os.environ.get("MERIDIAN_CACHE_TTL_S", "2"))


def expect_raises(call):
    """True once ``call`` fails with a ClientError (for ``eventually``)."""
    try:
        call()
    except ClientError:
        return True
    raise AssertionError("the call still succeeds")


def eventually(check, timeout=CACHE_TTL_S + 3.0):
    """Retry ``check`` until it stops raising, within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@meridian_only("needs `meridian user create/modify` (admin CLI)")
def test_suspended_user_denied():
    uid = "ts-" + uuid.uuid4().hex[:10]
    ak = "AKT" + secrets.token_hex(8).upper()
    sk = secrets.token_urlsafe(30)
    info = meridian(
        "user", "create", f"--uid={uid}", f"--display-name=Suspend {uid}", f"--email={uid}@example.com",
        f"--access-key={ak}", f"--secret={sk}",
    )
    bucket = unique_bucket_name()
    client = make_client(access_key=ak, secret_key=sk)
    try:
        assert info["user_id"] == uid
        assert info["display_name"] == f"Suspend {uid}"
        assert info["suspended"] == 0
        assert any(k["access_key"] == ak and k["secret_key"] == sk for k in info["keys"])
        assert uid in meridian("user", "list")

        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="k", Body=b"before")

        meridian("user", "modify", f"--uid={uid}", "--suspended=1")
        assert meridian("user", "info", f"--uid={uid}")["suspended"] == 1
        # Gateways cache user records for rgw_cache_ttl_ms (2 s by default):
        # the suspension must take effect within that bound.
        eventually(lambda: expect_raises(lambda: client.list_buckets()))
        for call in (
            lambda: client.get_object(Bucket=bucket, Key="k"),
            lambda: client.put_object(Bucket=bucket, Key="k", Body=b"while suspended"),
            lambda: client.list_buckets(),
        ):
            with expect_error({"UserSuspended", "AccessDenied", "InvalidAccessKeyId"}, 403):
                call()

        meridian("user", "modify", f"--uid={uid}", "--suspended=0")
        got = eventually(lambda: client.get_object(Bucket=bucket, Key="k")["Body"].read())
        assert got == b"before"
        # Nothing was written while suspended.
    finally:
        with contextlib.suppress(Exception):
            meridian("user", "modify", f"--uid={uid}", "--suspended=0")
        destroy_bucket(client, bucket)
        meridian("user", "rm", f"--uid={uid}")
    assert uid not in meridian("user", "list")

