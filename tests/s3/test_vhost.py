"""Virtual-host-style addressing: `Host: BUCKET.$S3_VHOST_DOMAIN:PORT` sent
to the endpoint's own address reaches BUCKET.  Skips unless S3_VHOST_DOMAIN
is set (e.g. `s3.localhost`)."""

import xml.etree.ElementTree as ET
from urllib.parse import quote, urlsplit

import pytest

from conftest import (
    ENDPOINT,
    VHOST_DOMAIN,
    assert_s3_error,
    get_body,
    raw_request,
    unique_bucket_name,
    xml_find_all,
    xml_text,
)

pytestmark = pytest.mark.skipif(not VHOST_DOMAIN, reason="S3_VHOST_DOMAIN is not set (virtual-host-style addressing)")


def vhost(bucket):
    port = urlsplit(ENDPOINT).port
    host = f"{bucket}.{VHOST_DOMAIN}"
    return f"{host}:{port}" if port else host


def test_vhost_get_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/hello world.txt", Body=b"via the host header")
    r = raw_request("GET", "/" + quote("dir/hello world.txt"), headers={"Host": vhost(bucket)})
    assert r.status_code == 200, r.content[:300]
    assert r.content == b"via the host header"
    r = raw_request("HEAD", "/" + quote("dir/hello world.txt"), headers={"Host": vhost(bucket)})
    assert r.status_code == 200 and r.headers["Content-Length"] == str(len(b"via the host header"))


def test_vhost_list_and_put(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    r = raw_request("PUT", "/b", body=b"put via vhost", headers={"Host": vhost(bucket)})
    assert r.status_code == 200, r.content[:300]
    assert get_body(s3, bucket, "b") == b"put via vhost"
    r = raw_request("GET", "/", params={"list-type": "2"}, headers={"Host": vhost(bucket)})
    assert r.status_code == 200, r.content[:300]
    root = ET.fromstring(r.content)
    assert xml_text(root, "Name") == bucket
    assert [xml_text(c, "Key") for c in xml_find_all(root, "Contents")] == ["a", "b"]


def test_vhost_missing_bucket(s3):
    name = unique_bucket_name()
    r = raw_request("GET", "/key", headers={"Host": vhost(name)})
    assert_s3_error(r, "NoSuchBucket", 404)
