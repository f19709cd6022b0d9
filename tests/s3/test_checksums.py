"""Additional checksums kept with every object: the one the client sent (or
named with ChecksumAlgorithm), else CRC64NVME as AWS adds by default;
returned by PUT, by GET/HEAD with ChecksumMode=ENABLED (whole objects and
parts, never ranges) and by GetObjectAttributes; multipart uploads with
COMPOSITE and FULL_OBJECT checksums, part checksums checked at completion;
copies summed again. Every expected value is computed here, independently.
"""

import base64
import hashlib
import zlib

import pytest

from conftest import (
    MiB,
    expect_error,
    obj_path,
    raw_request,
    random_bytes,
)


def _table(poly: int) -> list[int]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c)
    return out


_CRC32C = _table(0x82F63B78)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5)


def _reflected(data: bytes, table: list[int], width: int) -> int:
    mask = (1 << width) - 1
    crc = mask
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def raw_sum(alg: str, data: bytes) -> bytes:
    if alg == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if alg == "CRC32C":
        return _reflected(data, _CRC32C, 32).to_bytes(4, "big")
    if alg == "CRC64NVME":
        return _reflected(data, _CRC64NVME, 64).to_bytes(8, "big")
    return hashlib.new(alg.lower(), data).digest()


def checksum(alg: str, data: bytes) -> str:
    return b64(raw_sum(alg, data))


def test_the_reference_crcs_are_right():
    """The check values of the CRC catalogue: the expectations below can fail."""
    assert _reflected(b"123456789", _CRC32C, 32) == 0xE3069283
    assert _reflected(b"123456789", _CRC64NVME, 64) == 0xAE8B14860A799888


ALGS = ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"]


@pytest.mark.parametrize("alg", ALGS)
def test_put_keeps_the_checksum_the_client_sent(s3, bucket, alg):
    data = random_bytes(100_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=alg)
    want = checksum(alg, data)
    assert put[f"Checksum{alg}"] == want
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == want
    assert head["ChecksumType"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{alg}"] == want
    assert got["Body"].read() == data
    attrs = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"][f"Checksum{alg}"] == want
    assert attrs["Checksum"]["ChecksumType"] == "FULL_OBJECT"


def test_an_object_uploaded_without_a_checksum_gets_crc64nvme(s3, bucket):
    data = b"no checksum was sent with this body" * 100
    # A raw SigV4 PUT with no x-amz-checksum-* header (boto3 would add CRC32).
    r = raw_request("PUT", obj_path(bucket, "plain"), body=data)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-amz-checksum-crc64nvme") == checksum("CRC64NVME", data)
    # Without checksum mode, HEAD says nothing of it.
    h = raw_request("HEAD", obj_path(bucket, "plain"))
    assert not [k for k in h.headers if k.lower().startswith("x-amz-checksum")], h.headers
    h = raw_request("HEAD", obj_path(bucket, "plain"), headers={"x-amz-checksum-mode": "ENABLED"})
    assert h.headers["x-amz-checksum-crc64nvme"] == checksum("CRC64NVME", data)
    assert h.headers["x-amz-checksum-type"] == "FULL_OBJECT"


def test_a_range_has_no_checksum(s3, bucket):
    data = random_bytes(10_000)
    s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key="k", Range="bytes=10-99", ChecksumMode="ENABLED")
    assert got["Body"].read() == data[10:100]
    assert not [k for k in got if k.startswith("Checksum")], got.keys()


def upload_parts(s3, bucket, key, upload_id, parts, alg=None):
    done = []
    for n, p in enumerate(parts, 1):
        kw = {"ChecksumAlgorithm": alg} if alg else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=p, **kw)
        entry = {"PartNumber": n, "ETag": r["ETag"]}
        if alg:
            assert r[f"Checksum{alg}"] == checksum(alg, p)
            entry[f"Checksum{alg}"] = r[f"Checksum{alg}"]
        done.append(entry)
    return done


def test_composite_multipart_checksum(s3, bucket):
    parts = [random_bytes(5 * MiB), random_bytes(5 * MiB), random_bytes(1000)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")
    assert up["ChecksumAlgorithm"] == "SHA256"
    assert up["ChecksumType"] == "COMPOSITE"
    done = upload_parts(s3, bucket, "mp", up["UploadId"], parts, "SHA256")
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=up["UploadId"])
    assert listed["ChecksumAlgorithm"] == "SHA256"
    assert [p["ChecksumSHA256"] for p in listed["Parts"]] == [checksum("SHA256", p) for p in parts]
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    composite = checksum("SHA256", b"".join(raw_sum("SHA256", p) for p in parts))
    assert r["ChecksumSHA256"] == f"{composite}-3"
    assert r["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == f"{composite}-3"
    # One part: its own checksum.
    part2 = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
    assert part2["ChecksumSHA256"] == checksum("SHA256", parts[1])
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum", "ObjectParts"])
    assert attrs["Checksum"] == {"ChecksumSHA256": composite, "ChecksumType": "COMPOSITE"}
    assert [p["ChecksumSHA256"] for p in attrs["ObjectParts"]["Parts"]] == [checksum("SHA256", p) for p in parts]
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"".join(parts)


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C"])
def test_full_object_multipart_checksum_combines_the_parts(s3, bucket, alg):
    parts = [random_bytes(5 * MiB), random_bytes(123_457)]
    whole = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=alg, ChecksumType="FULL_OBJECT")
    assert up["ChecksumType"] == "FULL_OBJECT"
    done = upload_parts(s3, bucket, "mp", up["UploadId"], parts, alg)
    # The client's own whole-object value is checked: a wrong one is refused...
    with expect_error("BadDigest", 400):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done},
            **{f"Checksum{alg}": checksum(alg, whole + b"x")},
        )
    # ... and the right one accepted.
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done},
        **{f"Checksum{alg}": checksum(alg, whole)},
    )
    assert r[f"Checksum{alg}"] == checksum(alg, whole)
    assert r["ChecksumType"] == "FULL_OBJECT"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head[f"Checksum{alg}"] == checksum(alg, whole)


