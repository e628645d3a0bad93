#!/usr/bin/env python3
"""Seed the sandbox SSM (moto) with MuseHub's parameters, each only if absent.

moto keeps its state in memory, so after a moto restart the parameters are gone while the
database, the app's .env and the running app are not. To keep the sandbox consistent, a value
that the app host's current .env holds is restored from there; otherwise:
  DB_PASSWORD           the musehub role's live password: the first candidate (.env, then the
                        state file written when the role was created) that really logs in
  WEBHOOK_SECRET_KEY    a fresh Fernet key (urlsafe base64 of 32 random bytes)
  RUNNER_TOKEN          64 hex chars
  R2_ACCESS_KEY_ID      32 hex chars (the shape of a Cloudflare R2 key id)
  R2_SECRET_ACCESS_KEY  64 hex chars
Values never reach argv or output; only names are printed (on stderr).
Run with the sandbox venv's python (boto3).
"""

import argparse
import base64
import os
import secrets
import subprocess
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

NAMES = ["DB_PASSWORD", "WEBHOOK_SECRET_KEY", "RUNNER_TOKEN", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"]


def log(msg):
    print("[sandbox]   ssm: " + msg, file=sys.stderr)


def read_env_file(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    out[k.strip()] = v
    except FileNotFoundError:
        pass
    return out


def can_login(a, password):
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    r = subprocess.run(
        [a.psql, "-X", "-A", "-t", "-q", "-w", "-h", a.pg_host, "-p", str(a.pg_port),
         "-U", "musehub", "-d", "musehub", "-c", "select 1"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--prefix", required=True, help="e.g. /musehub/sandbox/")
    ap.add_argument("--env-file", required=True, help="the app host's .env (may be absent)")
    ap.add_argument("--pw-file", required=True, help="musehub's password as first created")
    ap.add_argument("--psql", required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    a = ap.parse_args()
    prefix = a.prefix.rstrip("/") + "/"

    ssm = boto3.client(
        "ssm", endpoint_url=a.endpoint, region_name=a.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30))

    wanted = [prefix + n for n in NAMES]
    got = ssm.get_parameters(Names=wanted, WithDecryption=False)
    missing = [n for n in NAMES if prefix + n in set(got.get("InvalidParameters", []))]
    if not missing:
        log("all %d parameters present under %s" % (len(NAMES), prefix))
        return 0

    dotenv = read_env_file(a.env_file)
    for name in missing:
        source = "fresh"
        if name == "DB_PASSWORD":
            candidates = []
            if dotenv.get(name):
                candidates.append((".env", dotenv[name]))
            try:
                with open(a.pw_file) as f:
                    candidates.append(("state file", f.read().strip()))
            except FileNotFoundError:
                pass
            if not candidates:
                sys.exit("seed_ssm: no candidate for DB_PASSWORD (neither %s nor %s)" % (a.env_file, a.pw_file))
            chosen = next((c for c in candidates if can_login(a, c[1])), None)
            if chosen is None:
                chosen = candidates[0]
                log("WARNING: no DB_PASSWORD candidate logs in as musehub; using the one from the %s" % chosen[0])
                source = chosen[0]
            else:
                source = chosen[0] + ", logs in"
            value = chosen[1]
        elif dotenv.get(name):
            source, value = ".env", dotenv[name]
        elif name == "WEBHOOK_SECRET_KEY":
            value = base64.urlsafe_b64encode(os.urandom(32)).decode()
        elif name == "RUNNER_TOKEN":
            value = secrets.token_hex(32)
        elif name == "R2_ACCESS_KEY_ID":
            value = secrets.token_hex(16)
        else:
            value = secrets.token_hex(32)
        try:
            ssm.put_parameter(Name=prefix + name, Value=value, Type="SecureString", Overwrite=False)
            log("seeded %s%s (%s)" % (prefix, name, source))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ParameterAlreadyExists":
                raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
