"""ListObjects v1 and v2 over 2,500 keys: prefixes, delimiters, pagination,
marker / continuation-token / start-after, KeyCount, IsTruncated, NextMarker,
and encoding-type=url."""

import xml.etree.ElementTree as ET
from urllib.parse import unquote_plus

import pytest

from conftest import (
    destroy_bucket,
    expect_error,
    meridian_only,
    parallel_put,
    raw_request,
    unique_bucket_name,
    xml_find_all,
    xml_text,
)

N_NESTED = 2450
N_TOP = 50


def all_keys():
    keys = [f"dir{i % 5}/sub{i % 7}/obj{i:05}" for i in range(N_NESTED)]
    keys += [f"top-{i:02}" for i in range(N_TOP)]
    return keys


EXPECTED = sorted(all_keys())


@pytest.fixture(scope="module")
def lbucket(s3):
    """One bucket holding the 2,500 keys, shared (read-only) by this module."""
    name = unique_bucket_name()
    s3.create_bucket(Bucket=name)
    parallel_put(s3, name, {k: b"" if i % 3 else k.encode() for i, k in enumerate(all_keys())}, workers=16)
    yield name
    destroy_bucket(s3, name)


def v2_pages(s3, bucket, **kw):
    pages, token = [], None
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(Bucket=bucket, **args)
        pages.append(page)
        if not page["IsTruncated"]:
            assert not page.get("NextContinuationToken")
            return pages
        token = page["NextContinuationToken"]
        assert token, "a truncated v2 page must carry NextContinuationToken"
        assert len(pages) < 5000, "pagination does not terminate"


def keys_of(pages):
    return [o["Key"] for p in pages for o in p.get("Contents", [])]


def prefixes_of(pages):
    return [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])]


# ------------------------------------------------------------------ v2


def test_v2_default_max_keys(s3, lbucket):
    pages = v2_pages(s3, lbucket)
    assert [len(p.get("Contents", [])) for p in pages] == [1000, 1000, 500]
    assert [p["IsTruncated"] for p in pages] == [True, True, False]
    for p in pages:
        assert p["KeyCount"] == len(p.get("Contents", []))
        assert p["MaxKeys"] == 1000
        assert not p.get("CommonPrefixes")
    # Pages are in order and their union is exactly the key set.
    assert keys_of(pages) == EXPECTED
    sizes = {o["Key"]: o["Size"] for p in pages for o in p["Contents"]}
    for i, k in enumerate(all_keys()):
        assert sizes[k] == (0 if i % 3 else len(k))


def test_v2_small_max_keys_with_prefix(s3, lbucket):
    expected = [k for k in EXPECTED if k.startswith("dir3/")]
    pages = v2_pages(s3, lbucket, Prefix="dir3/", MaxKeys=37)
    counts = [p["KeyCount"] for p in pages]
    assert all(c == 37 for c in counts[:-1]) and 0 < counts[-1] <= 37
    assert keys_of(pages) == expected
    for p in pages:
        assert p["Prefix"] == "dir3/"
        assert p["MaxKeys"] == 37


def test_v2_delimiter_at_root(s3, lbucket):
    page = s3.list_objects_v2(Bucket=lbucket, Delimiter="/")
    assert prefixes_of([page]) == [f"dir{i}/" for i in range(5)]
    assert keys_of([page]) == [f"top-{i:02}" for i in range(N_TOP)]
    assert page["KeyCount"] == 5 + N_TOP
    assert page["IsTruncated"] is False
    assert page["Delimiter"] == "/"


def test_v2_prefix_and_delimiter(s3, lbucket):
    page = s3.list_objects_v2(Bucket=lbucket, Prefix="dir2/", Delimiter="/")
    assert prefixes_of([page]) == [f"dir2/sub{j}/" for j in range(7)]
    assert not page.get("Contents")
    assert page["KeyCount"] == 7

    page = s3.list_objects_v2(Bucket=lbucket, Prefix="dir2/sub3/", Delimiter="/")
    expected = [k for k in EXPECTED if k.startswith("dir2/sub3/")]
    assert len(expected) == N_NESTED // 35
    assert keys_of([page]) == expected
    assert not page.get("CommonPrefixes")

    # A delimiter that is not "/" groups on its first occurrence after the prefix.
    page = s3.list_objects_v2(Bucket=lbucket, Prefix="dir1/sub", Delimiter="obj")
    assert prefixes_of([page]) == [f"dir1/sub{j}/obj" for j in range(7)]

    page = s3.list_objects_v2(Bucket=lbucket, Prefix="no-such-prefix/")
    assert page["KeyCount"] == 0 and not page.get("Contents") and page["IsTruncated"] is False


