"""Shared machinery for the S3 conformance suite.

The suite drives an S3 endpoint with real clients (boto3/botocore, the AWS CLI
and raw signed HTTP requests).  The target is chosen with environment
variables (see README.md):

    S3_ENDPOINTS       comma-separated gateway URLs of ONE zone (first = default)
    S3_ACCESS_KEY / S3_SECRET_KEY      user A
    S3_ACCESS_KEY2 / S3_SECRET_KEY2    user B (another owner)
    S3_REGION          signing region (default us-east-1)
    S3_ZONEGROUP       Meridian's zonegroup name (default "default")
    S3_VHOST_DOMAIN    DNS name for virtual-host-style addressing (optional)
    MERIDIAN_BIN, MERIDIAN_CONF, MERIDIAN_DEV_DIR   set only when the target is Meridian

When S3_ENDPOINTS is unset, a moto standalone server is started on a free
loopback port for the session (if moto is installed) and stopped at the end.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as _dt
import hashlib
import hmac
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable
from unittest import mock
from urllib.parse import quote

import boto3
import botocore
import botocore.auth
import pytest
import requests
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

MiB = 1024 * 1024
KiB = 1024

# --------------------------------------------------------------------------
# Target selection
# --------------------------------------------------------------------------

_MOTO_PROC: subprocess.Popen | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_moto() -> str:
    """Start moto_server on a free loopback port; return its URL."""
    global _MOTO_PROC
    exe = Path(sys.executable).with_name("moto_server")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "moto.server"]
    port = _free_port()
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"moto-{port}.log"), "wb")
    _MOTO_PROC = subprocess.Popen(
        cmd + ["-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            requests.get(url + "/", timeout=1)
            return url
        except requests.RequestException:
            if _MOTO_PROC.poll() is not None:
                break
            time.sleep(0.2)
    raise RuntimeError("could not start moto_server for the S3 suite")


if not os.environ.get("S3_ENDPOINTS"):
    if importlib.util.find_spec("moto") is not None:
        os.environ["S3_ENDPOINTS"] = _start_moto()
        os.environ.setdefault("S3_ACCESS_KEY", "testing-a")
        os.environ.setdefault("S3_SECRET_KEY", "testing-secret-a")

ENDPOINTS: list[str] = [
    e.strip().rstrip("/") for e in os.environ.get("S3_ENDPOINTS", "").split(",") if e.strip()
]
ENDPOINT = ENDPOINTS[0] if ENDPOINTS else "http://127.0.0.1:7480"
ACCESS_KEY = os.environ.get("S3_ACCESS_KEY", "testing-a")
SECRET_KEY = os.environ.get("S3_SECRET_KEY", "testing-secret-a")
ACCESS_KEY2 = os.environ.get("S3_ACCESS_KEY2")
SECRET_KEY2 = os.environ.get("S3_SECRET_KEY2")
REGION = os.environ.get("S3_REGION", "us-east-1")
ZONEGROUP = os.environ.get("S3_ZONEGROUP", "default")
VHOST_DOMAIN = os.environ.get("S3_VHOST_DOMAIN")
MERIDIAN_BIN = os.environ.get("MERIDIAN_BIN")
MERIDIAN_CONF = os.environ.get("MERIDIAN_CONF")
MERIDIAN_DEV_DIR = os.environ.get("MERIDIAN_DEV_DIR")
IS_MERIDIAN = bool(MERIDIAN_BIN)
DATA_POOL = "default.meridian.buckets.data"
INDEX_POOL = "default.meridian.buckets.index"

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 120


def meridian_only(reason: str):
    """Mark a test that runs only when the target is Meridian.

    ``reason`` names why (usually: how moto deviates from AWS)."""
    return pytest.mark.skipif(
        not IS_MERIDIAN, reason=f"Meridian-only (MERIDIAN_BIN unset): {reason}"
    )


two_gateways = pytest.mark.skipif(
    len(ENDPOINTS) < 2, reason="needs two gateways of one zone (S3_ENDPOINTS has one URL)"
)


def skip_unless_meridian(reason: str = "needs Meridian admin machinery"):
    if not IS_MERIDIAN:
        pytest.skip(f"Meridian-only (MERIDIAN_BIN unset): {reason}")


def skip_unless_two_gateways():
    if len(ENDPOINTS) < 2:
        pytest.skip("needs two gateways of one zone (S3_ENDPOINTS has one URL)")


def pytest_configure(config):
    # Always print skip reasons (-rs) so Meridian-only skips are visible.
    rc = getattr(config.option, "reportchars", "") or ""
    if "s" not in rc and "a" not in rc and "A" not in rc:
        config.option.reportchars = rc + "s"


def pytest_report_header(config):
    target = "Meridian" if IS_MERIDIAN else "generic S3 (moto or other; Meridian-only tests skip)"
    return [f"S3 target: {target}; endpoints={ENDPOINTS}; region={REGION}"]


def _stop_moto():
    if _MOTO_PROC is not None and _MOTO_PROC.poll() is None:
        _MOTO_PROC.send_signal(signal.SIGTERM)
        try:
            _MOTO_PROC.wait(10)
        except subprocess.TimeoutExpired:
            _MOTO_PROC.kill()


atexit.register(_stop_moto)


def pytest_sessionfinish(session, exitstatus):
    _stop_moto()


# --------------------------------------------------------------------------
# Small utilities
# --------------------------------------------------------------------------


def unique_bucket_name(prefix: str = "t-") -> str:
    return prefix + uuid.uuid4().hex[:20]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def multipart_etag(parts: Iterable[bytes]) -> str:
    """ETag S3 computes for a completed multipart upload (quoted)."""
    parts = list(parts)
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_status(exc: ClientError) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


@contextlib.contextmanager
def expect_error(codes, status: int | Iterable[int] | None = None):
    """Context manager: the body must raise a botocore ClientError whose code
    is in ``codes`` (str or iterable) and whose HTTP status matches."""
    if isinstance(codes, str):
        codes = {codes}
    codes = set(codes)
    if isinstance(status, int):
        status = {status}
    info: dict = {}
    try:
        yield info
    except ClientError as e:
        code, st = error_code(e), error_status(e)
        info.update(code=code, status=st, response=e.response, exc=e)
        assert code in codes, f"expected error code in {sorted(codes)}, got {code!r} (HTTP {st}): {e}"
        if status is not None:
            assert st in status, f"expected HTTP status in {sorted(status)}, got {st} ({code})"
    else:
        raise AssertionError(f"expected an S3 error {sorted(codes)}, but the call succeeded")


def parse_s3_error(body: bytes | str) -> dict:
    """Parse an S3 XML error body into a dict of the <Error> children."""
    if isinstance(body, str):
        body = body.encode()
    assert body.strip(), "expected an S3 XML error body, got an empty body"
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:  # pragma: no cover - diagnostic
        raise AssertionError(f"error body is not XML ({e}): {body[:300]!r}")
    tag = root.tag.split("}")[-1]
    assert tag == "Error", f"expected <Error> root, got <{tag}>: {body[:300]!r}"
    return {child.tag.split("}")[-1]: (child.text or "") for child in root}


def assert_s3_error(resp: requests.Response, codes, statuses=None) -> dict:
    """Assert that ``resp`` is an S3 XML error with a code in ``codes``.

    On Meridian, also require a non-empty <RequestId> element (AWS has one)."""
    if isinstance(codes, str):
        codes = {codes}
    if isinstance(statuses, int):
        statuses = {statuses}
    assert resp.status_code >= 300, f"expected an error, got HTTP {resp.status_code}: {resp.content[:300]!r}"
    if statuses is not None:
        assert resp.status_code in statuses, (
            f"expected HTTP {sorted(statuses)}, got {resp.status_code}: {resp.content[:300]!r}"
        )
    err = parse_s3_error(resp.content)
    assert err.get("Code") in set(codes), f"expected Code in {sorted(codes)}, got {err}"
    if IS_MERIDIAN:
        assert err.get("RequestId"), f"Meridian error body lacks <RequestId>: {err}"
    return err


def xml_find_all(root: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in root.iter() if el.tag.split("}")[-1] == name]


def xml_text(el: ET.Element, name: str) -> str | None:
    for child in el:
        if child.tag.split("}")[-1] == name:
            return child.text or ""
    return None


# --------------------------------------------------------------------------
# boto3 clients
# --------------------------------------------------------------------------


def make_client(
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    anonymous: bool = False,
    region: str | None = None,
    verify=None,
    **s3_extra,
):
    """A boto3 S3 client (path-style, no retries) for ``endpoint``
    (``verify``: the CA bundle of an https endpoint)."""
    s3cfg = {"addressing_style": "path"}
    s3cfg.update(s3_extra)
    cfg = Config(
        s3=s3cfg,
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        max_pool_connections=32,
        # s3v4 explicitly: botocore would otherwise presign with SigV2 in us-east-1.
        signature_version=UNSIGNED if anonymous else "s3v4",
    )
    kwargs = dict(
        endpoint_url=endpoint or ENDPOINT,
        region_name=region or REGION,
        config=cfg,
    )
    if verify is not None:
        kwargs["verify"] = verify
    if anonymous:
        kwargs.update(aws_access_key_id="unused", aws_secret_access_key="unused")
    else:
        kwargs.update(
            aws_access_key_id=access_key or ACCESS_KEY,
            aws_secret_access_key=secret_key or SECRET_KEY,
        )
    return boto3.session.Session().client("s3", **kwargs)


@pytest.fixture(scope="session")
def s3():
    """boto3 client of user A on the default endpoint."""
    if not ENDPOINTS:
        pytest.skip("S3_ENDPOINTS is not set and moto is not installed")
    return make_client()


@pytest.fixture(scope="session")
def s3_anon():
    """Anonymous (unsigned) client on the default endpoint."""
    return make_client(anonymous=True)


@pytest.fixture(scope="session")
def s3_clients():
    """User A's client for each endpoint, in S3_ENDPOINTS order."""
    return [make_client(e) for e in ENDPOINTS]


