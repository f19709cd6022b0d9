"""Payload signing modes: signed payload, UNSIGNED-PAYLOAD, a hand-built
STREAMING-AWS4-HMAC-SHA256-PAYLOAD (chunk-signed aws-chunked) body, valid and
tampered, and the STREAMING-UNSIGNED-PAYLOAD-TRAILER form newer SDKs send.
(`aws s3 cp` round trips are in test_awscli.py.)"""

import base64
import datetime as dt
import hashlib
import zlib

import pytest
import requests

from conftest import (
    ENDPOINT,
    KiB,
    MiB,
    assert_s3_error,
    build_signed_chunked_put,
    build_url,
    expect_error,
    get_body,
    make_client,
    md5_hex,
    meridian_only,
    obj_path,
    random_bytes,
    sign_request,
)


def _capture(client, op):
    seen = []

    def hook(request, **kwargs):
        seen.append(dict(request.headers.items()))

    client.meta.events.register(f"before-send.s3.{op}", hook)
    return seen


@pytest.mark.parametrize(
    "signing,expected",
    [(True, "sha256"), (False, "UNSIGNED-PAYLOAD"), (None, "sha256")],
    ids=["payload-signed", "unsigned-payload", "default-over-http"],
)
def test_boto3_payload_modes(bucket, signing, expected):
    extra = {} if signing is None else {"payload_signing_enabled": signing}
    client = make_client(**extra)
    seen = _capture(client, "PutObject")
    data = random_bytes(MiB + 333)
    put = client.put_object(Bucket=bucket, Key="k", Body=data)
    assert put["ETag"] == f'"{md5_hex(data)}"'
    sent = {k.lower(): v for k, v in seen[-1].items()}
    value = sent["x-amz-content-sha256"]
    value = value.decode() if isinstance(value, bytes) else value
    if signing is None and ENDPOINT.startswith("https"):
        # Over TLS botocore's default is UNSIGNED-PAYLOAD or an unsigned
        # aws-chunked body with a trailing checksum.
        assert value in ("UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", hashlib.sha256(data).hexdigest())
    elif expected == "sha256":
        assert value == hashlib.sha256(data).hexdigest()
    else:
        assert value == expected
    assert get_body(client, bucket, "k") == data


def test_chunk_signer_matches_aws_documented_example():
    """Self-check of the helper against the worked example of the AWS SigV4
    streaming docs (66,560 bytes of 'a' in 64 KiB chunks); no server needed."""
    headers, body, sigs = build_signed_chunked_put(
        "https://s3.amazonaws.com/examplebucket/chunkObject.txt",
        b"a" * 66560,
        chunk_size=64 * KiB,
        headers={"x-amz-storage-class": "REDUCED_REDUNDANCY"},
        access_key="AKIAIOSFODNN7EXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region="us-east-1",
        now=dt.datetime(2013, 5, 24, 0, 0, 0),
    )
    assert headers["Authorization"].endswith(
        "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    ), headers["Authorization"]
    assert "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;" \
        "x-amz-decoded-content-length;x-amz-storage-class" in headers["Authorization"]
    assert sigs == [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]
    assert len(body) == 66824 == int(headers["Content-Length"])


def _streaming_put(bucket, key, data, **kw):
    url = build_url(ENDPOINT, obj_path(bucket, key))
    headers, body, _ = build_signed_chunked_put(url, data, **kw)
    return requests.put(url, data=body, headers=headers, timeout=120)


@pytest.mark.parametrize(
    "size,chunk", [(200 * KiB + 17, 64 * KiB), (5 * MiB + 1, 1 * MiB), (100, 64 * KiB), (0, 64 * KiB)]
)
def test_streaming_signed_payload(s3, bucket, size, chunk):
    data = random_bytes(size)
    r = _streaming_put(
        bucket, "streamed", data, chunk_size=chunk, headers={"Content-Type": "text/x-stream", "x-amz-meta-mode": "chunked"}
    )
    assert r.status_code == 200, r.content[:500]
    assert r.headers["ETag"] == f'"{md5_hex(data)}"'
    head = s3.head_object(Bucket=bucket, Key="streamed")
    assert head["ContentLength"] == size
    assert head["ContentType"] == "text/x-stream"
    assert head["Metadata"] == {"mode": "chunked"}
    # aws-chunked is a transfer detail: it must not be stored as the object's encoding.
    assert "aws-chunked" not in (head.get("ContentEncoding") or "")
    assert get_body(s3, bucket, "streamed") == data


@meridian_only("moto decodes aws-chunked bodies without verifying chunk signatures")
@pytest.mark.parametrize(
    "tamper", [{"tamper_chunk": 1}, {"tamper_signature_of": 0}, {"tamper_signature_of": 3}],
    ids=["chunk-data", "first-signature", "final-signature"],
)
def test_streaming_tampered_chunk_rejected(s3, bucket, tamper):
    s3.put_object(Bucket=bucket, Key="existing", Body=b"old content")
    data = random_bytes(3 * 64 * KiB)
    r = _streaming_put(bucket, "existing", data, chunk_size=64 * KiB, **tamper)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    assert get_body(s3, bucket, "existing") == b"old content"
    r = _streaming_put(bucket, "fresh", data, chunk_size=64 * KiB, **tamper)
    assert_s3_error(r, "SignatureDoesNotMatch", 403)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="fresh")
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["existing"]


