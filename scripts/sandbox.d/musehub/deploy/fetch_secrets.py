#!/usr/bin/env python3
"""Fetch every parameter under an SSM path (decrypted) and write them as NAME=value lines.

Called by deploy/secrets.sh with the sandbox venv's python (boto3). The file is written
atomically (temp file in the same directory, mode 600, fsync, rename), so the app never reads
a half-written .env and the secrets are never world-readable, not even for a moment.
Only parameter names are printed; values never reach argv, stdout or stderr.
"""

import argparse
import os
import re
import sys
import tempfile

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    prefix = a.prefix.rstrip("/") + "/"

    ssm = boto3.client(
        "ssm", endpoint_url=a.endpoint, region_name=a.region,
        config=Config(retries={"max_attempts": 3}, connect_timeout=5, read_timeout=30))
    params = {}
    try:
        pages = list(ssm.get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=False, WithDecryption=True))
    except (BotoCoreError, ClientError) as e:
        # botocore's messages name the endpoint and the error code, never a parameter value
        sys.exit("secrets: cannot read %s from SSM at %s: %s" % (prefix, a.endpoint, e))
    for page in pages:
        for p in page["Parameters"]:
            name = p["Name"][len(prefix):]
            if not NAME_RE.match(name):
                sys.exit("secrets: parameter %r is not a valid variable name" % p["Name"])
            if "\n" in p["Value"] or "\r" in p["Value"]:
                sys.exit("secrets: parameter %s holds a line break; refusing to write it" % p["Name"])
            params[name] = p["Value"]
    if not params:
        # A deploy with an empty .env would take the app down: fail loudly instead.
        sys.exit("secrets: no parameters under %s (is the SSM endpoint %s seeded?)" % (prefix, a.endpoint))

    out = os.path.abspath(a.out)
    fd, tmp = tempfile.mkstemp(prefix=".env.", dir=os.path.dirname(out))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            for name in sorted(params):
                f.write("%s=%s\n" % (name, params[name]))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    print("secrets: wrote %d parameters from %s to %s: %s"
          % (len(params), prefix, out, ", ".join(sorted(params))))


if __name__ == "__main__":
    main()