@pytest.fixture(scope="session")
def user_b_keys():
    """(access, secret) of user B, a different owner.

    Uses S3_ACCESS_KEY2/S3_SECRET_KEY2 if set; on Meridian without them, a
    user is created with the admin CLI.  Skips elsewhere: with moto every key
    maps to the same owner, so owner isolation cannot be observed."""
    if not IS_MERIDIAN:
        pytest.skip("Meridian-only (MERIDIAN_BIN unset): moto maps every access key to one owner")
    if ACCESS_KEY2 and SECRET_KEY2:
        yield ACCESS_KEY2, SECRET_KEY2
        return
    uid = "tb-" + uuid.uuid4().hex[:10]
    info = meridian("user", "create", f"--uid={uid}", f"--display-name=test user {uid}")
    key = info["keys"][0]
    yield key["access_key"], key["secret_key"]
    with contextlib.suppress(Exception):
        meridian("user", "rm", f"--uid={uid}")


@pytest.fixture(scope="session")
def s3_b(user_b_keys):
    return make_client(access_key=user_b_keys[0], secret_key=user_b_keys[1])


# --------------------------------------------------------------------------
# Buckets
# --------------------------------------------------------------------------


def empty_bucket(client, bucket: str) -> None:
    """Delete every version, delete marker and multipart upload of ``bucket``
    (all but versions under COMPLIANCE retention or legal hold)."""
    with contextlib.suppress(ClientError):
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for up in page.get("Uploads", []):
                with contextlib.suppress(ClientError):
                    client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    objs: list[dict] = []
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                objs.append({"Key": v["Key"], "VersionId": v["VersionId"]})
    except ClientError:
        objs = []
    if not objs:
        with contextlib.suppress(ClientError):
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                objs.extend({"Key": o["Key"]} for o in page.get("Contents", []))
    for i in range(0, len(objs), 1000):
        with contextlib.suppress(ClientError):
            client.delete_objects(
                Bucket=bucket,
                Delete={"Objects": objs[i : i + 1000], "Quiet": True},
                # Versions under GOVERNANCE retention go too (the owner may bypass it).
                BypassGovernanceRetention=True,
            )