def test_v2_delimiter_paginated(s3, lbucket):
    pages = v2_pages(s3, lbucket, Delimiter="/", MaxKeys=2)
    for p in pages:
        n = len(p.get("Contents", [])) + len(p.get("CommonPrefixes", []))
        assert p["KeyCount"] == n
        assert n <= 2
    assert prefixes_of(pages) == [f"dir{i}/" for i in range(5)]
    assert keys_of(pages) == [f"top-{i:02}" for i in range(N_TOP)]
    assert len(pages) == (5 + N_TOP + 1) // 2


def test_v2_start_after(s3, lbucket):
    pivot = EXPECTED[1234]
    pages = v2_pages(s3, lbucket, StartAfter=pivot)
    assert keys_of(pages) == EXPECTED[1235:]
    assert pages[0]["StartAfter"] == pivot

    # start-after need not be an existing key.
    pages = v2_pages(s3, lbucket, StartAfter="dir3/sub4/", MaxKeys=500)
    assert keys_of(pages) == [k for k in EXPECTED if k > "dir3/sub4/"]

    page = s3.list_objects_v2(Bucket=lbucket, StartAfter="zzzz")
    assert page["KeyCount"] == 0 and page["IsTruncated"] is False

    page = s3.list_objects_v2(Bucket=lbucket, StartAfter="dir0/", Prefix="dir0/", Delimiter="/", MaxKeys=3)
    assert prefixes_of([page]) == ["dir0/sub0/", "dir0/sub1/", "dir0/sub2/"]


@meridian_only("moto does not echo ContinuationToken / StartAfter (v2) or Marker (v1) in the response")
def test_list_echoes_request_parameters(s3, lbucket):
    first = s3.list_objects_v2(Bucket=lbucket, MaxKeys=10, StartAfter=EXPECTED[5])
    assert first["StartAfter"] == EXPECTED[5]
    token = first["NextContinuationToken"]
    second = s3.list_objects_v2(Bucket=lbucket, MaxKeys=10, ContinuationToken=token)
    assert second["ContinuationToken"] == token
    assert keys_of([first, second]) == EXPECTED[6:26]
    page = s3.list_objects(Bucket=lbucket, Marker=EXPECTED[100], MaxKeys=5)
    assert page["Marker"] == EXPECTED[100]
    assert keys_of([page]) == EXPECTED[101:106]


@meridian_only("moto returns all 2,500 keys for max-keys=5000; AWS caps a page at 1,000")
def test_v2_max_keys_capped_at_1000(s3, lbucket):
    page = s3.list_objects_v2(Bucket=lbucket, MaxKeys=5000)
    assert page["KeyCount"] == 1000
    assert page["IsTruncated"] is True
    assert keys_of([page]) == EXPECTED[:1000]


@meridian_only("moto answers 500 to a malformed continuation token; AWS answers 400 InvalidArgument")
def test_v2_invalid_continuation_token(s3, lbucket):
    with expect_error("InvalidArgument", 400):
        s3.list_objects_v2(Bucket=lbucket, ContinuationToken="this-is-not-a-token-%%%")


# ------------------------------------------------------------------ v1


def v1_pages(s3, bucket, **kw):
    pages, marker = [], None
    while True:
        args = dict(kw)
        if marker is not None:
            args["Marker"] = marker
        page = s3.list_objects(Bucket=bucket, **args)
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        if kw.get("Delimiter"):
            marker = page.get("NextMarker")
            assert marker, "a truncated v1 page with a delimiter must carry NextMarker"
        else:
            marker = page.get("NextMarker") or page["Contents"][-1]["Key"]
        assert len(pages) < 5000


