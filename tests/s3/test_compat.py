"""Behaviours where applications and conformance suites caught the gateway
differing from AWS/RGW: deleting a bucket that only has unfinished uploads,
listing versions while deleting them, conditional writes on a missing key,
version and delete-marker headers, presigned expiry, partNumber reads, PUTs
without Content-Length, and CreateBucket on an existing name."""

import datetime as dt

import requests

from conftest import (
    ENDPOINT,
    IS_MERIDIAN,
    MiB,
    assert_s3_error,
    build_url,
    data_pool_objects,
    expect_error,
    meridian_only,
    obj_path,
    random_bytes,
    raw_request,
    sign_request,
)


def header(resp_or_exc, name):
    meta = resp_or_exc["ResponseMetadata"] if isinstance(resp_or_exc, dict) else resp_or_exc.response["ResponseMetadata"]
    return meta["HTTPHeaders"].get(name)


def test_delete_bucket_with_only_unfinished_uploads(s3, bucket_factory):
    name = bucket_factory()
    before = data_pool_objects() if IS_MERIDIAN else set()
    for key in ("a", "b/c"):
        uid = s3.create_multipart_upload(Bucket=name, Key=key)["UploadId"]
        s3.upload_part(Bucket=name, Key=key, UploadId=uid, PartNumber=1, Body=random_bytes(5 * MiB))
    s3.create_multipart_upload(Bucket=name, Key="no-parts")
    s3.delete_bucket(Bucket=name)
    with expect_error({"404", "NoSuchBucket"}, 404):
        s3.head_bucket(Bucket=name)
    # The name is free again, and the new bucket has no upload of the old one.
    s3.create_bucket(Bucket=name)
    assert s3.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
    if IS_MERIDIAN:
        # The parts' data went with the uploads.
        assert data_pool_objects() - before == set()


def test_delete_bucket_with_objects_is_still_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.create_multipart_upload(Bucket=bucket, Key="u")
    with expect_error("BucketNotEmpty", 409):
        s3.delete_bucket(Bucket=bucket)
    # Refused means untouched: the upload is still there.
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == ["u"]


def test_list_versions_between_batches_of_deletes(s3, bucket):
    keys = [f"key-{i:03}" for i in range(45)]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    deleted = []
    kwargs = {"Bucket": bucket, "MaxKeys": 10}
    while True:
        page = s3.list_object_versions(**kwargs)
        batch = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", [])]
        if batch:
            r = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            assert r.get("Errors", []) == []
            deleted += [o["Key"] for o in batch]
        if not page.get("IsTruncated"):
            break
        # The marker names a version that is gone now: listing goes on.
        kwargs.update(KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"])
    assert sorted(set(deleted)) == keys
    assert s3.list_object_versions(Bucket=bucket).get("Versions", []) == []


def test_list_versions_from_a_deleted_versioned_marker(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for k in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
        s3.put_object(Bucket=bucket, Key=k, Body=b"2")
    page = s3.list_object_versions(Bucket=bucket, MaxKeys=3)
    assert page["IsTruncated"]
    s3.delete_object(Bucket=bucket, Key=page["NextKeyMarker"], VersionId=page["NextVersionIdMarker"])
    rest = s3.list_object_versions(
        Bucket=bucket, KeyMarker=page["NextKeyMarker"], VersionIdMarker=page["NextVersionIdMarker"]
    )
    seen = {(v["Key"], v["VersionId"]) for v in page["Versions"] + rest.get("Versions", [])}
    assert len(seen) == 6, "nothing skipped"


def test_conditional_put_on_a_missing_key(s3, bucket):
    with expect_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch='"d41d8cd98f00b204e9800998ecf8427e"')
    with expect_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch="*")
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="absent")
    # If-None-Match: * creates it once.
    s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfNoneMatch="*")
    with expect_error("PreconditionFailed", 412):
        s3.put_object(Bucket=bucket, Key="absent", Body=b"y", IfNoneMatch="*")