def destroy_bucket(client, bucket: str) -> None:
    with contextlib.suppress(Exception):
        empty_bucket(client, bucket)
        client.delete_bucket(Bucket=bucket)


class BucketFactory:
    def __init__(self, default_client):
        self.default_client = default_client
        self.created: list[tuple[object, str]] = []

    def __call__(self, client=None, name: str | None = None, create: bool = True, **create_kwargs) -> str:
        client = client or self.default_client
        name = name or unique_bucket_name()
        if create:
            client.create_bucket(Bucket=name, **create_kwargs)
        self.created.append((client, name))
        return name

    def register(self, name: str, client=None) -> str:
        self.created.append((client or self.default_client, name))
        return name

    def cleanup(self):
        for client, name in reversed(self.created):
            destroy_bucket(client, name)


@pytest.fixture
def bucket_factory(s3):
    f = BucketFactory(s3)
    yield f
    f.cleanup()


@pytest.fixture
def bucket(bucket_factory):
    """A fresh, empty bucket of user A, destroyed after the test."""
    return bucket_factory()


# --------------------------------------------------------------------------
# Raw signed requests (botocore SigV4 + requests)
# --------------------------------------------------------------------------


class _S3Signer(botocore.auth.S3SigV4Auth):
    """S3SigV4Auth whose payload hash can be forced (UNSIGNED-PAYLOAD,
    STREAMING-..., or a deliberately wrong value)."""

    def __init__(self, credentials, region, payload_hash: str | None = None):
        super().__init__(credentials, "s3", region)
        self._forced_payload = payload_hash

    def payload(self, request):
        if self._forced_payload is not None:
            return self._forced_payload
        return super().payload(request)


