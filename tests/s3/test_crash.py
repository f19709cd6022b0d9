"""kill -9 a gateway mid-PUT and mid-multipart (Meridian only, two gateways).

* no partial object is ever visible, an overwritten object keeps its old
  content, through the surviving gateway and after the restart;
* the interrupted multipart upload is listed with exactly its finished parts
  and is completed through the other gateway, byte-identical;
* after abort + `gc process --include-all`, `bucket check` reports no orphans
  and the raw data pool holds exactly the objects it held before, plus the
  completed object's data (shown by deleting it and collecting again).

The tests kill only the PID in $MERIDIAN_DEV_DIR/run/gateway.0.pid and bring
it back with `$MERIDIAN_BIN dev up --dir $MERIDIAN_DEV_DIR`."""

import hashlib
import http.client
import os
import signal
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import (
    ENDPOINTS,
    MERIDIAN_DEV_DIR,
    MiB,
    data_pool_objects,
    expect_error,
    gateway_pid,
    kill_gateway,
    md5_hex,
    meridian,
    meridian_only,
    multipart_etag,
    obj_path,
    pid_alive,
    random_bytes,
    restart_dev_cluster,
    sign_request,
    build_url,
    two_gateways,
)

pytestmark = [meridian_only("kills Meridian gateway processes and uses the admin CLI"), two_gateways]


class SlowUpload(threading.Thread):
    """PUT ``total`` random bytes with Content-Length (UNSIGNED-PAYLOAD) over
    http.client, 1 MiB at a time; pause once ``pause_at`` bytes are sent
    until ``resume`` is set, then try to send the rest."""

    def __init__(self, endpoint, path, params, total, pause_at, chunk=MiB):
        super().__init__(daemon=True)
        self.url = build_url(endpoint, path, params)
        self.total, self.pause_at, self.chunk = total, pause_at, chunk
        self.reached = threading.Event()
        self.resume = threading.Event()
        self.sent = 0
        self.md5 = hashlib.md5()
        self.status = None
        self.error = None

    def run(self):
        u = urlsplit(self.url)
        req = sign_request("PUT", self.url, {"Content-Length": str(self.total)}, b"", payload_hash="UNSIGNED-PAYLOAD")
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            conn.putrequest("PUT", u.path + ("?" + u.query if u.query else ""), skip_accept_encoding=True)
            for k, v in req.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            while self.sent < self.total:
                if self.sent >= self.pause_at and not self.reached.is_set():
                    self.reached.set()
                    self.resume.wait(120)
                n = min(self.chunk, self.total - self.sent)
                piece = os.urandom(n)
                self.md5.update(piece)
                conn.send(piece)
                self.sent += n
                time.sleep(0.02)  # stream slowly
            resp = conn.getresponse()
            self.status = resp.status
            resp.read()
        except Exception as e:  # the gateway died under us: expected
            self.error = e
        finally:
            conn.close()
            self.reached.set()


def kill_during(uploads, gateway=0):
    """Start ``uploads``, wait until each is paused mid-body, kill -9 the
    gateway, let them fail; assert none of them succeeded."""
    for u in uploads:
        u.start()
    for u in uploads:
        assert u.reached.wait(180), "upload did not get going"
        assert u.error is None and u.status is None, (u.error, u.status)
        assert u.pause_at <= u.sent < u.total
    pid = kill_gateway(gateway)
    assert not pid_alive(pid)
    for u in uploads:
        u.resume.set()
    for u in uploads:
        u.join(120)
        assert not u.is_alive()
        assert u.status is None or u.status >= 400, f"an interrupted upload reported HTTP {u.status}"


def usage(bucket):
    stats = meridian("bucket", "stats", f"--bucket={bucket}")
    return stats.get("usage", stats).get("rgw.main", {"num_objects": 0, "size": 0})


def assert_no_orphans(bucket):
    check = meridian("bucket", "check", f"--bucket={bucket}")
    assert check.get("orphans") == [], f"orphaned data: {check.get('orphans')}"
    assert not check.get("missing"), f"missing data: {check.get('missing')}"


# Writes in progress are never collected early, even by --include-all: the
# data of a write killed with its gateway is collected once its intent is
# older than rgw_pending_expiry_s (the harness sets it low).
PENDING_EXPIRY_S = float(os.environ.get("MERIDIAN_PENDING_EXPIRY_S", "0"))


def gc_now():
    time.sleep(PENDING_EXPIRY_S + 1 if PENDING_EXPIRY_S else 0)
    meridian("gc", "process", "--include-all", timeout=300)


@pytest.fixture
def crash_env():
    if not MERIDIAN_DEV_DIR:
        pytest.skip("MERIDIAN_DEV_DIR is not set: cannot find gateway PIDs")
    assert pid_alive(gateway_pid(0)) and pid_alive(gateway_pid(1)), "gateways must be up before a crash test"
    yield
    if not all(pid_alive(gateway_pid(n)) for n in range(min(2, len(ENDPOINTS)))):
        restart_dev_cluster()