def test_a_multipart_upload_without_a_checksum_gets_full_object_crc64nvme(s3, bucket):
    parts = [random_bytes(5 * MiB), random_bytes(777)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    done = upload_parts(s3, bucket, "mp", up["UploadId"], parts)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["Checksum"])
    assert attrs["Checksum"]["ChecksumCRC64NVME"] == checksum("CRC64NVME", b"".join(parts))
    assert attrs["Checksum"]["ChecksumType"] == "FULL_OBJECT"


def test_multipart_checksum_refusals(s3, bucket):
    for alg, kind in [("SHA256", "FULL_OBJECT"), ("SHA1", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE")]:
        with expect_error("InvalidRequest", 400):
            s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm=alg, ChecksumType=kind)
    with expect_error("InvalidRequest", 400):
        s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumType="COMPOSITE")
    up = s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256")["UploadId"]
    # A part summed with another algorithm than the upload's.
    with expect_error("InvalidRequest", 400):
        s3.upload_part(Bucket=bucket, Key="x", UploadId=up, PartNumber=1, Body=b"abc", ChecksumAlgorithm="CRC32")
    part = random_bytes(1000)
    done = upload_parts(s3, bucket, "x", up, [part], "SHA256")
    # A listed part checksum that is not the part's.
    bad = [dict(done[0], ChecksumSHA256=checksum("SHA256", b"other"))]
    with expect_error("InvalidPart", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="x", UploadId=up, MultipartUpload={"Parts": bad})
    # A declared object size the parts do not add up to.
    with expect_error("InvalidRequest", 400):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="x", UploadId=up, MultipartUpload={"Parts": done}, MpuObjectSize=999
        )
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key="x", UploadId=up, MultipartUpload={"Parts": done}, MpuObjectSize=1000
    )
    assert r["ChecksumSHA256"] == checksum("SHA256", raw_sum("SHA256", part)) + "-1"


def test_copies_are_summed_again(s3, bucket):
    parts = [random_bytes(5 * MiB), random_bytes(4321)]
    whole = b"".join(parts)
    up = s3.create_multipart_upload(Bucket=bucket, Key="src", ChecksumAlgorithm="SHA1")
    done = upload_parts(s3, bucket, "src", up["UploadId"], parts, "SHA1")
    s3.complete_multipart_upload(Bucket=bucket, Key="src", UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    # Same algorithm as the source, now over the whole object.
    c = s3.copy_object(Bucket=bucket, Key="same", CopySource={"Bucket": bucket, "Key": "src"})
    assert c["CopyObjectResult"]["ChecksumSHA1"] == checksum("SHA1", whole)
    head = s3.head_object(Bucket=bucket, Key="same", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == checksum("SHA1", whole)
    assert head["ChecksumType"] == "FULL_OBJECT"
    # Or the algorithm the copy names.
    c = s3.copy_object(
        Bucket=bucket, Key="crc", CopySource={"Bucket": bucket, "Key": "src"}, ChecksumAlgorithm="CRC32C"
    )
    assert c["CopyObjectResult"]["ChecksumCRC32C"] == checksum("CRC32C", whole)
    # A part copied from a range gets the upload's algorithm.
    up = s3.create_multipart_upload(Bucket=bucket, Key="pc", ChecksumAlgorithm="CRC32")["UploadId"]
    pc = s3.upload_part_copy(
        Bucket=bucket, Key="pc", UploadId=up, PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=100-1099",
    )
    assert pc["CopyPartResult"]["ChecksumCRC32"] == checksum("CRC32", whole[100:1100])
    s3.abort_multipart_upload(Bucket=bucket, Key="pc", UploadId=up)


def test_a_wrong_checksum_header_is_refused_and_nothing_is_stored(s3, bucket):
    data = b"the body the client meant"
    r = raw_request(
        "PUT", obj_path(bucket, "bad"), body=data,
        headers={"x-amz-checksum-sha256": checksum("SHA256", data + b"!")},
    )
    assert r.status_code == 400 and b"BadDigest" in r.content, r.text
    with expect_error({"NoSuchKey", "404"}, 404):
        s3.head_object(Bucket=bucket, Key="bad")


def test_a_named_algorithm_is_computed_when_no_value_is_sent(s3, bucket):
    data = random_bytes(4096)
    r = raw_request(
        "PUT", obj_path(bucket, "named"), body=data, headers={"x-amz-checksum-algorithm": "SHA1"}
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-amz-checksum-sha1"] == checksum("SHA1", data)
    head = s3.head_object(Bucket=bucket, Key="named", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == checksum("SHA1", data)


def test_composite_crc32_and_a_part_read_with_its_checksum(s3, bucket):
    parts = [random_bytes(5 * MiB), random_bytes(2048)]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")
    assert up["ChecksumType"] == "COMPOSITE"
    done = upload_parts(s3, bucket, "mp", up["UploadId"], parts, "CRC32")
    r = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": done})
    composite = checksum("CRC32", b"".join(raw_sum("CRC32", p) for p in parts))
    assert r["ChecksumCRC32"] == f"{composite}-2"
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == checksum("CRC32", parts[1])
    assert got["Body"].read() == parts[1]
