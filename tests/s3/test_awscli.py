"""The AWS CLI (awscli from PyPI) against the endpoint: mb, cp up/down
(small, 20 MiB and 64 MiB multipart), ls, sync, rm --recursive, rb, and
s3api head-object.  Credentials come from the environment, the config file
(AWS_CONFIG_FILE, a temp file) sets path-style addressing and an 8 MiB
multipart threshold and chunk size."""

import json
import os

from conftest import (
    MiB,
    expect_error,
    file_sha256,
    get_body,
    md5_hex,
    multipart_etag,
    unique_bucket_name,
)


def _tree(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_mb_ls_rb(aws, s3, bucket_factory):
    name = bucket_factory.register(unique_bucket_name())
    out = aws("s3", "mb", f"s3://{name}").stdout.decode()
    assert f"make_bucket: {name}" in out
    s3.head_bucket(Bucket=name)
    listing = aws("s3", "ls").stdout.decode()
    assert name in listing.split()
    aws("s3", "rb", f"s3://{name}")
    with expect_error({"404", "NoSuchBucket"}, 404):
        s3.head_bucket(Bucket=name)


def test_cp_small_up_and_down(aws, s3, bucket, tmp_path):
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from the aws cli\n")
    aws("s3", "cp", str(src), f"s3://{bucket}/dir/hello.txt", "--content-type", "text/plain")
    head = s3.head_object(Bucket=bucket, Key="dir/hello.txt")
    assert head["ContentType"] == "text/plain"
    assert head["ETag"] == f'"{md5_hex(src.read_bytes())}"'
    dst = tmp_path / "back.txt"
    aws("s3", "cp", f"s3://{bucket}/dir/hello.txt", str(dst))
    assert dst.read_bytes() == src.read_bytes()
    # Download to stdout.
    proc = aws("s3", "cp", f"s3://{bucket}/dir/hello.txt", "-")
    assert proc.stdout == src.read_bytes()


def test_cp_20mib_multipart(aws, s3, bucket, tmp_path):
    data = os.urandom(20 * MiB)
    src = tmp_path / "twenty.bin"
    src.write_bytes(data)
    aws("s3", "cp", str(src), f"s3://{bucket}/twenty.bin")
    head = s3.head_object(Bucket=bucket, Key="twenty.bin")
    assert head["ContentLength"] == 20 * MiB
    chunks = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert head["ETag"] == multipart_etag(chunks)  # 8 + 8 + 4 MiB
    dst = tmp_path / "twenty.back"
    aws("s3", "cp", f"s3://{bucket}/twenty.bin", str(dst))
    assert file_sha256(dst) == file_sha256(src)


def test_cp_64mib_multipart(aws, s3, bucket, big_file, tmp_path):
    path, digest = big_file
    aws("s3", "cp", str(path), f"s3://{bucket}/big/64.bin")
    head = s3.head_object(Bucket=bucket, Key="big/64.bin")
    assert head["ContentLength"] == 64 * MiB
    assert head["ETag"].endswith('-8"')
    with open(path, "rb") as f:
        assert head["ETag"] == multipart_etag([f.read(8 * MiB) for _ in range(8)])
    dst = tmp_path / "64.back"
    aws("s3", "cp", f"s3://{bucket}/big/64.bin", str(dst))
    assert file_sha256(dst) == digest


def test_ls_bucket(aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"12345")
    s3.put_object(Bucket=bucket, Key="sub/b.txt", Body=b"123")
    out = aws("s3", "ls", f"s3://{bucket}/").stdout.decode().splitlines()
    assert any(line.split()[-1] == "a.txt" and line.split()[-2] == "5" for line in out), out
    assert any(line.strip() == "PRE sub/" for line in out), out
    out = aws("s3", "ls", f"s3://{bucket}", "--recursive").stdout.decode().splitlines()
    assert sorted(line.split()[-1] for line in out) == ["a.txt", "sub/b.txt"]


def test_sync_tree(aws, s3, bucket, tmp_path):
    src = tmp_path / "src"
    files = {
        "top.txt": b"top level",
        "a/one.txt": b"one",
        "a/b/two.bin": os.urandom(100_000),
        "a/b/c/three.txt": b"three",
        "with space/four.txt": b"four",
    }
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        # S3 LastModified has 1 s resolution; a file written in the same
        # second as its upload would look newer than the object and be sent
        # again, so age the local files.
        old = os.path.getmtime(p) - 3600
        os.utime(p, (old, old))

    aws("s3", "sync", str(src), f"s3://{bucket}/tree")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(f"tree/{k}" for k in files)
    for rel, data in files.items():
        assert get_body(s3, bucket, f"tree/{rel}") == data

    # Nothing changed: a second sync uploads nothing.
    out = aws("s3", "sync", str(src), f"s3://{bucket}/tree").stdout.decode()
    assert "upload:" not in out, out
    # One file changed (size differs): only it is uploaded.
    (src / "a/one.txt").write_bytes(b"one, but longer now")
    out = aws("s3", "sync", str(src), f"s3://{bucket}/tree").stdout.decode()
    uploads = [line for line in out.splitlines() if line.startswith("upload:")]
    assert len(uploads) == 1 and "a/one.txt" in uploads[0], out
    assert get_body(s3, bucket, "tree/a/one.txt") == b"one, but longer now"

    # And back down into an empty directory.
    dst = tmp_path / "dst"
    aws("s3", "sync", f"s3://{bucket}/tree", str(dst))
    files["a/one.txt"] = b"one, but longer now"
    assert _tree(dst) == files

    # --delete removes what the source no longer has.
    (src / "top.txt").unlink()
    aws("s3", "sync", str(src), f"s3://{bucket}/tree", "--delete")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert "tree/top.txt" not in keys and len(keys) == len(files) - 1


def test_rm_recursive(aws, s3, bucket):
    for i in range(30):
        s3.put_object(Bucket=bucket, Key=f"junk/{i:02}/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="keep", Body=b"k")
    aws("s3", "rm", f"s3://{bucket}/junk/", "--recursive")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]
    aws("s3", "rm", f"s3://{bucket}", "--recursive")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_s3api_head_object(aws, s3, bucket):
    s3.put_object(Bucket=bucket, Key="meta", Body=b"0123456789", ContentType="text/x-cli", Metadata={"k": "v"})
    proc = aws("s3api", "head-object", "--bucket", bucket, "--key", "meta", "--output", "json")
    info = json.loads(proc.stdout)
    assert info["ContentLength"] == 10
    assert info["ETag"] == f'"{md5_hex(b"0123456789")}"'
    assert info["ContentType"] == "text/x-cli"
    assert info["Metadata"] == {"k": "v"}
    # A missing key makes the CLI fail with the 404.
    proc = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert proc.returncode != 0
    assert b"404" in proc.stderr or b"Not Found" in proc.stderr


def _api(aws, *args):
    out = aws("s3api", *args).stdout.decode().strip()
    return json.loads(out) if out else None


def test_s3api_bucket_settings(aws, s3, s3_anon, bucket_factory):
    """The bucket settings the README names, set and read with the AWS CLI
    (each then checked for its effect with boto3)."""
    name = bucket_factory.register(unique_bucket_name())
    _api(aws, "create-bucket", "--bucket", name, "--object-lock-enabled-for-bucket",
         "--object-ownership", "BucketOwnerEnforced")
    lock = _api(aws, "get-object-lock-configuration", "--bucket", name)
    assert lock["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    own = _api(aws, "get-bucket-ownership-controls", "--bucket", name)
    assert own["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]

    # Tagging.
    _api(aws, "put-bucket-tagging", "--bucket", name, "--tagging", "TagSet=[{Key=team,Value=storage}]")
    assert _api(aws, "get-bucket-tagging", "--bucket", name)["TagSet"] == [{"Key": "team", "Value": "storage"}]
    _api(aws, "delete-bucket-tagging", "--bucket", name)
    with expect_error("NoSuchTagSet", 404):
        s3.get_bucket_tagging(Bucket=name)

    # SSE-S3 as the bucket default.
    _api(aws, "put-bucket-encryption", "--bucket", name, "--server-side-encryption-configuration",
         json.dumps({"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}))
    rule = _api(aws, "get-bucket-encryption", "--bucket", name)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.put_object(Bucket=name, Key="k", Body=b"x")["ServerSideEncryption"] == "AES256"
    _api(aws, "delete-bucket-encryption", "--bucket", name)

    # CORS.
    _api(aws, "put-bucket-cors", "--bucket", name, "--cors-configuration",
         json.dumps({"CORSRules": [{"AllowedOrigins": ["https://app.example.com"], "AllowedMethods": ["GET"]}]}))
    assert _api(aws, "get-bucket-cors", "--bucket", name)["CORSRules"][0]["AllowedMethods"] == ["GET"]
    _api(aws, "delete-bucket-cors", "--bucket", name)

    # Lifecycle.
    _api(aws, "put-bucket-lifecycle-configuration", "--bucket", name, "--lifecycle-configuration",
         json.dumps({"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
                                "Expiration": {"Days": 30}}]}))
    rules = _api(aws, "get-bucket-lifecycle-configuration", "--bucket", name)["Rules"]
    assert rules[0]["ID"] == "old" and rules[0]["Expiration"] == {"Days": 30}

    # A public-read policy, its status, then the public access block that refuses it.
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{name}/*"}]}
    _api(aws, "put-bucket-policy", "--bucket", name, "--policy", json.dumps(policy))
    assert _api(aws, "get-bucket-policy-status", "--bucket", name)["PolicyStatus"]["IsPublic"] is True
    assert s3_anon.get_object(Bucket=name, Key="k")["Body"].read() == b"x"
    _api(aws, "delete-bucket-policy", "--bucket", name)
    _api(aws, "put-public-access-block", "--bucket", name, "--public-access-block-configuration",
         "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true")
    pab = _api(aws, "get-public-access-block", "--bucket", name)["PublicAccessBlockConfiguration"]
    assert pab["BlockPublicPolicy"] is True
    refused = aws("s3api", "put-bucket-policy", "--bucket", name, "--policy", json.dumps(policy), check=False)
    assert refused.returncode != 0 and b"AccessDenied" in refused.stderr, refused.stderr
    _api(aws, "delete-public-access-block", "--bucket", name)
