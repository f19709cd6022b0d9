"""Bucket policies: stored, read back, refused when malformed, and enforced
(principals, actions, resources and their Not* forms, Allow and Deny, and
conditions on aws:SourceIp, aws:SecureTransport, s3:prefix, s3:delimiter,
s3:max-keys, aws:Referer, aws:UserAgent and aws:username with the String,
Ip, Bool, Numeric, Null and IfExists operators), with anonymous callers,
another user, DeleteObjects key by key and a copy's source bucket."""

import json
import os
import tomllib

from conftest import expect_error, make_client, meridian_only, obj_path, raw_request


def put_policy(s3, bucket, *statements):
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    )


def uid_of(client):
    return client.list_buckets()["Owner"]["ID"]


def test_policy_is_stored_read_back_and_removed(s3, bucket):
    with expect_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)
    stmt = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/*"],
    }
    put_policy(s3, bucket, stmt)
    got = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert got["Statement"] == [stmt]
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    s3.delete_bucket_policy(Bucket=bucket)
    with expect_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)


def test_malformed_policies_are_refused(s3, bucket):
    bad = [
        "not json",
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                    "Resource": "arn:aws:s3:::some-other-bucket/*"}]}),
        json.dumps({"Statement": [{"Effect": "Perhaps", "Principal": "*", "Action": "s3:GetObject",
                                    "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                    "Resource": f"arn:aws:s3:::{bucket}/*",
                                    "Condition": {"IpAddress": {"aws:SourceIp": "300.1.1.1/8"}}}]}),
    ]
    # Each refusal names what is wrong.
    why = ["json", "bucket", "Effect", "300.1.1.1"]
    for text, what in zip(bad, why):
        with expect_error("MalformedPolicy", 400) as info:
            s3.put_bucket_policy(Bucket=bucket, Policy=text)
        assert what.lower() in str(info["exc"]).lower(), (what, str(info["exc"]))
    with expect_error("NoSuchBucketPolicy", 404):
        s3.get_bucket_policy(Bucket=bucket)


def test_only_the_owner_manages_the_policy(s3, s3_b, bucket):
    with expect_error("AccessDenied", 403):
        s3_b.put_bucket_policy(
            Bucket=bucket,
            Policy=json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:*",
                                              "Resource": f"arn:aws:s3:::{bucket}/*"}]}),
        )
    with expect_error("AccessDenied", 403):
        s3_b.get_bucket_policy(Bucket=bucket)


def test_public_read_policy_lets_anonymous_callers_read_only(s3, s3_anon, bucket):
    s3.put_object(Bucket=bucket, Key="pub/doc", Body=b"hello world")
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="pub/doc")
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/pub/*"})
    assert s3_anon.get_object(Bucket=bucket, Key="pub/doc")["Body"].read() == b"hello world"
    assert s3_anon.head_object(Bucket=bucket, Key="pub/doc")["ContentLength"] == 11
    with expect_error("AccessDenied", 403):
        s3_anon.put_object(Bucket=bucket, Key="pub/new", Body=b"x")
    with expect_error("AccessDenied", 403):
        s3_anon.list_objects_v2(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="private", Body=b"secret")
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="private")
    s3.delete_bucket_policy(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="pub/doc")


def test_policy_grants_another_user_and_deny_wins(s3, s3_b, bucket):
    b_uid = uid_of(s3_b)
    s3.put_object(Bucket=bucket, Key="shared/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="keep/b", Body=b"b")
    s3.put_object(Bucket=bucket, Key="gone/c", Body=b"c")
    with expect_error("AccessDenied", 403):
        s3_b.get_object(Bucket=bucket, Key="shared/a")
    put_policy(
        s3,
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": [f"arn:aws:iam:::user/{b_uid}"]},
         "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
         "Resource": f"arn:aws:s3:::{bucket}/keep/*"},
        {"Effect": "Deny", "Principal": {"AWS": b_uid}, "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{bucket}/shared/*"},
    )
    assert s3_b.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"a"
    assert {o["Key"] for o in s3_b.list_objects_v2(Bucket=bucket)["Contents"]} == {"shared/a", "keep/b", "gone/c"}
    s3_b.put_object(Bucket=bucket, Key="inbox/from-b", Body=b"hi")
    with expect_error("AccessDenied", 403):
        s3_b.put_object(Bucket=bucket, Key="shared/a", Body=b"overwritten")
    # The Deny holds against the owner too.
    with expect_error("AccessDenied", 403):
        s3.delete_object(Bucket=bucket, Key="keep/b")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "keep/b"}, {"Key": "gone/c"}]})
    assert [d["Key"] for d in r["Deleted"]] == ["gone/c"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("keep/b", "AccessDenied")]
    assert s3.get_object(Bucket=bucket, Key="keep/b")["Body"].read() == b"b"
    assert s3.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"a"
    # The owner can still take the policy away.
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="keep/b")


def test_conditions_source_ip_secure_transport_and_prefix(s3, s3_b, bucket):
    b_uid = uid_of(s3_b)
    s3.put_object(Bucket=bucket, Key="home/b/x", Body=b"x")
    s3.put_object(Bucket=bucket, Key="home/c/y", Body=b"y")
    # Requests come from loopback: a Deny outside 127.0.0.0/8 does not bite...
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                            "Resource": [f"arn:aws:s3:::{bucket}/*"],
                            "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}}})
    assert s3.get_object(Bucket=bucket, Key="home/b/x")["Body"].read() == b"x"
    # ...a Deny inside it does.
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": [f"arn:aws:s3:::{bucket}/*"],
                            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}})
    with expect_error("AccessDenied", 403):
        s3.get_object(Bucket=bucket, Key="home/b/x")
    # Plain HTTP is refused where TLS is required.
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": [f"arn:aws:s3:::{bucket}/*"],
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    with expect_error("AccessDenied", 403):
        s3.get_object(Bucket=bucket, Key="home/b/x")
    # Listing only under one's own prefix.
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": {"AWS": b_uid}, "Action": "s3:ListBucket",
                            "Resource": f"arn:aws:s3:::{bucket}",
                            "Condition": {"StringLike": {"s3:prefix": ["home/b/*"]}}})
    keys = [o["Key"] for o in s3_b.list_objects_v2(Bucket=bucket, Prefix="home/b/")["Contents"]]
    assert keys == ["home/b/x"]
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket)
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket, Prefix="home/c/")


def test_copy_source_bucket_policy_is_applied(s3, s3_b, bucket, bucket_factory):
    b_uid = uid_of(s3_b)
    dest = bucket_factory(client=s3_b)
    s3.put_object(Bucket=bucket, Key="open", Body=b"o")
    s3.put_object(Bucket=bucket, Key="closed", Body=b"c")
    put_policy(
        s3,
        bucket,
        {"Effect": "Allow", "Principal": {"AWS": b_uid}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Deny", "Principal": {"AWS": b_uid}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/closed"},
    )
    s3_b.copy_object(Bucket=dest, Key="copy", CopySource={"Bucket": bucket, "Key": "open"})
    assert s3_b.get_object(Bucket=dest, Key="copy")["Body"].read() == b"o"
    with expect_error("AccessDenied", 403):
        s3_b.copy_object(Bucket=dest, Key="copy2", CopySource={"Bucket": bucket, "Key": "closed"})


@meridian_only("the suite's cluster has an HTTPS listener")
def test_secure_transport_tells_https_from_http(s3, bucket):
    tls = make_client(os.environ["S3_TLS_ENDPOINT"], verify=os.environ["S3_CA_BUNDLE"])
    s3.put_object(Bucket=bucket, Key="k", Body=b"only over TLS")
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    with expect_error("AccessDenied", 403):
        s3.get_object(Bucket=bucket, Key="k")
    assert tls.get_object(Bucket=bucket, Key="k")["Body"].read() == b"only over TLS"
    s3.delete_bucket_policy(Bucket=bucket)


@meridian_only("the suite's cluster trusts X-Forwarded-For (rgw_remote_addr_param)")
def test_source_ip_is_the_forwarded_address_behind_a_proxy(s3, bucket):
    conf = tomllib.load(open(os.environ["MERIDIAN_CONF"], "rb"))
    assert conf["global"]["rgw_remote_addr_param"] == "HTTP_X_FORWARDED_FOR"
    s3.put_object(Bucket=bucket, Key="k", Body=b"k")
    put_policy(s3, bucket, {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/*",
                            "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}})
    assert raw_request("GET", obj_path(bucket, "k")).status_code == 200
    r = raw_request("GET", obj_path(bucket, "k"), headers={"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    assert r.status_code == 403, r.text
    r = raw_request("GET", obj_path(bucket, "k"), headers={"X-Forwarded-For": "198.51.100.1"})
    assert r.status_code == 200, r.text
    s3.delete_bucket_policy(Bucket=bucket)


def test_not_elements_and_the_other_condition_operators(s3, s3_b, s3_anon, bucket):
    b_uid = uid_of(s3_b)
    s3.put_object(Bucket=bucket, Key="pub/a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="priv/b", Body=b"b")
    # NotResource and NotAction: anyone may do anything but delete, outside priv/.
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": "*", "NotAction": "s3:DeleteObject",
                            "NotResource": f"arn:aws:s3:::{bucket}/priv/*"})
    assert s3_anon.get_object(Bucket=bucket, Key="pub/a")["Body"].read() == b"a"
    with expect_error("AccessDenied", 403):
        s3_anon.get_object(Bucket=bucket, Key="priv/b")
    with expect_error("AccessDenied", 403):
        s3_anon.delete_object(Bucket=bucket, Key="pub/a")
    # NotPrincipal: a Deny for everyone but b.
    put_policy(
        s3, bucket,
        {"Effect": "Allow", "Principal": {"AWS": b_uid}, "Action": ["s3:GetObject", "s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]},
        {"Effect": "Deny", "NotPrincipal": {"AWS": b_uid}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{bucket}/pub/*"},
    )
    assert s3_b.get_object(Bucket=bucket, Key="pub/a")["Body"].read() == b"a"
    with expect_error("AccessDenied", 403):
        s3.get_object(Bucket=bucket, Key="pub/a")
    # Numeric on s3:max-keys, and s3:delimiter.
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": {"AWS": b_uid}, "Action": "s3:ListBucket",
                            "Resource": f"arn:aws:s3:::{bucket}",
                            "Condition": {"NumericLessThanEquals": {"s3:max-keys": "10"},
                                          "StringEquals": {"s3:delimiter": "/"}}})
    assert s3_b.list_objects_v2(Bucket=bucket, MaxKeys=10, Delimiter="/")["CommonPrefixes"]
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket, MaxKeys=11, Delimiter="/")
    with expect_error("AccessDenied", 403):
        s3_b.list_objects_v2(Bucket=bucket, MaxKeys=10)
    # Null and IfExists: a Deny on a Referer that is not the app's...
    put_policy(
        s3, bucket,
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/pub/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/pub/*",
         "Condition": {"StringNotLikeIfExists": {"aws:Referer": "https://app.example.com/*"}}},
    )
    # ...IfExists holds when the key is absent (as AWS evaluates it), so no Referer is denied too.
    assert raw_request("GET", f"/{bucket}/pub/a", sign=False).status_code == 403
    ok = raw_request("GET", f"/{bucket}/pub/a", sign=False, headers={"Referer": "https://app.example.com/page"})
    assert ok.status_code == 200 and ok.content == b"a"
    bad = raw_request("GET", f"/{bucket}/pub/a", sign=False, headers={"Referer": "https://evil.example.net/"})
    assert bad.status_code == 403
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/pub/*",
                            "Condition": {"Null": {"aws:Referer": "false"}}})
    assert raw_request("GET", f"/{bucket}/pub/a", sign=False).status_code == 403
    assert raw_request("GET", f"/{bucket}/pub/a", sign=False, headers={"Referer": "x"}).status_code == 200
    # aws:UserAgent and aws:username.
    put_policy(s3, bucket, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{bucket}/pub/*",
                            "Condition": {"StringLike": {"aws:UserAgent": "meridian-probe/*"},
                                          "StringEquals": {"aws:username": b_uid}}})
    r = raw_request("GET", f"/{bucket}/pub/a", access_key=os.environ["S3_ACCESS_KEY2"],
                    secret_key=os.environ["S3_SECRET_KEY2"], headers={"User-Agent": "meridian-probe/1.0"})
    assert r.status_code == 200, r.text
    r = raw_request("GET", f"/{bucket}/pub/a", access_key=os.environ["S3_ACCESS_KEY2"],
                    secret_key=os.environ["S3_SECRET_KEY2"], headers={"User-Agent": "curl/8"})
    assert r.status_code == 403
    s3.delete_bucket_policy(Bucket=bucket)