def signing_key(secret: str, date: str, region: str = REGION, service: str = "s3") -> bytes:
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def build_url(endpoint: str, path: str, params=None) -> str:
    """``path`` must already be percent-encoded (use :func:`obj_path`).
    ``params``: dict (value None → bare key like ``?uploads``) or a raw query string."""
    url = endpoint.rstrip("/") + path
    if params:
        if isinstance(params, str):
            query = params
        else:
            parts = []
            for k, v in params.items():
                if v is None:
                    parts.append(quote(k, safe="-_.~"))
                else:
                    parts.append(f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}")
            query = "&".join(parts)
        url += "?" + query
    return url


def obj_path(bucket: str, key: str | None = None) -> str:
    if key is None:
        return f"/{bucket}"
    return f"/{bucket}/" + quote(key, safe="/~")


def sign_request(
    method: str,
    url: str,
    headers: dict | None = None,
    body: bytes = b"",
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    payload_hash: str | None = None,
    now: _dt.datetime | None = None,
) -> AWSRequest:
    """Sign with botocore's S3 SigV4 signer; return the AWSRequest.

    ``now`` (naive UTC datetime) fakes the signer's clock, by patching the
    time source botocore.auth uses."""
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = _S3Signer(
        Credentials(access_key or ACCESS_KEY, secret_key or SECRET_KEY),
        region or REGION,
        payload_hash=payload_hash,
    )
    if now is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return req


_http = requests.Session()


def send(req: AWSRequest, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), **kw) -> requests.Response:
    prepared = req.prepare()
    return _http.request(
        prepared.method,
        prepared.url,
        headers=dict(prepared.headers.items()),
        data=prepared.body,
        timeout=timeout,
        allow_redirects=False,
        **kw,
    )


def raw_request(
    method: str,
    path: str,
    *,
    params=None,
    headers: dict | None = None,
    body: bytes = b"",
    endpoint: str | None = None,
    sign: bool = True,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    payload_hash: str | None = None,
    now: _dt.datetime | None = None,
    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
) -> requests.Response:
    """Send one request, SigV4-signed with botocore unless ``sign=False``.

    Bypasses boto3's client-side validation, so the server decides."""
    url = build_url(endpoint or ENDPOINT, path, params)
    if sign:
        req = sign_request(method, url, headers, body, access_key, secret_key, region, payload_hash, now)
    else:
        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    return send(req, timeout=timeout)


# --------------------------------------------------------------------------
# aws-chunked (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) encoder
# --------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


