"""GetObjectAttributes: ETag, size, storage class and the part list of a
multipart object (paginated), per version, and its refusals."""

from conftest import MiB, expect_error, md5_hex


def test_attributes_of_a_simple_object(s3, bucket):
    body = b"attrs" * 1000
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    a = s3.get_object_attributes(Bucket=bucket, Key="k",
                                 ObjectAttributes=["ETag", "ObjectSize", "StorageClass"])
    assert a["ETag"].strip('"') == md5_hex(body)
    assert a["ObjectSize"] == len(body) and a["StorageClass"] == "STANDARD"
    assert "ObjectParts" not in a
    only = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert "ETag" not in only and only["ObjectSize"] == len(body)


def test_attributes_list_the_parts_of_a_multipart_object(s3, bucket):
    sizes = [5 * MiB, 5 * MiB, 123]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")
    done = []
    for n, size in enumerate(sizes, 1):
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=n, Body=b"p" * size)
        done.append({"PartNumber": n, "ETag": r["ETag"]})
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": done})
    a = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts", "ObjectSize"],
                                 MaxParts=2)
    parts = a["ObjectParts"]
    assert parts["TotalPartsCount"] == 3 and parts["IsTruncated"] is True
    assert [(p["PartNumber"], p["Size"]) for p in parts["Parts"]] == [(1, 5 * MiB), (2, 5 * MiB)]
    rest = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    PartNumberMarker=parts["NextPartNumberMarker"])["ObjectParts"]
    assert [(p["PartNumber"], p["Size"]) for p in rest["Parts"]] == [(3, 123)]
    assert rest["IsTruncated"] is False
    assert a["ObjectSize"] == sum(sizes)


def test_attributes_of_versions_and_missing_keys(s3, s3_b, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one")["VersionId"]
    s3.put_object(Bucket=bucket, Key="v", Body=b"three")
    a = s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=v1, ObjectAttributes=["ObjectSize"])
    assert a["ObjectSize"] == 3 and a["VersionId"] == v1
    with expect_error("NoSuchKey", 404):
        s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])
    with expect_error("AccessDenied", 403):
        s3_b.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ETag"])
