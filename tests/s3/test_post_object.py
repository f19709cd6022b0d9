"""Browser-form uploads (POST Object): a policy document signed with SigV4
(boto3's generate_presigned_post), its conditions (exact values,
starts-with, content-length-range) and expiry enforced, the
success_action_status / success_action_redirect answers, and the refusals
for a bad signature or a policy that does not allow the form."""

import base64
import datetime
import hashlib
import hmac
import json

import requests

from conftest import ACCESS_KEY, ENDPOINT, SECRET_KEY, expect_error, meridian_only


def post(s3, bucket, key, body, fields=None, conditions=None, expires=300, tamper=None):
    p = s3.generate_presigned_post(bucket, key, Fields=fields or {}, Conditions=conditions or [],
                                   ExpiresIn=expires)
    form = dict(p["fields"])
    if tamper:
        tamper(form)
    return requests.post(p["url"], data=form, files={"file": ("f.txt", body)}, allow_redirects=False,
                         timeout=30)


def error_code(r):
    return r.text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in r.text else r.text[:200]


def test_form_upload_stores_the_object_with_its_fields(s3, bucket):
    r = post(s3, bucket, "forms/a.txt", b"hello form",
             fields={"Content-Type": "text/plain", "x-amz-meta-origin": "browser", "success_action_status": "201"},
             conditions=[["starts-with", "$Content-Type", "text/"], {"x-amz-meta-origin": "browser"},
                         {"success_action_status": "201"}, ["content-length-range", 1, 1000]])
    assert r.status_code == 201, r.text
    assert "<Key>forms/a.txt</Key>" in r.text and f"<Bucket>{bucket}</Bucket>" in r.text
    got = s3.get_object(Bucket=bucket, Key="forms/a.txt")
    assert got["Body"].read() == b"hello form"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"origin": "browser"}
    r = post(s3, bucket, "forms/s200", b"ok", fields={"success_action_status": "200"},
             conditions=[{"success_action_status": "200"}])
    assert r.status_code == 200 and r.content == b"", r.text
    # The default answer is 204 No Content.
    r = post(s3, bucket, "forms/b.txt", b"b")
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="forms/b.txt")["Body"].read() == b"b"


def test_success_redirect_names_the_object(s3, bucket):
    url = "https://example.com/done"
    r = post(s3, bucket, "forms/r.txt", b"r", fields={"success_action_redirect": url},
             conditions=[{"success_action_redirect": url}])
    assert r.status_code == 303, r.text
    loc = r.headers["Location"]
    assert loc.startswith(url + "?") and f"bucket={bucket}" in loc and "key=forms%2Fr.txt" in loc


@meridian_only("moto does not check POST policies")
def test_forms_the_policy_does_not_allow_are_refused(s3, bucket):
    # Outside the content-length-range.
    r = post(s3, bucket, "forms/big", b"x" * 2000, conditions=[["content-length-range", 1, 1000]])
    assert r.status_code == 400 and error_code(r) == "EntityTooLarge", r.text
    r = post(s3, bucket, "forms/small", b"x", conditions=[["content-length-range", 10, 1000]])
    assert r.status_code == 400 and error_code(r) == "EntityTooSmall", r.text
    # An exact condition the form breaks.
    r = post(s3, bucket, "forms/meta", b"x", fields={"x-amz-meta-origin": "browser"},
             conditions=[{"x-amz-meta-origin": "server"}])
    assert r.status_code == 403 and error_code(r) == "AccessDenied", r.text
    # Past the gateway's in-memory bound for form files (64 MiB).
    r = post(s3, bucket, "forms/huge", b"x" * (64 * 1024 * 1024 + 1),
             conditions=[["content-length-range", 0, 10 ** 10]])
    assert r.status_code == 400 and error_code(r) == "EntityTooLarge", r.text[:300]
    # A field the policy pins to another value.
    r = post(s3, bucket, "forms/ct", b"x", fields={"Content-Type": "text/plain"},
             conditions=[["starts-with", "$Content-Type", "image/"]])
    assert r.status_code == 403 and error_code(r) == "AccessDenied", r.text
    # A key outside the policy's prefix.
    r = post(s3, bucket, "forms/ok", b"x", conditions=[["starts-with", "$key", "forms/"]],
             tamper=lambda f: f.update(key="elsewhere/x"))
    assert r.status_code == 403, r.text
    # An expired policy.
    r = post(s3, bucket, "forms/late", b"x", expires=-10)
    assert r.status_code == 403 and error_code(r) == "AccessDenied", r.text
    # A policy changed after signing.
    def forge(f):
        doc = json.loads(base64.b64decode(f["policy"]))
        doc["conditions"].append(["content-length-range", 0, 10 ** 9])
        f["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
    r = post(s3, bucket, "forms/forged", b"x", tamper=forge)
    assert r.status_code == 403 and error_code(r) == "SignatureDoesNotMatch", r.text
    # The file name variable is refused rather than stored literally.
    r = post(s3, bucket, "forms/${filename}", b"x", conditions=[["starts-with", "$key", "forms/"]])
    assert r.status_code == 501, r.text
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [], keys
    with expect_error({"NoSuchKey", "404"}, 404):
        s3.head_object(Bucket=bucket, Key="elsewhere/x")


@meridian_only("moto does not check SigV2 form signatures")
def test_sigv2_form_upload(s3, bucket):
    expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5))
    doc = {"expiration": expires.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
           "conditions": [{"bucket": bucket}, ["starts-with", "$key", "v2/"]]}
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    sig = base64.b64encode(hmac.new(SECRET_KEY.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    form = {"key": "v2/doc", "AWSAccessKeyId": ACCESS_KEY, "policy": policy, "signature": sig}
    r = requests.post(f"{ENDPOINT}/{bucket}", data=form, files={"file": ("doc", b"v2 form")}, timeout=30)
    assert r.status_code == 204, r.text
    assert s3.get_object(Bucket=bucket, Key="v2/doc")["Body"].read() == b"v2 form"
    form["signature"] = base64.b64encode(b"x" * 20).decode()
    form["key"] = "v2/forged"
    r = requests.post(f"{ENDPOINT}/{bucket}", data=form, files={"file": ("doc", b"no")}, timeout=30)
    assert r.status_code == 403 and error_code(r) == "SignatureDoesNotMatch", r.text
