"""Presigned (query-string SigV4) GET and PUT URLs, expiry and tampering."""

import time
from urllib.parse import parse_qs, urlsplit

import requests

from conftest import assert_s3_error, expect_error, get_body, meridian_only, random_bytes


def test_presigned_get(s3, bucket):
    data = random_bytes(100_000)
    s3.put_object(Bucket=bucket, Key="dir/obj name+1", Body=data, ContentType="application/x-pre")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/obj name+1"}, ExpiresIn=300
    )
    q = parse_qs(urlsplit(url).query)
    assert q["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and "X-Amz-Signature" in q
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.content[:300]
    assert r.content == data
    assert r.headers["Content-Type"] == "application/x-pre"
    # A presigned HEAD and a presigned ranged GET.
    head_url = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "dir/obj name+1"})
    assert requests.head(head_url, timeout=30).headers["Content-Length"] == str(len(data))
    r = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert r.status_code == 206 and r.content == data[10:20]


def test_presigned_get_with_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"abc")
    url = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "k", "ResponseContentDisposition": 'attachment; filename="x.bin"'},
    )
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.content == b"abc"
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.bin"'


def test_presigned_put(s3, bucket):
    data = random_bytes(300_000)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "uploaded"}, ExpiresIn=300)
    r = requests.put(url, data=data, timeout=30)
    assert r.status_code == 200, r.content[:300]
    assert get_body(s3, bucket, "uploaded") == data
    assert s3.head_object(Bucket=bucket, Key="uploaded")["ContentLength"] == len(data)


def test_presigned_put_with_signed_content_type(s3, bucket):
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "typed", "ContentType": "text/csv"}, ExpiresIn=300
    )
    r = requests.put(url, data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}, timeout=30)
    assert r.status_code == 200, r.content[:300]
    head = s3.head_object(Bucket=bucket, Key="typed")
    assert head["ContentType"] == "text/csv"
    assert get_body(s3, bucket, "typed") == b"a,b\n1,2\n"


@meridian_only("moto does not check X-Amz-Expires (serves expired presigned URLs)")
def test_presigned_url_expired(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"soon gone")
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2)  # time is the point here
    r = requests.get(get_url, timeout=30)
    assert_s3_error(r, "AccessDenied", 403)
    r = requests.put(put_url, data=b"overwrite", timeout=30)
    assert_s3_error(r, "AccessDenied", 403)
    assert get_body(s3, bucket, "k") == b"soon gone"


@meridian_only("moto does not verify presigned signatures")
def test_presigned_url_tampered(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    s3.put_object(Bucket=bucket, Key="other", Body=b"other data")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    base, sig = url.split("X-Amz-Signature=")
    sig, _, rest = sig.partition("&")
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    r = requests.get(f"{base}X-Amz-Signature={flipped}{'&' + rest if rest else ''}", timeout=30)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    # Same signature, another key.
    r = requests.get(url.replace(f"/{bucket}/k?", f"/{bucket}/other?"), timeout=30)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    # A presigned GET cannot be used as a PUT.
    r = requests.put(url, data=b"evil", timeout=30)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    assert get_body(s3, bucket, "k") == b"data"
    # The untouched URL still works.
    assert requests.get(url, timeout=30).content == b"data"


@meridian_only("moto does not verify presigned signatures")
def test_presigned_put_wrong_content_type(s3, bucket):
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "typed", "ContentType": "text/csv"}, ExpiresIn=300
    )
    r = requests.put(url, data=b"x", headers={"Content-Type": "image/png"}, timeout=30)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="typed")


@meridian_only("moto does not bound X-Amz-Expires")
def test_presigned_url_valid_longer_than_a_week_is_refused(s3, bucket):
    """AWS's and RGW's rule: a presigned URL lives at most 604800 s (7 days)."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    week = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604800)
    r = requests.get(week, timeout=30)
    assert r.status_code == 200 and r.content == b"kept", r.content[:300]
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    r = requests.get(get_url, timeout=30)
    assert_s3_error(r, "AccessDenied", 403)
    r = requests.put(put_url, data=b"overwrite", timeout=30)
    assert_s3_error(r, "AccessDenied", 403)
    assert get_body(s3, bucket, "k") == b"kept"
