"""Fixtures of the multi-site replication suite: two zones of one realm.

Environment (set by `cargo test --test sync`):
    ZONE_A_ENDPOINT, ZONE_B_ENDPOINT   gateway URLs of the master and the secondary
    ZONE_A_CONF, ZONE_B_CONF           their cluster configs (for `meridian sync status`)
    S3_ACCESS_KEY, S3_SECRET_KEY       a user known to both zones
    MERIDIAN_BIN                       the meridian binary
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import boto3
import pytest
from botocore.config import Config


def _client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name="dev",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def zone_a():
    return _client(os.environ["ZONE_A_ENDPOINT"])


@pytest.fixture(scope="session")
def zone_b():
    return _client(os.environ["ZONE_B_ENDPOINT"])


def caught_up(conf: str) -> bool:
    out = subprocess.run(
        [os.environ["MERIDIAN_BIN"], "-c", conf, "--format", "json", "sync", "status"],
        capture_output=True,
        text=True,
    )
    return out.returncode == 0 and json.loads(out.stdout).get("caught_up") is True


def wait_synced(timeout: float = 90.0) -> None:
    """Until both zones say they have applied everything the other committed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if caught_up(os.environ["ZONE_A_CONF"]) and caught_up(os.environ["ZONE_B_CONF"]):
            return
        time.sleep(0.5)
    raise AssertionError(f"zones not caught up within {timeout} s")


@pytest.fixture
def bucket(zone_a):
    name = f"sync-{uuid.uuid4().hex[:12]}"
    zone_a.create_bucket(Bucket=name)
    wait_synced()
    return name


def versions(client, bucket: str):
    """Every version and delete marker, as comparable tuples, newest first per key."""
    out = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.append(("v", v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"], v["LastModified"]))
        for d in page.get("DeleteMarkers", []):
            out.append(("d", d["Key"], d["VersionId"], None, None, d["IsLatest"], d["LastModified"]))
    return sorted(out, key=lambda t: (t[1], t[0], t[2]))
