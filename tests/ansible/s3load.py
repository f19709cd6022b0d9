"""A steady S3 writer and its verifier, run on the deployment test's
control host (botocore, which the AWS CLI brings).

  s3load.py write  --endpoints URL[,URL] --bucket B --state DIR
      PUTs 64 KiB objects one after another, alternating gateways, until
      DIR/stop exists. Each acknowledged PUT is appended to DIR/acked
      (key and MD5) before the next; a PUT that fails on every gateway
      (after botocore's retries) goes to DIR/errors.
  s3load.py verify --endpoints URL[,URL] --bucket B --state DIR
      GETs every acknowledged key and prints a JSON report: counts,
      missing and corrupt keys, and the writer's errors.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import botocore.session
from botocore.config import Config


def clients(endpoints):
    session = botocore.session.get_session()
    cfg = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"},
        connect_timeout=2,
        read_timeout=30,
    )
    return [
        session.create_client(
            "s3",
            endpoint_url=e,
            region_name="us-east-1",
            aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            config=cfg,
        )
        for e in endpoints
    ]


def write(args, cs):
    os.makedirs(args.state, exist_ok=True)
    stop = os.path.join(args.state, "stop")
    acked = open(os.path.join(args.state, "acked"), "a", buffering=1)
    errors = open(os.path.join(args.state, "errors"), "a", buffering=1)
    try:
        cs[0].create_bucket(Bucket=args.bucket)
    except cs[0].exceptions.BucketAlreadyOwnedByYou:
        pass
    n = 0
    while not os.path.exists(stop):
        key = f"obj-{os.getpid()}-{n:06d}"
        body = os.urandom(args.size)
        last = None
        for attempt in range(len(cs) * 2):
            c = cs[(n + attempt) % len(cs)]
            try:
                c.put_object(Bucket=args.bucket, Key=key, Body=body)
                last = None
                break
            except Exception as e:  # every failure is reported below
                last = f"{c.meta.endpoint_url}: {type(e).__name__}: {e}"
                time.sleep(0.5)
        if last is None:
            acked.write(f"{key} {hashlib.md5(body).hexdigest()}\n")
        else:
            errors.write(f"{key} {last}\n")
        n += 1
        if args.interval:
            time.sleep(args.interval)


def verify(args, cs):
    path = os.path.join(args.state, "acked")
    rows = [l.split() for l in open(path)] if os.path.exists(path) else []
    missing, corrupt = [], []
    for i, (key, md5) in enumerate(rows):
        c = cs[i % len(cs)]
        try:
            body = c.get_object(Bucket=args.bucket, Key=key)["Body"].read()
        except c.exceptions.NoSuchKey:
            missing.append(key)
            continue
        if hashlib.md5(body).hexdigest() != md5:
            corrupt.append(key)
    epath = os.path.join(args.state, "errors")
    errors = open(epath).read().splitlines() if os.path.exists(epath) else []
    json.dump(
        {"acked": len(rows), "missing": missing, "corrupt": corrupt, "write_errors": errors},
        sys.stdout,
    )
    print()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["write", "verify"])
    p.add_argument("--endpoints", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--size", type=int, default=65536)
    p.add_argument("--interval", type=float, default=0.05)
    args = p.parse_args()
    cs = clients(args.endpoints.split(","))
    (write if args.mode == "write" else verify)(args, cs)


if __name__ == "__main__":
    main()
