"""Multipart uploads: 64 MiB low-level and managed (upload_file) uploads
compared by sha256, the multipart ETag, list parts / uploads, abort,
EntityTooSmall, InvalidPart, InvalidPartOrder, UploadPartCopy."""

import hashlib
from concurrent.futures import ThreadPoolExecutor

from boto3.s3.transfer import TransferConfig

from conftest import (
    MiB,
    expect_error,
    file_sha256,
    get_body,
    md5_hex,
    meridian_only,
    multipart_etag,
    random_bytes,
)


def _upload_parts(s3, bucket, key, upload_id, parts, workers=4, first=1):
    def one(item):
        n, data = item
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)
        assert r["ETag"] == f'"{md5_hex(data)}"'
        return {"PartNumber": n, "ETag": r["ETag"]}

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, enumerate(parts, start=first)))


def test_multipart_64mib_low_level(s3, bucket):
    parts = [random_bytes(8 * MiB) for _ in range(8)]
    whole = b"".join(parts)
    key = "big/64MiB.bin"
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="application/x-test", Metadata={"m": "v"})
    uid = up["UploadId"]
    assert up["Key"] == key and up["Bucket"] == bucket and uid

    done = _upload_parts(s3, bucket, key, uid, parts)

    listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == list(range(1, 9))
    assert [p["ETag"] for p in listed["Parts"]] == [d["ETag"] for d in done]
    assert all(p["Size"] == 8 * MiB for p in listed["Parts"])
    assert listed["UploadId"] == uid

    # Not visible before completion.
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key=key)

    res = s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": done})
    assert res["ETag"] == multipart_etag(parts)
    assert res["ETag"].endswith('-8"')

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 64 * MiB
    assert head["ETag"] == multipart_etag(parts)
    assert head["ContentType"] == "application/x-test"
    assert head["Metadata"] == {"m": "v"}

    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(MiB), b""):
        h.update(chunk)
    assert h.hexdigest() == hashlib.sha256(whole).hexdigest()

    # A range across a part boundary.
    r = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={8 * MiB - 10}-{8 * MiB + 9}")
    assert r["Body"].read() == whole[8 * MiB - 10 : 8 * MiB + 10]

    # The upload is gone after completion.
    assert all(u["UploadId"] != uid for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    with expect_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key=key, UploadId=uid)


def test_upload_file_multipart_64mib(s3, bucket, big_file, tmp_path):
    path, digest = big_file
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4)
    s3.upload_file(str(path), bucket, "managed.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="managed.bin")
    assert head["ContentLength"] == 64 * MiB
    with open(path, "rb") as f:
        parts = [f.read(8 * MiB) for _ in range(8)]
    assert head["ETag"] == multipart_etag(parts)
    out = tmp_path / "down.bin"
    s3.download_file(bucket, "managed.bin", str(out), Config=cfg)  # ranged GETs in parallel
    assert file_sha256(out) == digest


def test_last_part_may_be_small(s3, bucket):
    parts = [random_bytes(5 * MiB), b"z"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    done = _upload_parts(s3, bucket, "k", up["UploadId"], parts)
    res = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    assert res["ETag"] == multipart_etag(parts)
    assert get_body(s3, bucket, "k") == b"".join(parts)


def test_single_part_upload(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="one")
    done = _upload_parts(s3, bucket, "one", up["UploadId"], [b"tiny"])
    res = s3.complete_multipart_upload(
        Bucket=bucket, Key="one", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
    )
    assert res["ETag"] == multipart_etag([b"tiny"])
    assert get_body(s3, bucket, "one") == b"tiny"


def test_reupload_part_replaces_it(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    uid = up["UploadId"]
    first = random_bytes(5 * MiB)
    second = random_bytes(5 * MiB)
    s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=first)
    e = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=second)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=2, Body=b"end")["ETag"]
    listed = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed] == [(1, e), (2, e2)]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}, {"PartNumber": 2, "ETag": e2}]},
    )
    assert get_body(s3, bucket, "k") == second + b"end"


def test_complete_with_subset_of_parts(s3, bucket):
    """Parts may be skipped (numbers need not be contiguous)."""
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    parts = [random_bytes(5 * MiB), random_bytes(5 * MiB), b"tail"]
    done = _upload_parts(s3, bucket, "k", up["UploadId"], parts)
    chosen = [done[0], done[2]]
    res = s3.complete_multipart_upload(
        Bucket=bucket, Key="k", UploadId=up["UploadId"], MultipartUpload={"Parts": chosen}
    )
    assert res["ETag"] == multipart_etag([parts[0], parts[2]])
    assert get_body(s3, bucket, "k") == parts[0] + parts[2]


def test_list_parts_pagination(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    uid = up["UploadId"]
    for n in range(1, 8):
        s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"p%d" % n)
    seen, marker = [], 0
    while True:
        page = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=3, PartNumberMarker=marker)
        seen += [p["PartNumber"] for p in page["Parts"]]
        assert len(page["Parts"]) <= 3
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
    assert seen == list(range(1, 8))
    s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)


def test_list_multipart_uploads_with_prefix(s3, bucket):
    ids = {}
    for key in ("p/one", "p/two", "q/three"):
        ids[key] = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    everything = s3.list_multipart_uploads(Bucket=bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in everything["Uploads"]) == sorted(ids.items())
    only_p = s3.list_multipart_uploads(Bucket=bucket, Prefix="p/")
    assert sorted((u["Key"], u["UploadId"]) for u in only_p["Uploads"]) == sorted(
        (k, v) for k, v in ids.items() if k.startswith("p/")
    )
    # Two uploads of the same key are distinct.
    again = s3.create_multipart_upload(Bucket=bucket, Key="p/one")["UploadId"]
    assert again != ids["p/one"]
    same = [u for u in s3.list_multipart_uploads(Bucket=bucket, Prefix="p/one")["Uploads"]]
    assert sorted(u["UploadId"] for u in same) == sorted([again, ids["p/one"]])