@meridian_only("moto does not check x-amz-decoded-content-length against the decoded body")
def test_streaming_decoded_length_mismatch_rejected(s3, bucket):
    # Every chunk signature is valid, but the signed decoded length promises
    # one more chunk than the body carries.
    data = random_bytes(2 * 64 * KiB)
    url = build_url(ENDPOINT, obj_path(bucket, "short"))
    headers, body, _ = build_signed_chunked_put(url, data, chunk_size=64 * KiB, declared_length=3 * 64 * KiB)
    r = requests.put(url, data=body, headers=headers, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:300])
    assert_s3_error(
        r, {"IncompleteBody", "SignatureDoesNotMatch", "InvalidRequest", "InvalidArgument", "BadRequest"}
    )
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="short")


def _unsigned_trailer_put(bucket, key, data, chunk=64 * KiB, checksum=None):
    crc = checksum or base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = bytearray()
    for i in range(0, len(data), chunk):
        part = data[i : i + chunk]
        body += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    body += b"0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n".encode() + b"\r\n"
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(data)),
        "X-Amz-Trailer": "x-amz-checksum-crc32",
        "Content-Length": str(len(body)),
    }
    url = build_url(ENDPOINT, obj_path(bucket, key))
    req = sign_request("PUT", url, headers, b"", payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    return requests.put(url, data=bytes(body), headers=dict(req.headers.items()), timeout=120)


def test_streaming_unsigned_payload_trailer(s3, bucket):
    data = random_bytes(300 * KiB + 5)
    r = _unsigned_trailer_put(bucket, "trailer", data)
    assert r.status_code == 200, r.content[:500]
    assert r.headers["ETag"] == f'"{md5_hex(data)}"'
    assert s3.head_object(Bucket=bucket, Key="trailer")["ContentLength"] == len(data)
    assert get_body(s3, bucket, "trailer") == data


@meridian_only("moto does not verify the trailing x-amz-checksum-crc32")
def test_streaming_unsigned_trailer_bad_checksum(s3, bucket):
    s3.put_object(Bucket=bucket, Key="trailer", Body=b"old")
    data = random_bytes(100 * KiB)
    wrong = base64.b64encode(zlib.crc32(data + b"x").to_bytes(4, "big")).decode()
    r = _unsigned_trailer_put(bucket, "trailer", data, checksum=wrong)
    assert_s3_error(r, {"BadDigest", "XAmzContentChecksumMismatch", "InvalidRequest"}, 400)
    assert get_body(s3, bucket, "trailer") == b"old"


def test_boto3_checksum_header(s3, bucket):
    """boto3 >= 1.36 sends x-amz-checksum-crc32 with PutObject by default; an
    explicit SHA256 checksum must be accepted too."""
    data = random_bytes(64 * KiB)
    s3.put_object(Bucket=bucket, Key="c1", Body=data, ChecksumAlgorithm="CRC32")
    s3.put_object(Bucket=bucket, Key="c2", Body=data, ChecksumAlgorithm="SHA256")
    assert get_body(s3, bucket, "c1") == data
    assert get_body(s3, bucket, "c2") == data
