"""Versioning: Enabled / Suspended, versions readable by id, delete markers,
ListObjectVersions order and IsLatest, restoring by deleting the marker,
deleting a specific version, and the `null` version under suspension."""

import pytest

from conftest import expect_error, get_body, meridian_only


@pytest.fixture
def vbucket(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def versions_of(s3, bucket, key=None):
    """(versions, delete_markers) for ``key`` (or all), in listing order."""
    kw = {"Prefix": key} if key else {}
    vs, dms = [], []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
        vs += [v for v in page.get("Versions", []) if key is None or v["Key"] == key]
        dms += [d for d in page.get("DeleteMarkers", []) if key is None or d["Key"] == key]
    return vs, dms


def test_versioning_status(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_unversioned_bucket_has_null_version(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    assert "VersionId" not in put or put["VersionId"] == "null"
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    vs, dms = versions_of(s3, bucket, "k")
    assert [v["VersionId"] for v in vs] == ["null"]
    assert vs[0]["IsLatest"] is True and not dms
    assert get_body(s3, bucket, "k", VersionId="null") == b"two"


def test_multiple_versions_readable_by_id(s3, vbucket):
    ids = []
    for body in (b"v1", b"v2", b"v3"):
        r = s3.put_object(Bucket=vbucket, Key="doc", Body=body)
        assert r["VersionId"] and r["VersionId"] != "null"
        ids.append(r["VersionId"])
    assert len(set(ids)) == 3
    for vid, body in zip(ids, (b"v1", b"v2", b"v3")):
        got = s3.get_object(Bucket=vbucket, Key="doc", VersionId=vid)
        assert got["Body"].read() == body
        assert got["VersionId"] == vid
        assert s3.head_object(Bucket=vbucket, Key="doc", VersionId=vid)["ContentLength"] == 2
    latest = s3.get_object(Bucket=vbucket, Key="doc")
    assert latest["Body"].read() == b"v3" and latest["VersionId"] == ids[2]

    vs, dms = versions_of(s3, vbucket, "doc")
    assert [v["VersionId"] for v in vs] == ids[::-1]  # newest first
    assert [v["IsLatest"] for v in vs] == [True, False, False]
    assert not dms

    with expect_error({"NoSuchVersion", "InvalidArgument"}, {400, 404}):
        s3.get_object(Bucket=vbucket, Key="doc", VersionId="not-a-real-version-id")


def test_delete_marker_lifecycle(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=vbucket, Key="k", Body=b"second")["VersionId"]

    d = s3.delete_object(Bucket=vbucket, Key="k")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    assert marker and marker not in (v1, v2)

    with expect_error("NoSuchKey", 404):
        s3.get_object(Bucket=vbucket, Key="k")
    with expect_error({"404", "NoSuchKey"}, 404) as err:
        s3.head_object(Bucket=vbucket, Key="k")
    assert err["response"]["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    assert s3.list_objects_v2(Bucket=vbucket)["KeyCount"] == 0
    # Old versions are still there.
    assert get_body(s3, vbucket, "k", VersionId=v1) == b"first"
    assert get_body(s3, vbucket, "k", VersionId=v2) == b"second"

    vs, dms = versions_of(s3, vbucket, "k")
    assert [v["VersionId"] for v in vs] == [v2, v1]
    assert [v["IsLatest"] for v in vs] == [False, False]
    assert [(m["VersionId"], m["IsLatest"]) for m in dms] == [(marker, True)]

    # Deleting the delete marker by id restores the object.
    r = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert r["VersionId"] == marker
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["Body"].read() == b"second" and got["VersionId"] == v2
    vs, dms = versions_of(s3, vbucket, "k")
    assert not dms
    assert [(v["VersionId"], v["IsLatest"]) for v in vs] == [(v2, True), (v1, False)]


@meridian_only(
    "moto omits x-amz-delete-marker on GET (it sends it on HEAD) and on DELETE ?versionId=<marker>, "
    "and answers 404 to GET ?versionId=<marker>; AWS sends the header and answers 405 MethodNotAllowed"
)
def test_delete_marker_get_headers(s3, vbucket):
    s3.put_object(Bucket=vbucket, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=vbucket, Key="k")["VersionId"]
    with expect_error("NoSuchKey", 404) as err:
        s3.get_object(Bucket=vbucket, Key="k")
    assert err["response"]["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    with expect_error("MethodNotAllowed", 405) as err:
        s3.get_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert err["response"]["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    # Permanently deleting the marker says that it was one.
    r = s3.delete_object(Bucket=vbucket, Key="k", VersionId=marker)
    assert r.get("DeleteMarker") is True and r["VersionId"] == marker
    assert get_body(s3, vbucket, "k") == b"x"


def test_delete_specific_version(s3, vbucket):
    ids = [s3.put_object(Bucket=vbucket, Key="k", Body=b)["VersionId"] for b in (b"a", b"b", b"c")]
    r = s3.delete_object(Bucket=vbucket, Key="k", VersionId=ids[1])
    assert r["VersionId"] == ids[1]
    assert not r.get("DeleteMarker")
    with expect_error({"NoSuchVersion", "NoSuchKey"}, 404):
        s3.get_object(Bucket=vbucket, Key="k", VersionId=ids[1])
    vs, dms = versions_of(s3, vbucket, "k")
    assert [v["VersionId"] for v in vs] == [ids[2], ids[0]] and not dms
    assert get_body(s3, vbucket, "k") == b"c"

    # Deleting the latest version makes the previous one current.
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=ids[2])
    got = s3.get_object(Bucket=vbucket, Key="k")
    assert got["Body"].read() == b"a" and got["VersionId"] == ids[0]
    vs, _ = versions_of(s3, vbucket, "k")
    assert [(v["VersionId"], v["IsLatest"]) for v in vs] == [(ids[0], True)]

    # Deleting the last version leaves no object and no marker.
    s3.delete_object(Bucket=vbucket, Key="k", VersionId=ids[0])
    assert versions_of(s3, vbucket, "k") == ([], [])
    with expect_error("NoSuchKey", 404):
        s3.get_object(Bucket=vbucket, Key="k")


def test_suspended_writes_replace_null_version(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    for body in (b"null-1", b"null-2", b"null-3"):
        r = s3.put_object(Bucket=bucket, Key="k", Body=body)
        assert r.get("VersionId", "null") == "null"
    vs, dms = versions_of(s3, bucket, "k")
    assert [(v["VersionId"], v["IsLatest"]) for v in vs] == [("null", True)]
    assert not dms
    assert get_body(s3, bucket, "k") == b"null-3"
    assert get_body(s3, bucket, "k", VersionId="null") == b"null-3"


@meridian_only(
    "moto drops every earlier version when a suspended bucket overwrites a key; AWS keeps "
    "the versions written while versioning was enabled and replaces only the `null` one"
)
def test_suspended_keeps_enabled_versions(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="k", Body=b"enabled-1")["VersionId"]
    s3.put_bucket_versioning(Bucket=vbucket, VersioningConfiguration={"Status": "Suspended"})

    r = s3.put_object(Bucket=vbucket, Key="k", Body=b"null-1")
    assert r.get("VersionId", "null") == "null"
    r = s3.put_object(Bucket=vbucket, Key="k", Body=b"null-2")
    assert r.get("VersionId", "null") == "null"

    vs, dms = versions_of(s3, vbucket, "k")
    assert [(v["VersionId"], v["IsLatest"]) for v in vs] == [("null", True), (v1, False)]
    assert not dms
    assert get_body(s3, vbucket, "k") == b"null-2"
    assert get_body(s3, vbucket, "k", VersionId="null") == b"null-2"
    assert get_body(s3, vbucket, "k", VersionId=v1) == b"enabled-1"

    # A delete while suspended puts a `null` delete marker in place of the null version.
    d = s3.delete_object(Bucket=vbucket, Key="k")
    assert d["DeleteMarker"] is True and d.get("VersionId", "null") == "null"
    vs, dms = versions_of(s3, vbucket, "k")
    assert [v["VersionId"] for v in vs] == [v1]
    assert [(m["VersionId"], m["IsLatest"]) for m in dms] == [("null", True)]

    # Re-enabled: new writes get fresh ids, old ones stay.
    s3.put_bucket_versioning(Bucket=vbucket, VersioningConfiguration={"Status": "Enabled"})
    v3 = s3.put_object(Bucket=vbucket, Key="k", Body=b"enabled-2")["VersionId"]
    assert v3 not in ("null", v1)
    vs, dms = versions_of(s3, vbucket, "k")
    assert [v["VersionId"] for v in vs] == [v3, v1]
    assert get_body(s3, vbucket, "k") == b"enabled-2"


def test_list_object_versions_order_and_pagination(s3, vbucket):
    expected = []  # (key, version id) in listing order: key ascending, newest first
    for key in ("a", "b/1", "b/2", "c"):
        ids = [s3.put_object(Bucket=vbucket, Key=key, Body=f"{key}{i}".encode())["VersionId"] for i in range(3)]
        expected += [(key, vid) for vid in reversed(ids)]
    marker_c = s3.delete_object(Bucket=vbucket, Key="c")["VersionId"]
    first_c = next(i for i, (k, _) in enumerate(expected) if k == "c")
    expected.insert(first_c, ("c", marker_c))

    versions, markers, kw = [], [], {}
    while True:
        page = s3.list_object_versions(Bucket=vbucket, MaxKeys=4, **kw)
        n = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        assert 0 < n <= 4
        versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
        markers += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
        if not page["IsTruncated"]:
            break
        kw = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}
    assert versions == [e for e in expected if e[1] != marker_c]
    assert markers == [("c", marker_c)]

    page = s3.list_object_versions(Bucket=vbucket, Prefix="b/")
    assert [(v["Key"], v["VersionId"]) for v in page["Versions"]] == [e for e in expected if e[0].startswith("b/")]
    assert not page.get("DeleteMarkers")
    latest = [(v["Key"], v["VersionId"]) for v in page["Versions"] if v["IsLatest"]]
    assert latest == [next(e for e in expected if e[0] == k) for k in ("b/1", "b/2")]

    page = s3.list_object_versions(Bucket=vbucket, Delimiter="/")
    assert [c["Prefix"] for c in page.get("CommonPrefixes", [])] == ["b/"]
    assert sorted({v["Key"] for v in page["Versions"]}) == ["a", "c"]


def test_copy_specific_version(s3, vbucket):
    v1 = s3.put_object(Bucket=vbucket, Key="src", Body=b"old")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="src", Body=b"new")
    r = s3.copy_object(Bucket=vbucket, Key="dst", CopySource={"Bucket": vbucket, "Key": "src", "VersionId": v1})
    assert r.get("CopySourceVersionId") == v1
    assert r["VersionId"]
    assert get_body(s3, vbucket, "dst") == b"old"


def test_delete_objects_with_versions(s3, vbucket):
    a1 = s3.put_object(Bucket=vbucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=vbucket, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=vbucket, Key="b", Body=b"1")
    resp = s3.delete_objects(
        Bucket=vbucket, Delete={"Objects": [{"Key": "a", "VersionId": a2}, {"Key": "b"}]}
    )
    deleted = {d["Key"]: d for d in resp["Deleted"]}
    assert deleted["a"]["VersionId"] == a2
    assert deleted["b"]["DeleteMarker"] is True and deleted["b"]["DeleteMarkerVersionId"]
    assert get_body(s3, vbucket, "a") == b"1"
    assert s3.get_object(Bucket=vbucket, Key="a")["VersionId"] == a1
    with expect_error("NoSuchKey", 404):
        s3.get_object(Bucket=vbucket, Key="b")