def test_unversioned_bucket_answers_without_versions(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "VersionId" not in r
    assert header(r, "x-amz-version-id") is None
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    r = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert "VersionId" not in r
    r = s3.head_object(Bucket=bucket, Key="k")
    assert "VersionId" not in r
    r = s3.delete_object(Bucket=bucket, Key="k")
    assert "DeleteMarker" not in r and "VersionId" not in r
    assert header(r, "x-amz-delete-marker") is None
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "mp"}]})
    assert [d["Key"] for d in r["Deleted"]] == ["mp"]
    assert "DeleteMarker" not in r["Deleted"][0]


def test_delete_marker_headers(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"x")["VersionId"]
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d["DeleteMarker"] is True
    marker = d["VersionId"]
    assert marker and marker != v1
    with expect_error({"404", "NoSuchKey"}, 404) as info:
        s3.head_object(Bucket=bucket, Key="k")
    assert header(info["exc"], "x-amz-delete-marker") == "true"
    with expect_error("NoSuchKey", 404) as info:
        s3.get_object(Bucket=bucket, Key="k")
    assert header(info["exc"], "x-amz-delete-marker") == "true"
    with expect_error("MethodNotAllowed", 405) as info:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert header(info["exc"], "x-amz-delete-marker") == "true"
    with expect_error({"405", "MethodNotAllowed"}, 405) as info:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert header(info["exc"], "x-amz-delete-marker") == "true"
    # Deleting the marker itself says it was one.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert r["DeleteMarker"] is True and r["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["VersionId"] == v1
    # Deleting a plain version does not claim a marker.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=v1)
    assert "DeleteMarker" not in r and r["VersionId"] == v1


@meridian_only("moto does not check X-Amz-Expires")
def test_presigned_expiry_is_access_denied(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604801)
    assert_s3_error(requests.get(url, timeout=30), "AccessDenied", 403)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604800)
    assert requests.get(url, timeout=30).content == b"x"
    # A header-signed request from long ago.
    old = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(hours=2)
    r = raw_request("GET", obj_path(bucket, "k"), now=old)
    assert r.status_code == 403, r.content


def test_part_number_reads(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    parts = [random_bytes(5 * MiB), b"tail"]
    etags = [
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=p)["ETag"]
        for n, p in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    r = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert r["Body"].read() == b"tail"
    assert r["PartsCount"] == 2
    assert r["ContentRange"] == f"bytes {5 * MiB}-{5 * MiB + 3}/{5 * MiB + 4}"
    with expect_error("InvalidPartNumber", 416):
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=3)
    with expect_error("InvalidRequest", 400):
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-1")
    # A plain object is one part.
    s3.put_object(Bucket=bucket, Key="plain", Body=b"whole")
    assert s3.get_object(Bucket=bucket, Key="plain", PartNumber=1)["Body"].read() == b"whole"
    with expect_error("InvalidPartNumber", 416):
        s3.get_object(Bucket=bucket, Key="plain", PartNumber=2)


def test_put_with_transfer_encoding_chunked(s3, bucket):
    def chunks():
        yield b"hello "
        yield b"chunked "
        yield b"world"

    # Signed without a length; the body goes in HTTP/1.1 chunks.
    url = build_url(ENDPOINT, obj_path(bucket, "te"))
    signed = sign_request("PUT", url, payload_hash="UNSIGNED-PAYLOAD")
    hdrs = {k: v for k, v in signed.headers.items() if k.lower() != "content-length"}
    r = requests.put(url, headers=hdrs, data=chunks(), timeout=60)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in r.request.headers
    # Refused as AWS refuses it (RGW would take it): nothing half-stored.
    assert_s3_error(r, "MissingContentLength", 411)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="te")


def test_create_existing_bucket_error_bodies(s3, s3_b, bucket):
    from conftest import ACCESS_KEY2, SECRET_KEY2, ZONEGROUP

    body = (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{ZONEGROUP}</LocationConstraint></CreateBucketConfiguration>"
    ).encode()
    r = raw_request("PUT", f"/{bucket}", body=body, access_key=ACCESS_KEY2, secret_key=SECRET_KEY2)
    err = assert_s3_error(r, "BucketAlreadyExists", 409)
    assert err.get("BucketName", bucket) == bucket and err.get("Message")
    r = raw_request("PUT", f"/{bucket}", body=body)
    if r.status_code != 200:
        err = assert_s3_error(r, "BucketAlreadyOwnedByYou", 409)
        assert err.get("Message")


