#!/usr/bin/env python3
"""The sandbox's "Cloudflare dashboard" for its R2 stand-in (r2_server.py), over moto's IAM API.

  new-token        make an R2 API token (an IAM user allowed s3:* on the bucket, and its
                   access key) and print it once, as the dashboard shows it:
                       R2_ACCESS_KEY_ID=<32 hex>
                       R2_SECRET_ACCESS_KEY=<64 hex>
  revoke KEY_ID    delete that token: its key is refused from then on (403 InvalidAccessKeyId)
  list             the key ids of the live tokens, one a line (no secret)

Run with the sandbox venv's python (boto3); the dashboard's own key pair is read from
--admin-file (written by r2_server.py, mode 600). Only new-token prints a secret, on stdout.
"""

import argparse
import json
import re
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

TOKEN_PREFIX = "r2-token-"


def policy(bucket):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*",
                       "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket]}],
    })


def client(a):
    creds = {}
    with open(a.admin_file) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            creds[k] = v
    return boto3.client(
        "iam", endpoint_url=a.endpoint, region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"], aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30))


def tokens(iam):
    """(user, key id) of every live token."""
    out = []
    for page in iam.get_paginator("list_users").paginate():
        for u in page["Users"]:
            if not u["UserName"].startswith(TOKEN_PREFIX):
                continue
            for k in iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"]:
                out.append((u["UserName"], k["AccessKeyId"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--admin-file", required=True)
    ap.add_argument("verb", choices=["new-token", "revoke", "list"])
    ap.add_argument("key_id", nargs="?")
    a = ap.parse_args()
    try:
        iam = client(a)
        if a.verb == "new-token":
            user = TOKEN_PREFIX + time.strftime("%Y%m%d%H%M%S") + "-" + str(time.time_ns() % 1000000)
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="r2-bucket", PolicyDocument=policy(a.bucket))
            k = iam.create_access_key(UserName=user)["AccessKey"]
            print("R2_ACCESS_KEY_ID=%s\nR2_SECRET_ACCESS_KEY=%s" % (k["AccessKeyId"], k["SecretAccessKey"]))
            print("r2: token %s made for bucket %s; its secret is shown only this once"
                  % (k["AccessKeyId"], a.bucket), file=sys.stderr)
        elif a.verb == "revoke":
            if not a.key_id or not re.fullmatch(r"[A-Za-z0-9]{1,128}", a.key_id):
                sys.exit("r2: revoke needs the KEY_ID of a token (see: scripts/sandbox r2 list)")
            found = [u for u, k in tokens(iam) if k == a.key_id]
            if not found:
                sys.exit("r2: no live token has key id %s (see: scripts/sandbox r2 list)" % a.key_id)
            for user in found:
                iam.delete_access_key(UserName=user, AccessKeyId=a.key_id)
                iam.delete_user_policy(UserName=user, PolicyName="r2-bucket")
                iam.delete_user(UserName=user)
            print("r2: token %s revoked" % a.key_id, file=sys.stderr)
        else:
            for _, k in tokens(iam):
                print(k)
    except (BotoCoreError, ClientError, OSError, KeyError) as e:
        # botocore's messages name the endpoint and the error code, never a secret
        sys.exit("r2: the dashboard call failed: %s" % e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