def chunk_signature(key: bytes, amz_date: str, scope: str, prev_sig: str, data: bytes) -> str:
    sts = "\n".join(
        ["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev_sig, EMPTY_SHA256, hashlib.sha256(data).hexdigest()]
    )
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def encoded_chunked_length(decoded_len: int, chunk_size: int) -> int:
    """Length of the aws-chunked body for ``decoded_len`` bytes."""
    sizes = [chunk_size] * (decoded_len // chunk_size)
    if decoded_len % chunk_size:
        sizes.append(decoded_len % chunk_size)
    sizes.append(0)
    return sum(len(f"{s:x}") + len(";chunk-signature=") + 64 + 2 + s + 2 for s in sizes)


def build_signed_chunked_put(
    url: str,
    data: bytes,
    chunk_size: int = 64 * KiB,
    headers: dict | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    now: _dt.datetime | None = None,
    tamper_chunk: int | None = None,
    tamper_signature_of: int | None = None,
    declared_length: int | None = None,
) -> tuple[dict, bytes, list[str]]:
    """Build a chunk-signed PUT: returns (headers, encoded body, chunk signatures).

    The seed signature comes from botocore's signer over the headers (with
    x-amz-content-sha256 = STREAMING-AWS4-HMAC-SHA256-PAYLOAD); each chunk's
    signature chains the previous one, as the AWS SigV4 streaming docs say.
    ``tamper_chunk=i`` flips one byte of chunk i *after* signing;
    ``tamper_signature_of=i`` corrupts chunk i's signature;
    ``declared_length`` signs a different x-amz-decoded-content-length."""
    region = region or REGION
    secret = secret_key or SECRET_KEY
    hdrs = dict(headers or {})
    hdrs.update(
        {
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(data) if declared_length is None else declared_length),
            "Content-Length": str(encoded_chunked_length(len(data), chunk_size)),
        }
    )
    req = sign_request(
        "PUT", url, hdrs, b"", access_key, secret, region, payload_hash=STREAMING_PAYLOAD, now=now
    )
    auth = req.headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1].strip()
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
    key = signing_key(secret, amz_date[:8], region)
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    body = bytearray()
    sigs = []
    prev = seed
    for i, chunk in enumerate(chunks):
        sig = chunk_signature(key, amz_date, scope, prev, chunk)
        sigs.append(sig)
        prev = sig
        wire_sig = sig
        if tamper_signature_of == i:
            wire_sig = ("0" if sig[0] != "0" else "1") + sig[1:]
        wire_chunk = chunk
        if tamper_chunk == i and chunk:
            wire_chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        body += f"{len(chunk):x};chunk-signature={wire_sig}\r\n".encode()
        body += wire_chunk + b"\r\n"
    out_headers = {k: v for k, v in req.headers.items()}
    assert int(out_headers["Content-Length"]) == len(body)
    return out_headers, bytes(body), sigs


# --------------------------------------------------------------------------
# Meridian admin CLI
# --------------------------------------------------------------------------


def meridian_raw(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    skip_unless_meridian()
    cmd = [MERIDIAN_BIN]
    if MERIDIAN_CONF:
        cmd += ["-c", MERIDIAN_CONF]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout.decode(errors='replace')}\n"
            f"{proc.stderr.decode(errors='replace')}"
        )
    return proc


def meridian(*args: str, timeout: float = 120):
    """Run ``$MERIDIAN_BIN -c $MERIDIAN_CONF ARGS --format json``; return parsed JSON
    (None for empty output)."""
    proc = meridian_raw(*args, "--format", "json", timeout=timeout)
    out = proc.stdout.decode().strip()
    return json.loads(out) if out else None


def data_pool_objects() -> set[str]:
    """Raw object names in the zone's data pool."""
    proc = meridian_raw("ls", "-p", DATA_POOL)
    return {line.strip() for line in proc.stdout.decode().splitlines() if line.strip()}


def gateway_pid(n: int) -> int:
    skip_unless_meridian()
    assert MERIDIAN_DEV_DIR, "MERIDIAN_DEV_DIR must be set for crash tests"
    return int(Path(MERIDIAN_DEV_DIR, "run", f"gateway.{n}.pid").read_text().strip())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); look at /proc for its state.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def kill_gateway(n: int) -> int:
    """SIGKILL gateway ``n`` (only that PID, read from its pid file)."""
    pid = gateway_pid(n)
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    return pid