def _sha(client, bucket, key):
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(MiB), b""):
        h.update(chunk)
    return h.hexdigest()


def test_kill_gateway_mid_put(crash_env, s3_clients, bucket_factory):
    g0, g1 = s3_clients[0], s3_clients[1]
    b = bucket_factory(client=g1)
    old = random_bytes(6 * MiB)
    g1.put_object(Bucket=b, Key="victim", Body=old)
    gc_now()
    baseline = data_pool_objects()

    uploads = [
        SlowUpload(ENDPOINTS[0], obj_path(b, "victim"), None, 48 * MiB, 16 * MiB),  # overwrite
        SlowUpload(ENDPOINTS[0], obj_path(b, "fresh"), None, 48 * MiB, 16 * MiB),  # new key
    ]
    kill_during(uploads)
    during = data_pool_objects()

    def no_partial_object(client):
        head = client.head_object(Bucket=b, Key="victim")
        assert head["ContentLength"] == len(old) and head["ETag"] == f'"{md5_hex(old)}"'
        assert _sha(client, b, "victim") == hashlib.sha256(old).hexdigest()
        with expect_error({"404", "NoSuchKey"}, 404):
            client.head_object(Bucket=b, Key="fresh")
        with expect_error("NoSuchKey", 404):
            client.get_object(Bucket=b, Key="fresh")
        assert [o["Key"] for o in client.list_objects_v2(Bucket=b)["Contents"]] == ["victim"]
        assert [o["Key"] for o in client.list_objects(Bucket=b)["Contents"]] == ["victim"]
        assert not client.list_multipart_uploads(Bucket=b).get("Uploads")

    no_partial_object(g1)
    u = usage(b)
    assert (u["num_objects"], u["size"]) == (1, len(old)), u

    restart_dev_cluster()
    no_partial_object(g0)

    gc_now()
    assert_no_orphans(b)
    after = data_pool_objects()
    print(f"data pool: {len(baseline)} objects before, {len(during)} right after the crash, {len(after)} after gc")
    assert after == baseline, f"added {sorted(after - baseline)[:20]}, removed {sorted(baseline - after)[:20]}"
    # The gateway that crashed serves writes again.
    g0.put_object(Bucket=b, Key="fresh", Body=b"after restart")
    assert g1.get_object(Bucket=b, Key="fresh")["Body"].read() == b"after restart"