def test_cors_configuration_preflight_and_response_headers(s3, bucket):
    def preflight(origin=None, method=None, headers=None):
        h = {}
        if origin:
            h["Origin"] = origin
        if method:
            h["Access-Control-Request-Method"] = method
        if headers:
            h["Access-Control-Request-Headers"] = headers
        return requests.options(f"{ENDPOINT}/{bucket}/k", headers=h, timeout=30)

    with expect_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)
    assert preflight("https://app.example.com", "GET").status_code == 403
    with expect_error("InvalidRequest", 400):
        s3.put_bucket_cors(
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]},
        )
    s3.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["https://*.example.com"],
                    "AllowedMethods": ["GET", "PUT"],
                    "AllowedHeaders": ["x-amz-*", "content-type"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 600,
                },
                {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
            ]
        },
    )
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert len(rules) == 2 and rules[0]["MaxAgeSeconds"] == 600 and rules[1]["AllowedOrigins"] == ["*"]

    r = preflight("https://app.example.com", "PUT", "Content-Type, X-Amz-Date")
    assert r.status_code == 200, r.content
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Allow-Methods"] == "GET, PUT"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert "content-type" in r.headers["Access-Control-Allow-Headers"]
    assert preflight("https://app.example.com", "PUT", "X-Custom").status_code == 403
    assert preflight("https://evil.test", "PUT").status_code == 403
    r = preflight("https://evil.test", "GET")
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight(None, "GET").status_code == 400
    assert preflight("https://app.example.com", None).status_code == 400

    # A real cross-origin request carries the headers of the rule it matches.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    r = requests.get(url, headers={"Origin": "https://app.example.com"}, timeout=30)
    assert r.status_code == 200 and r.content == b"x"
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag"
    r = requests.get(url, timeout=30)
    assert "Access-Control-Allow-Origin" not in r.headers

    s3.delete_bucket_cors(Bucket=bucket)
    with expect_error("NoSuchCORSConfiguration", 404):
        s3.get_bucket_cors(Bucket=bucket)
    assert preflight("https://app.example.com", "GET").status_code == 403


def test_conditional_delete_object_and_delete_objects(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"12345")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="k")["LastModified"]
    with expect_error("PreconditionFailed", 412):
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0123456789abcdef0123456789abcdef"')
    with expect_error("PreconditionFailed", 412):
        s3.delete_object(Bucket=bucket, Key="k", IfMatchSize=4)
    with expect_error("PreconditionFailed", 412):
        s3.delete_object(Bucket=bucket, Key="k", IfMatchLastModifiedTime=modified - dt.timedelta(seconds=5))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"12345"
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag, IfMatchSize=5, IfMatchLastModifiedTime=modified)
    with expect_error({"404", "NoSuchKey"}, 404):
        s3.head_object(Bucket=bucket, Key="k")
    # Gone already: nothing to compare, 204 as S3 answers.
    r = s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204

    ea = s3.put_object(Bucket=bucket, Key="a", Body=b"a")["ETag"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a", "ETag": ea}, {"Key": "b", "ETag": '"0123456789abcdef0123456789abcdef"'}]},
    )
    assert [d["Key"] for d in r["Deleted"]] == ["a"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("b", "PreconditionFailed")]
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"b"
    # Per-key size and modification time, each both ways.
    s3.put_object(Bucket=bucket, Key="c", Body=b"ccc")
    mb = s3.head_object(Bucket=bucket, Key="b")["LastModified"]
    mc = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [
            {"Key": "b", "Size": 1, "LastModifiedTime": mb},
            {"Key": "c", "Size": 2},
        ]},
    )
    assert [d["Key"] for d in r["Deleted"]] == ["b"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("c", "PreconditionFailed")]
    r = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "c", "LastModifiedTime": mc - dt.timedelta(seconds=10)}]},
    )
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("c", "PreconditionFailed")]
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"ccc"
