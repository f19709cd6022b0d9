"""Pool compression, set as the RGW runbook sets it:

    meridian osd pool set POOL compression_algorithm lz4|zstd
    meridian osd pool set POOL compression_mode none|passive|aggressive|force

The gateway compresses each 4 MiB stripe of object data it stores in the
zone's data pool (then seals it: the suite's cluster encrypts every object),
keeps a compressed stripe only when it saves enough
(compression_required_ratio), and `bucket stats` reports size and
size_utilized. Every object is read back whole and in ranges; the stripes
are read raw from the pool to see what was stored.
"""

import contextlib
import time


from conftest import (
    DATA_POOL,
    MiB,
    md5_hex,
    meridian,
    meridian_only,
    meridian_raw,
    multipart_etag,
    random_bytes,
)

pytestmark = meridian_only("pool options and bucket stats are admin commands")

STRIPE = 4 * MiB


def text(size: int, tag: str = "") -> bytes:
    """Log-like text: compresses well, but not to nothing."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += f"{tag}{i:08d} GET /bucket/key-{i % 977} 200 {i * 31 % 65536} bytes\n".encode()
        i += 1
    return bytes(out[:size])


def pool_set(key: str, value: str):
    meridian_raw("osd", "pool", "set", DATA_POOL, key, value)


@contextlib.contextmanager
def compression(s3, bucket_factory, algorithm: str, mode: str):
    """Sets the data pool's compression for the block, then turns it off
    (the rest of the suite shares the pool)."""
    pool_set("compression_algorithm", algorithm)
    pool_set("compression_mode", mode)
    try:
        wait_for_gateway(s3, bucket_factory, compresses=mode != "none" and algorithm != "none")
        yield
    finally:
        pool_set("compression_mode", "none")
        pool_set("compression_algorithm", "none")
        pool_set("compression_required_ratio", "0.875")
        wait_for_gateway(s3, bucket_factory, compresses=False)


def wait_for_gateway(s3, bucket_factory, compresses: bool):
    """The gateway follows the cluster map: wait until a text object it
    stores comes out compressed, or not, as the pool now says (the map
    reaches it in milliseconds)."""
    b = bucket_factory()
    deadline = time.time() + 20
    while True:
        s3.put_object(Bucket=b, Key="probe", Body=text(64 * 1024), ContentType="text/plain")
        if (utilized(b) < 64 * 1024) == compresses:
            return
        assert time.time() < deadline, "the gateway never picked up the pool's compression setting"
        time.sleep(0.2)


def stats(bucket: str) -> dict:
    return meridian("bucket", "stats", "--bucket", bucket)["usage"]["rgw.main"]


def utilized(bucket: str) -> int:
    return stats(bucket)["size_utilized"]


def stripes_of(bucket: str) -> list[str]:
    bid = meridian("bucket", "stats", "--bucket", bucket)["id"]
    out = meridian_raw("ls", "-p", DATA_POOL).stdout.decode().split()
    return sorted(o for o in out if o.startswith(bid + "_"))


def raw_len(obj: str) -> int:
    return len(meridian_raw("get", "-p", DATA_POOL, obj, "-").stdout)


def read(s3, bucket: str, key: str, rng: str | None = None) -> bytes:
    kw = {"Range": rng} if rng else {}
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def test_pool_options_are_validated_and_shown():
    pool_set("compression_algorithm", "zstd")
    try:
        got = meridian("osd", "pool", "get", DATA_POOL, "compression_algorithm")
        assert got == {"compression_algorithm": "zstd"}
        everything = meridian("osd", "pool", "get", DATA_POOL, "all")
        assert everything["compression_algorithm"] == "zstd"
        shown = meridian_raw("osd", "pool", "get", DATA_POOL, "compression_algorithm")
        assert shown.stdout.decode().strip() == "compression_algorithm: zstd"
    finally:
        pool_set("compression_algorithm", "none")
    for key, value, hint in [
        ("compression_algorithm", "snappy", "use lz4 or zstd"),
        ("compression_algorithm", "gzip", "use lz4, zstd or none"),
        ("compression_mode", "always", "none, passive, aggressive or force"),
        ("compression_required_ratio", "1.5", "(0, 1]"),
    ]:
        p = meridian_raw("osd", "pool", "set", DATA_POOL, key, value, check=False)
        assert p.returncode != 0, f"{key}={value} was accepted"
        assert hint in p.stderr.decode(), p.stderr.decode()
    # Never set on the index pool: Ceph's answer for an unset option.
    p = meridian_raw("osd", "pool", "get", "default.meridian.buckets.index", "compression_mode", check=False)
    assert p.returncode != 0
    assert "not set on pool" in p.stderr.decode(), p.stderr.decode()


def test_compressed_objects_read_back_whole_and_in_ranges(s3, bucket_factory):
    # zstd here; lz4 objects are read back in the modes test below.
    with compression(s3, bucket_factory, "zstd", "aggressive"):
        b = bucket_factory()
        big = text(2 * STRIPE + 300_000, "big")  # two full stripes and a tail
        noise = random_bytes(STRIPE + 1000)  # does not compress: stored as is
        parts = [text(5 * MiB, "p1"), text(5 * MiB, "p2"), text(123_457, "p3")]
        s3.put_object(Bucket=b, Key="big.log", Body=big)
        s3.put_object(Bucket=b, Key="noise.bin", Body=noise)
        up = s3.create_multipart_upload(Bucket=b, Key="multi.log")["UploadId"]
        done = []
        for n, part in enumerate(parts, 1):
            etag = s3.upload_part(Bucket=b, Key="multi.log", UploadId=up, PartNumber=n, Body=part)["ETag"]
            done.append({"PartNumber": n, "ETag": etag})
        s3.complete_multipart_upload(Bucket=b, Key="multi.log", UploadId=up, MultipartUpload={"Parts": done})
        s3.copy_object(Bucket=b, Key="copy.log", CopySource={"Bucket": b, "Key": "big.log"})

    # Compression is off again: what was stored compressed still reads back.
    assert read(s3, b, "big.log") == big
    assert read(s3, b, "copy.log") == big
    assert read(s3, b, "noise.bin") == noise
    whole = b"".join(parts)
    assert read(s3, b, "multi.log") == whole
    assert s3.head_object(Bucket=b, Key="big.log")["ETag"].strip('"') == md5_hex(big)
    assert s3.head_object(Bucket=b, Key="multi.log")["ETag"].strip('"') == multipart_etag(parts).strip('"')
    for lo, hi in [
        (0, 0),
        (STRIPE - 10, STRIPE + 10),  # across a stripe boundary
        (2 * STRIPE + 5, 2 * STRIPE + 299_999),  # inside the tail stripe
        (123, 2 * STRIPE + 17),
    ]:
        assert read(s3, b, "big.log", f"bytes={lo}-{hi}") == big[lo : hi + 1]
    assert read(s3, b, "big.log", "bytes=-1000") == big[-1000:]
    assert read(s3, b, "multi.log", f"bytes={5 * MiB - 3}-{10 * MiB + 2}") == whole[5 * MiB - 3 : 10 * MiB + 3]
    # A range of a compressed source as a part of another upload.
    up = s3.create_multipart_upload(Bucket=b, Key="ranged-copy")["UploadId"]
    etag = s3.upload_part_copy(
        Bucket=b, Key="ranged-copy", UploadId=up, PartNumber=1,
        CopySource={"Bucket": b, "Key": "big.log"}, CopySourceRange=f"bytes=1000-{STRIPE + 999}",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=b, Key="ranged-copy", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    assert read(s3, b, "ranged-copy") == big[1000 : STRIPE + 1000]

    st = stats(b)
    logical = 2 * len(big) + len(noise) + len(whole) + STRIPE
    assert st["size"] == logical
    sizes = [len(big), len(big), len(noise), len(whole), STRIPE]
    assert st["size_actual"] == sum(-(-n // 4096) * 4096 for n in sizes)
    # The text shrank; the noise and the uncompressed ranged copy did not.
    assert len(noise) + STRIPE < st["size_utilized"] < len(noise) + STRIPE + (2 * len(big) + len(whole)) // 2, st
    assert st["size_kb_utilized"] == -(-st["size_utilized"] // 1024)

    # In the pool: text stripes are short, noise stripes full length, and
    # nothing is stored in clear (compressed, then sealed).
    lens = [raw_len(o) for o in stripes_of(b)]
    assert sum(lens) == st["size_utilized"], (lens, st)
    assert sum(1 for n in lens if n < STRIPE // 2) >= 3 + 3 + 3, lens
    assert lens.count(STRIPE) >= 1 + 1, lens


def test_modes_follow_the_content_type(s3, bucket_factory):
    """passive compresses only what is hinted compressible, aggressive all but
    what is hinted incompressible, force everything, none nothing."""
    data = text(MiB)
    cases = [
        ("text/plain", None),
        ("application/json; charset=utf-8", None),
        ("application/xml", None),
        ("application/octet-stream", None),
        ("image/jpeg", None),
        ("application/zip", None),
        ("text/plain", "gzip"),
    ]
    expect = {
        "passive": [True, True, True, False, False, False, False],
        "aggressive": [True, True, True, True, False, False, False],
        "force": [True] * 7,
        "none": [False] * 7,
    }
    for mode, want in expect.items():
        with compression(s3, bucket_factory, "lz4", mode):
            got = []
            for ct, enc in cases:
                b = bucket_factory()
                kw = {"ContentEncoding": enc} if enc else {}
                s3.put_object(Bucket=b, Key="o", Body=data, ContentType=ct, **kw)
                got.append(utilized(b) < len(data))
                assert read(s3, b, "o") == data
        assert got == want, f"mode {mode}: {list(zip(cases, got))}"


def test_algorithm_none_turns_compression_off_whatever_the_mode(s3, bucket_factory):
    data = text(MiB)
    with compression(s3, bucket_factory, "none", "force"):
        b = bucket_factory()
        s3.put_object(Bucket=b, Key="o", Body=data, ContentType="text/plain")
        assert utilized(b) == len(data)


def test_a_stripe_that_does_not_save_enough_is_stored_as_is(s3, bucket_factory):
    data = text(3 * MiB)
    with compression(s3, bucket_factory, "zstd", "force"):
        pool_set("compression_required_ratio", "0.01")
        wait_for_gateway(s3, bucket_factory, compresses=False)
        b = bucket_factory()
        s3.put_object(Bucket=b, Key="o", Body=data)
    # Text compresses to maybe 10%, not 1%: every stripe is stored plain.
    assert utilized(b) == len(data)
    assert read(s3, b, "o") == data


def test_small_objects_kept_inline_are_compressed_too(s3, bucket_factory):
    """An object small enough to live inline in its index shard is stored
    compressed as a stripe would be, and reads back whole and in ranges."""
    data = text(6000)
    with compression(s3, bucket_factory, "zstd", "force"):
        b = bucket_factory()
        s3.put_object(Bucket=b, Key="small", Body=data, ContentType="text/plain")
    assert stripes_of(b) == [], "a 6,000-byte object is kept inline, not in the data pool"
    assert utilized(b) < len(data)
    assert read(s3, b, "small") == data
    assert read(s3, b, "small", "bytes=100-4320") == data[100:4321]
    assert read(s3, b, "small", "bytes=-17") == data[-17:]