def restart_dev_cluster(timeout: float = 300) -> None:
    """``$MERIDIAN_BIN dev up --dir $MERIDIAN_DEV_DIR``: restarts stopped daemons."""
    skip_unless_meridian()
    proc = subprocess.run(
        [MERIDIAN_BIN, "dev", "up", "--dir", MERIDIAN_DEV_DIR], capture_output=True, timeout=timeout
    )
    assert proc.returncode == 0, f"dev up failed: {proc.stdout!r} {proc.stderr!r}"
    deadline = time.time() + 60
    for ep in ENDPOINTS:
        while True:
            try:
                r = requests.get(ep + "/", timeout=2)
                if r.status_code < 500:
                    break
            except requests.RequestException:
                pass
            assert time.time() < deadline, f"gateway {ep} did not come back after dev up"
            time.sleep(0.2)


# --------------------------------------------------------------------------
# AWS CLI
# --------------------------------------------------------------------------


def aws_cli_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("aws")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("aws")
    if found:
        return [found]
    if importlib.util.find_spec("awscli") is None:
        pytest.skip("the AWS CLI (awscli from PyPI) is not installed")
    return [sys.executable, "-m", "awscli"]


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory):
    """Environment for ``aws`` subprocesses: env credentials, path-style
    addressing and an 8 MiB multipart threshold/chunk size."""
    d = tmp_path_factory.mktemp("awscfg")
    cfg = d / "config"
    cfg.write_text(
        "[default]\n"
        f"region = {REGION}\n"
        "s3 =\n"
        "    addressing_style = path\n"
        "    multipart_threshold = 8MB\n"
        "    multipart_chunksize = 8MB\n"
        # The CLI's default of 10 parts at once, on two cores shared with a
        # second cluster, can stretch one 8 MiB part past the write budget.
        "    max_concurrent_requests = 4\n"
        "retry_mode = standard\n"
        "max_attempts = 1\n"
    )
    creds = d / "credentials"
    creds.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(cfg),
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_PAGER="",
    )
    return env


@pytest.fixture
def aws(aws_env):
    """Run the AWS CLI: ``aws("s3", "ls")`` → CompletedProcess (asserts rc 0
    unless check=False)."""

    def run(*args: str, check: bool = True, endpoint: str | None = None, timeout: float = 300):
        cmd = aws_cli_cmd() + ["--endpoint-url", endpoint or ENDPOINT] + list(args)
        proc = subprocess.run(cmd, env=aws_env, capture_output=True, timeout=timeout)
        if check:
            # Progress lines ("Completed 1.0 MiB/64.0 MiB ...") would bury the error.
            out = [
                line
                for line in proc.stdout.decode(errors="replace").replace("\r", "\n").splitlines()
                if not line.startswith("Completed ")
            ]
            assert proc.returncode == 0, (
                f"{' '.join(args)} failed ({proc.returncode}):\n"
                f"stderr: {proc.stderr.decode(errors='replace')}\nstdout: " + "\n".join(out)
            )
        return proc

    return run


# --------------------------------------------------------------------------
# Misc helpers used by several modules
# --------------------------------------------------------------------------


def parallel_put(client, bucket: str, items: dict[str, bytes], workers: int = 16) -> None:
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items.items()))


def bucket_snapshot(client, bucket: str) -> dict[str, tuple[str, int]]:
    """{key: (etag, size)} of every current object."""
    snap = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            snap[o["Key"]] = (o["ETag"], o["Size"])
    return snap


def get_body(client, bucket: str, key: str, **kw) -> bytes:
    return client.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


@pytest.fixture(scope="session")
def big_file(tmp_path_factory):
    """A 64 MiB file of random bytes (and its sha256), made once per session."""
    p = tmp_path_factory.mktemp("big") / "random-64MiB.bin"
    h = hashlib.sha256()
    with open(p, "wb") as f:
        for _ in range(8):
            chunk = os.urandom(8 * MiB)
            h.update(chunk)
            f.write(chunk)
    return p, h.hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MiB), b""):
            h.update(chunk)
    return h.hexdigest()