def test_v1_default_pagination(s3, lbucket):
    pages = v1_pages(s3, lbucket)
    assert [len(p["Contents"]) for p in pages] == [1000, 1000, 500]
    assert keys_of(pages) == EXPECTED


def test_v1_marker_pagination_small_pages(s3, lbucket):
    pages = v1_pages(s3, lbucket, MaxKeys=300, Prefix="dir")
    assert all(len(p["Contents"]) == 300 for p in pages[:-1])
    assert keys_of(pages) == [k for k in EXPECTED if k.startswith("dir")]


def test_v1_marker_semantics(s3, lbucket):
    marker = EXPECTED[2100]
    page = s3.list_objects(Bucket=lbucket, Marker=marker)
    assert keys_of([page]) == EXPECTED[2101:]
    assert page["IsTruncated"] is False
    page = s3.list_objects(Bucket=lbucket, Marker="dir4/sub6/obz")
    assert keys_of([page]) == [k for k in EXPECTED if k > "dir4/sub6/obz"]


@meridian_only(
    "moto ignores max-keys and marker in v1 listings with a delimiter (one untruncated page) "
    "and sends an opaque NextMarker without a delimiter; AWS sends NextMarker only with a delimiter"
)
def test_v1_next_marker(s3, lbucket):
    page = s3.list_objects(Bucket=lbucket, MaxKeys=10)
    assert page["IsTruncated"] is True
    assert page.get("NextMarker") in (None, page["Contents"][-1]["Key"])

    pages = v1_pages(s3, lbucket, Prefix="dir4/", Delimiter="/", MaxKeys=3)
    assert prefixes_of(pages) == [f"dir4/sub{j}/" for j in range(7)]
    assert [len(p.get("CommonPrefixes", [])) for p in pages] == [3, 3, 1]
    for p in pages[:-1]:
        assert p["NextMarker"] == p["CommonPrefixes"][-1]["Prefix"]

    # Mixed keys and prefixes: NextMarker is the last entry returned.
    pages = v1_pages(s3, lbucket, Delimiter="/", MaxKeys=4)
    assert prefixes_of(pages) == [f"dir{i}/" for i in range(5)]
    assert keys_of(pages) == [f"top-{i:02}" for i in range(N_TOP)]
    for p in pages[:-1]:
        entries = [o["Key"] for o in p.get("Contents", [])] + [c["Prefix"] for c in p.get("CommonPrefixes", [])]
        assert len(entries) == 4
        assert p["NextMarker"] == max(entries)


# --------------------------------------------------------- encoding-type=url

WEIRD_KEYS = [
    "plain",
    "with space/and more spaces",
    "plus+sign",
    "percent%2Fliteral",
    "ünïcødé/файл",
    "amp&lt<gt>quote\"apos'",
    "tab\there",
    "dir one/nested two/leaf",
]


@pytest.fixture
def wbucket(s3, bucket):
    for k in WEIRD_KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def _raw_list(bucket, params):
    r = raw_request("GET", f"/{bucket}", params=params)
    assert r.status_code == 200, r.content
    return ET.fromstring(r.content)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_encoding_type_url(wbucket, version):
    params = {"encoding-type": "url"}
    if version == "v2":
        params["list-type"] = "2"
    root = _raw_list(wbucket, params)
    assert xml_text(root, "EncodingType") == "url"
    raw_keys = [xml_text(c, "Key") for c in xml_find_all(root, "Contents")]
    assert sorted(unquote_plus(k) for k in raw_keys) == sorted(WEIRD_KEYS)
    for raw in raw_keys:
        assert raw.isascii() and " " not in raw and "\t" not in raw, raw
        if unquote_plus(raw) == "plus+sign":
            assert raw != "plus+sign", "a literal '+' must be encoded"
        if unquote_plus(raw) == "percent%2Fliteral":
            assert "%25" in raw, "a literal '%' must be encoded"


def test_encoding_type_url_on_list_object_versions(wbucket):
    root = _raw_list(wbucket, {"versions": "", "encoding-type": "url"})
    assert xml_text(root, "EncodingType") == "url"
    raw_keys = [xml_text(v, "Key") for v in xml_find_all(root, "Version")]
    assert sorted(unquote_plus(k) for k in raw_keys) == sorted(WEIRD_KEYS)
    assert all(k.isascii() and " " not in k for k in raw_keys), raw_keys


