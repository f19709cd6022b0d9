"""S3 over HTTPS: boto3 and the AWS CLI against the gateway's TLS listener,
verifying its certificate with the dev CA (`dev up` makes both), and the
refusals a client must see when it does not trust that CA or speaks plain
HTTP to the TLS port.

    S3_TLS_ENDPOINT   https URL of a gateway of the zone
    S3_CA_BUNDLE      PEM file of the CA that signed its certificate
"""

import os
import subprocess
from urllib.parse import urlparse

import boto3
import botocore.exceptions
import pytest
import requests
from botocore.config import Config

from conftest import (
    ACCESS_KEY,
    CONNECT_TIMEOUT,
    MiB,
    READ_TIMEOUT,
    REGION,
    SECRET_KEY,
    aws_cli_cmd,
    meridian_only,
    md5_hex,
    unique_bucket_name,
)

TLS_ENDPOINT = os.environ.get("S3_TLS_ENDPOINT", "")
CA_BUNDLE = os.environ.get("S3_CA_BUNDLE", "")

pytestmark = meridian_only("the dev CA and TLS listener come from `meridian dev up`")


def _require_tls():
    assert TLS_ENDPOINT.startswith("https://") and os.path.exists(CA_BUNDLE), (
        f"S3_TLS_ENDPOINT ({TLS_ENDPOINT!r}) and S3_CA_BUNDLE ({CA_BUNDLE!r}) must name "
        "the gateway's HTTPS URL and the dev CA"
    )


def _client(verify):
    return boto3.session.Session().client(
        "s3",
        endpoint_url=TLS_ENDPOINT,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        verify=verify,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            signature_version="s3v4",
        ),
    )


def test_boto3_over_https_with_the_dev_ca():
    _require_tls()
    s3 = _client(CA_BUNDLE)
    name = unique_bucket_name("tls-")
    s3.create_bucket(Bucket=name)
    try:
        small = os.urandom(64 * 1024)
        s3.put_object(Bucket=name, Key="small", Body=small)
        got = s3.get_object(Bucket=name, Key="small")
        assert got["Body"].read() == small
        assert got["ETag"] == f'"{md5_hex(small)}"'
        # Multipart through the TLS stream (12 MiB in 5 MiB parts).
        big = os.urandom(12 * MiB)
        up = s3.create_multipart_upload(Bucket=name, Key="big")
        parts = []
        for n, off in enumerate(range(0, len(big), 5 * MiB), start=1):
            r = s3.upload_part(
                Bucket=name, Key="big", UploadId=up["UploadId"], PartNumber=n,
                Body=big[off:off + 5 * MiB],
            )
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        s3.complete_multipart_upload(
            Bucket=name, Key="big", UploadId=up["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        assert s3.get_object(Bucket=name, Key="big")["Body"].read() == big
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]]
        assert keys == ["big", "small"]
        # A presigned URL works over HTTPS too.
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": name, "Key": "small"}, ExpiresIn=300
        )
        assert url.startswith("https://")
        r = requests.get(url, verify=CA_BUNDLE, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        assert r.status_code == 200 and r.content == small
    finally:
        for key in ("small", "big"):
            s3.delete_object(Bucket=name, Key=key)
        s3.delete_bucket(Bucket=name)


def _aws(env, *args):
    return subprocess.run(
        aws_cli_cmd() + ["--endpoint-url", TLS_ENDPOINT] + list(args),
        env=env, capture_output=True, timeout=300,
    )


def test_aws_cli_over_https_with_the_dev_ca(aws_env, tmp_path):
    _require_tls()
    name = unique_bucket_name("tls-cli-")
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 * MiB))
    dst = tmp_path / "down.bin"
    ca = ["--ca-bundle", CA_BUNDLE]
    steps = [
        ["s3", "mb", f"s3://{name}"],
        ["s3", "cp", str(src), f"s3://{name}/file"],
        ["s3", "ls", f"s3://{name}/"],
        ["s3", "cp", f"s3://{name}/file", str(dst)],
        ["s3", "rm", f"s3://{name}/file"],
        ["s3", "rb", f"s3://{name}"],
    ]
    outputs = []
    for step in steps:
        proc = _aws(aws_env, *ca, *step)
        assert proc.returncode == 0, (
            f"aws {' '.join(step)} failed:\n{proc.stdout.decode()}\n{proc.stderr.decode()}"
        )
        outputs.append(proc.stdout.decode())
    assert "file" in outputs[2]
    assert dst.read_bytes() == src.read_bytes()


def test_a_client_that_does_not_trust_the_ca_is_refused(aws_env):
    _require_tls()
    # boto3 with the system's roots only.
    with pytest.raises(botocore.exceptions.SSLError):
        _client(True).list_buckets()
    # The AWS CLI without --ca-bundle.
    proc = _aws(aws_env, "s3", "ls")
    err = proc.stderr.decode()
    assert proc.returncode != 0, proc.stdout.decode()
    assert "SSL" in err or "CERTIFICATE_VERIFY_FAILED" in err, err


def test_plain_http_on_the_tls_port_gets_no_s3_answer():
    _require_tls()
    u = urlparse(TLS_ENDPOINT)
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(f"http://{u.netloc}/", timeout=(CONNECT_TIMEOUT, 10))