def test_kill_gateway_mid_multipart(crash_env, s3_clients, bucket_factory):
    g0, g1 = s3_clients[0], s3_clients[1]
    b = bucket_factory(client=g1)
    gc_now()
    baseline = data_pool_objects()

    parts = [random_bytes(8 * MiB) for _ in range(4)]
    uid = g0.create_multipart_upload(Bucket=b, Key="assembled")["UploadId"]
    etags = [
        g0.upload_part(Bucket=b, Key="assembled", UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"]
        for n in (1, 2)
    ]
    uid2 = g0.create_multipart_upload(Bucket=b, Key="abandoned")["UploadId"]
    e2 = g0.upload_part(Bucket=b, Key="abandoned", UploadId=uid2, PartNumber=1, Body=random_bytes(6 * MiB))["ETag"]

    kill_during(
        [
            SlowUpload(ENDPOINTS[0], obj_path(b, "assembled"), {"partNumber": "3", "uploadId": uid}, 8 * MiB, 4 * MiB),
            SlowUpload(ENDPOINTS[0], obj_path(b, "abandoned"), {"partNumber": "2", "uploadId": uid2}, 8 * MiB, 4 * MiB),
        ]
    )
    during = data_pool_objects()

    # Through gateway 1: both uploads, each with exactly its finished parts.
    ups = {u["UploadId"]: u["Key"] for u in g1.list_multipart_uploads(Bucket=b)["Uploads"]}
    assert ups == {uid: "assembled", uid2: "abandoned"}
    listed = g1.list_parts(Bucket=b, Key="assembled", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, etags[0], 8 * MiB), (2, etags[1], 8 * MiB)]
    listed2 = g1.list_parts(Bucket=b, Key="abandoned", UploadId=uid2)["Parts"]
    assert [(p["PartNumber"], p["ETag"]) for p in listed2] == [(1, e2)]
    with expect_error({"404", "NoSuchKey"}, 404):
        g1.head_object(Bucket=b, Key="assembled")

    # Finish the upload through gateway 1.
    for n in (3, 4):
        etags.append(g1.upload_part(Bucket=b, Key="assembled", UploadId=uid, PartNumber=n, Body=parts[n - 1])["ETag"])
    res = g1.complete_multipart_upload(
        Bucket=b,
        Key="assembled",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    assert res["ETag"] == multipart_etag(parts)
    want = hashlib.sha256(b"".join(parts)).hexdigest()
    assert _sha(g1, b, "assembled") == want

    # Abort the other one after the crash.
    g1.abort_multipart_upload(Bucket=b, Key="abandoned", UploadId=uid2)
    assert [u["UploadId"] for u in g1.list_multipart_uploads(Bucket=b).get("Uploads", [])] == []

    restart_dev_cluster()
    assert _sha(g0, b, "assembled") == want
    assert g0.head_object(Bucket=b, Key="assembled")["ETag"] == multipart_etag(parts)
    with expect_error({"404", "NoSuchKey"}, 404):
        g0.head_object(Bucket=b, Key="abandoned")

    gc_now()
    assert_no_orphans(b)
    after = data_pool_objects()
    assert baseline <= after, f"gc removed objects it should not have: {sorted(baseline - after)[:20]}"
    extra = after - baseline
    assert extra, "the completed 32 MiB object must have data in the pool"
    u = usage(b)
    assert (u["num_objects"], u["size"]) == (1, 32 * MiB), u

    # Everything beyond the baseline belongs to the completed object: delete
    # it, collect, and the pool is back to exactly the baseline.
    g0.delete_object(Bucket=b, Key="assembled")
    gc_now()
    final = data_pool_objects()
    print(
        f"data pool: {len(baseline)} before, {len(during)} after the crash, {len(after)} after abort+gc "
        f"({len(extra)} of the completed object), {len(final)} after deleting it"
    )
    assert final == baseline, f"left behind {sorted(final - baseline)[:20]}, removed {sorted(baseline - final)[:20]}"
    assert_no_orphans(b)


def test_writes_outliving_their_intent_leave_no_data(crash_env, s3_clients, bucket_factory):
    """A PUT and an UploadPart whose clients stall mid-body past
    rgw_pending_expiry_s while a GC pass runs, then send the rest: both fail,
    nothing of them is visible, and once collected the data pool is back to
    what it held before (no stripe stored after GC took the intent is left)."""
    g1 = s3_clients[1]
    b = bucket_factory(client=g1)
    uid = g1.create_multipart_upload(Bucket=b, Key="slow-part")["UploadId"]
    gc_now()
    baseline = data_pool_objects()

    uploads = [
        SlowUpload(ENDPOINTS[0], obj_path(b, "slow"), None, 32 * MiB, 12 * MiB),
        SlowUpload(ENDPOINTS[0], obj_path(b, "slow-part"), {"partNumber": "1", "uploadId": uid}, 32 * MiB, 12 * MiB),
    ]
    for u in uploads:
        u.start()
    for u in uploads:
        assert u.reached.wait(180), "upload did not get going"
    time.sleep(PENDING_EXPIRY_S + 1)
    meridian("gc", "process", timeout=300)
    for u in uploads:
        u.resume.set()
    for u in uploads:
        u.join(120)
        assert not u.is_alive()
        assert u.status is None or u.status >= 400, f"a write that outlived its intent reported HTTP {u.status}"

    with expect_error({"404", "NoSuchKey"}, 404):
        g1.head_object(Bucket=b, Key="slow")
    assert g1.list_parts(Bucket=b, Key="slow-part", UploadId=uid).get("Parts", []) == []
    g1.abort_multipart_upload(Bucket=b, Key="slow-part", UploadId=uid)
    gc_now()
    assert_no_orphans(b)
    after = data_pool_objects()
    assert after == baseline, f"left behind {sorted(after - baseline)[:20]}, removed {sorted(baseline - after)[:20]}"


def test_sigterm_finishes_requests_in_flight(crash_env, s3_clients, bucket_factory):
    """A gateway told to stop (SIGTERM, as systemd and `dev down` do) takes no
    new connections but completes the PUT it is receiving, then exits."""
    g1 = s3_clients[1]
    b = bucket_factory(client=g1)
    total = 24 * MiB
    u = SlowUpload(ENDPOINTS[0], obj_path(b, "drained"), None, total, 8 * MiB)
    u.start()
    assert u.reached.wait(180), "upload did not get going"
    pid = gateway_pid(0)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(ENDPOINTS[0] + "/", timeout=2)
    u.resume.set()
    u.join(120)
    assert u.error is None and u.status == 200, (u.error, u.status)
    head = g1.head_object(Bucket=b, Key="drained")
    assert head["ContentLength"] == total
    assert head["ETag"] == f'"{u.md5.hexdigest()}"'
    deadline = time.time() + 40
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid), "the gateway did not exit after draining"
    restart_dev_cluster()
    assert s3_clients[0].head_object(Bucket=b, Key="drained")["ContentLength"] == total