def test_encoding_type_url_with_delimiter(wbucket):
    root = _raw_list(wbucket, {"list-type": "2", "encoding-type": "url", "delimiter": " ", "prefix": "dir one/"})
    assert unquote_plus(xml_text(root, "Prefix")) == "dir one/"
    assert unquote_plus(xml_text(root, "Delimiter")) == " "
    prefixes = [xml_text(c, "Prefix") for c in xml_find_all(root, "CommonPrefixes")]
    assert [unquote_plus(p) for p in prefixes] == ["dir one/nested "]
    assert all(" " not in p for p in prefixes)


def test_unencoded_listing_escapes_xml(s3, wbucket):
    # Without encoding-type the keys arrive as XML text and must parse back.
    root = _raw_list(wbucket, {"list-type": "2"})
    assert sorted(xml_text(c, "Key") for c in xml_find_all(root, "Contents")) == sorted(
        k for k in WEIRD_KEYS
    )
    # boto3 (which asks for url encoding and decodes it) sees the same keys.
    assert sorted(o["Key"] for o in s3.list_objects(Bucket=wbucket)["Contents"]) == sorted(WEIRD_KEYS)
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=wbucket)["Contents"]) == sorted(WEIRD_KEYS)


# --------------------------------------------------------------------------
# Prefix and delimiter edge cases
# --------------------------------------------------------------------------


def test_prefix_edge_cases(s3, bucket):
    keys = ["a", "a/", "a/b", "a/b/c", "a//d", "ab", "a-b", "b/é/ü", "b/%2F", "z"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")

    def ls(**kw):
        r = s3.list_objects_v2(Bucket=bucket, **kw)
        return ([o["Key"] for o in r.get("Contents", [])],
                [p["Prefix"] for p in r.get("CommonPrefixes", [])])

    # UTF-8 byte order: '-' < '/' < letters.
    assert ls()[0] == ["a", "a-b", "a/", "a//d", "a/b", "a/b/c", "ab", "b/%2F", "b/é/ü", "z"]
    # A prefix equal to a key lists it and what lies under it.
    assert ls(Prefix="a/") == (["a/", "a//d", "a/b", "a/b/c"], [])
    # With a delimiter, the key equal to the prefix is content, an empty
    # segment ("a//") is a prefix of its own.
    assert ls(Prefix="a/", Delimiter="/") == (["a/", "a/b"], ["a//", "a/b/"])
    assert ls(Prefix="a", Delimiter="/") == (["a", "a-b", "ab"], ["a/"])
    # A delimiter other than '/', and one longer than a character.
    assert ls(Delimiter="-") == (["a", "a/", "a//d", "a/b", "a/b/c", "ab", "b/%2F", "b/é/ü", "z"], ["a-"])
    assert ls(Prefix="a", Delimiter="/b") == (["a", "a-b", "a/", "a//d", "ab"], ["a/b"])
    # Non-ASCII and percent signs in prefixes are taken literally.
    assert ls(Prefix="b/é") == (["b/é/ü"], [])
    assert ls(Prefix="b/%") == (["b/%2F"], [])
    # A prefix nothing matches, and StartAfter past every key.
    assert ls(Prefix="nothing") == ([], [])
    assert ls(StartAfter="zz") == ([], [])
    # StartAfter and Prefix together: only keys past StartAfter under Prefix.
    assert ls(Prefix="a/", StartAfter="a/b") == (["a/b/c"], [])


def test_delimiter_groups_are_counted_once_across_pages(s3, bucket):
    for i in range(5):
        for j in range(3):
            s3.put_object(Bucket=bucket, Key=f"dir{i}/f{j}", Body=b"")
    s3.put_object(Bucket=bucket, Key="top", Body=b"")
    seen_prefixes, seen_keys, token = [], [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, Delimiter="/", MaxKeys=2, **kw)
        seen_prefixes += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
        seen_keys += [o["Key"] for o in r.get("Contents", [])]
        assert r["KeyCount"] <= 2
        if not r["IsTruncated"]:
            break
        token = r["NextContinuationToken"]
    assert seen_prefixes == [f"dir{i}/" for i in range(5)]
    assert seen_keys == ["top"]