@meridian_only("moto ignores the delimiter of ListMultipartUploads (no CommonPrefixes)")
def test_list_multipart_uploads_with_delimiter(s3, bucket):
    for key in ("p/one", "p/two", "q/three", "top"):
        s3.create_multipart_upload(Bucket=bucket, Key=key)
    grouped = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert sorted(c["Prefix"] for c in grouped.get("CommonPrefixes", [])) == ["p/", "q/"]
    assert [u["Key"] for u in grouped.get("Uploads", [])] == ["top"]


def test_abort_multipart_upload(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="gone")
    uid = up["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid, PartNumber=1, Body=random_bytes(MiB))
    resp = s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=uid)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    with expect_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=uid)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="gone")


def test_no_such_upload(s3, bucket):
    with expect_error("NoSuchUpload", 404):
        s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId="bogus-upload-id")
    with expect_error("NoSuchUpload", 404):
        s3.list_parts(Bucket=bucket, Key="k", UploadId="bogus-upload-id")


@meridian_only(
    "moto answers 500 to UploadPart / CompleteMultipartUpload on an aborted or unknown upload; "
    "AWS answers 404 NoSuchUpload"
)
def test_upload_part_after_abort_is_no_such_upload(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid, PartNumber=1, Body=b"early")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=uid)
    with expect_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="gone", UploadId=uid, PartNumber=2, Body=b"late")
    with expect_error("NoSuchUpload", 404):
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="gone",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]},
        )
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="gone")
    with expect_error("NoSuchUpload", 404):
        s3.upload_part(Bucket=bucket, Key="k", UploadId="bogus-upload-id", PartNumber=1, Body=b"x")
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_entity_too_small(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="small")
    done = _upload_parts(s3, bucket, "small", up["UploadId"], [random_bytes(MiB), random_bytes(MiB)])
    with expect_error("EntityTooSmall", 400):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="small", UploadId=up["UploadId"], MultipartUpload={"Parts": done}
        )
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="small")


def test_invalid_part_etag(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    uid = up["UploadId"]
    done = _upload_parts(s3, bucket, "k", uid, [random_bytes(5 * MiB), b"end"])
    bad = [done[0], {"PartNumber": 2, "ETag": '"0123456789abcdef0123456789abcdef"'}]
    with expect_error("InvalidPart", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": bad})
    missing = done + [{"PartNumber": 3, "ETag": done[1]["ETag"]}]
    with expect_error("InvalidPart", 400):
        s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": missing})
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")
    # The upload survives a failed completion and can still be completed.
    res = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": done})
    assert res["ETag"].endswith('-2"')


@meridian_only("moto never raises InvalidPartOrder (its order check never advances); AWS does")
def test_invalid_part_order(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="k")
    uid = up["UploadId"]
    done = _upload_parts(s3, bucket, "k", uid, [random_bytes(5 * MiB), random_bytes(5 * MiB), b"x"])
    with expect_error("InvalidPartOrder", 400):
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": [done[1], done[0], done[2]]}
        )
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")


def test_upload_part_copy(s3, bucket_factory):
    src_bucket, dst_bucket = bucket_factory(), bucket_factory()
    src = random_bytes(12 * MiB + 333)
    s3.put_object(Bucket=src_bucket, Key="source", Body=src)
    up = s3.create_multipart_upload(Bucket=dst_bucket, Key="assembled")
    uid = up["UploadId"]
    cs = {"Bucket": src_bucket, "Key": "source"}
    r1 = s3.upload_part_copy(
        Bucket=dst_bucket, Key="assembled", UploadId=uid, PartNumber=1, CopySource=cs, CopySourceRange="bytes=0-5242879"
    )
    r2 = s3.upload_part_copy(
        Bucket=dst_bucket,
        Key="assembled",
        UploadId=uid,
        PartNumber=2,
        CopySource=cs,
        CopySourceRange=f"bytes=5242880-{len(src) - 1}",
    )
    tail = b"own bytes at the end"
    r3 = s3.upload_part(Bucket=dst_bucket, Key="assembled", UploadId=uid, PartNumber=3, Body=tail)
    assert r1["CopyPartResult"]["ETag"] == f'"{md5_hex(src[:5 * MiB])}"'
    assert r2["CopyPartResult"]["ETag"] == f'"{md5_hex(src[5 * MiB:])}"'
    parts = [
        {"PartNumber": 1, "ETag": r1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": r2["CopyPartResult"]["ETag"]},
        {"PartNumber": 3, "ETag": r3["ETag"]},
    ]
    res = s3.complete_multipart_upload(Bucket=dst_bucket, Key="assembled", UploadId=uid, MultipartUpload={"Parts": parts})
    assert res["ETag"] == multipart_etag([src[: 5 * MiB], src[5 * MiB :], tail])
    assert hashlib.sha256(get_body(s3, dst_bucket, "assembled")).digest() == hashlib.sha256(src + tail).digest()
    # Whole-object part copy (no range).
    up2 = s3.create_multipart_upload(Bucket=dst_bucket, Key="whole")
    r = s3.upload_part_copy(Bucket=dst_bucket, Key="whole", UploadId=up2["UploadId"], PartNumber=1, CopySource=cs)
    s3.complete_multipart_upload(
        Bucket=dst_bucket,
        Key="whole",
        UploadId=up2["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]},
    )
    assert get_body(s3, dst_bucket, "whole") == src
