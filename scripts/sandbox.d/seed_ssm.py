#!/usr/bin/env python3
"""Seed the sandbox SSM (moto) with MuseHub's parameters, each only if absent.

moto keeps its state in memory, so after a moto restart the parameters are gone while the
database, the app's .env and the running app are not. To keep the sandbox consistent, a value
that the app host's current .env holds is restored from there; otherwise:
  DB_PASSWORD           the musehub role's live password: the first candidate (.env, then the
                        state file written when the role was created) that really logs in
  WEBHOOK_SECRET_KEY    a fresh Fernet key (urlsafe base64 of 32 random bytes)
  RUNNER_TOKEN          64 hex chars
  R2_ACCESS_KEY_ID      with --r2-state: a live token of the sandbox's R2 stand-in (the .env's
  R2_SECRET_ACCESS_KEY  pair if it is live, else the newest token); without it, 32 and 64 hex
                        chars (the shape of a Cloudflare R2 key id and secret)
  DB_USER               the role the app logs in as (a String): .env's, else musehub
  /musehub-admin/sandbox/DB_PASSWORD  runbook_admin's password (the environment's admin
                        database login), outside the app's prefix so the app never reads it
  /musehub-ops/sandbox/NOTIFY_WEBHOOK_URL  with --notify-token-file: the URL of the stand-in
                        chat webhook of httpd.py (the sandbox's notify target),
                        <--notify-base>/services/T0SANDBOX/B0SANDBOX/<token>; set again when it
                        is not that URL; outside the app's prefix, so the app never reads it
With --r2-state, a pair in SSM that is not a live token (after a restart, or a run stopped
half-way) is replaced by one that is, so verifications that use the keys can pass.
Values never reach argv or output; only names and R2 key ids are printed (on stderr).
Run with the sandbox venv's python (boto3).
"""

import argparse
import base64
import json
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


def can_login(a, password, user="musehub"):
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}
    r = subprocess.run(
        [a.psql, "-X", "-A", "-t", "-q", "-w", "-h", a.pg_host, "-p", str(a.pg_port),
         "-U", user, "-d", "musehub", "-c", "select 1"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def r2_live_pair(a, dotenv):
    """The R2 token SSM should hold: the .env's pair if live, else the newest live token."""
    with open(a.r2_state) as f:
        keys = [k for k in json.load(f)["keys"] if k["user"] != "dashboard"]
    if not keys:
        sys.exit("seed_ssm: the R2 stand-in has no live token (scripts/sandbox r2 new-token makes one)")
    for k in keys:
        if k["id"] == dotenv.get("R2_ACCESS_KEY_ID") and k["secret"] == dotenv.get("R2_SECRET_ACCESS_KEY"):
            return k, ".env, a live token"
    return max(keys, key=lambda k: k.get("created") or ""), "newest live token of the R2 stand-in"


def fix_r2(ssm, a, prefix, dotenv):
    """Make SSM's R2 pair a live token when it is not one."""
    names = [prefix + "R2_ACCESS_KEY_ID", prefix + "R2_SECRET_ACCESS_KEY"]
    got = {p["Name"]: p["Value"] for p in ssm.get_parameters(Names=names, WithDecryption=True)["Parameters"]}
    with open(a.r2_state) as f:
        keys = [k for k in json.load(f)["keys"] if k["user"] != "dashboard"]
    if any(got.get(names[0]) == k["id"] and got.get(names[1]) == k["secret"] for k in keys):
        return
    k, source = r2_live_pair(a, dotenv)
    for name, value in zip(names, (k["id"], k["secret"])):
        ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    log("R2 keys in SSM were not a live token of the R2 stand-in: set to token %s (%s); "
        "redeploy the app to use them" % (k["id"], source))


def seed_notify(ssm, a, prefix):
    """The sandbox's notify target: the stand-in webhook's URL, which is its credential."""
    with open(a.notify_token_file) as f:
        token = f.read().strip()
    url = a.notify_base.rstrip("/") + "/services/T0SANDBOX/B0SANDBOX/" + token
    # Outside the app's prefix, like the admin password: deploy/secrets.sh copies every
    # parameter under the prefix into the app's .env, and the app has no use for it.
    name = "/musehub-ops/" + prefix.strip("/").split("/")[-1] + "/NOTIFY_WEBHOOK_URL"
    try:
        got = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        got = None
    if got == url:
        return
    ssm.put_parameter(Name=name, Value=url, Type="SecureString", Overwrite=True)
    log("%s %s" % ("seeded" if got is None else "reset to the stand-in webhook:", name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--prefix", required=True, help="e.g. /musehub/sandbox/")
    ap.add_argument("--env-file", required=True, help="the app host's .env (may be absent)")
    ap.add_argument("--pw-file", required=True, help="musehub's password as first created")
    ap.add_argument("--admin-pw-file", required=True, help="runbook_admin's password")
    ap.add_argument("--psql", required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    ap.add_argument("--r2-state", help="the R2 stand-in's live tokens (r2_server.py --state)")
    ap.add_argument("--notify-token-file", help="the token of httpd.py's stand-in chat webhook")
    ap.add_argument("--notify-base", help="where httpd.py serves it, e.g. https://127.0.0.1:8443")
    a = ap.parse_args()
    prefix = a.prefix.rstrip("/") + "/"

    ssm = boto3.client(
        "ssm", endpoint_url=a.endpoint, region_name=a.region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=30))

    dotenv = read_env_file(a.env_file)
    # The role the app logs in as (db-password-alternating moves it between two roles).
    user = dotenv.get("DB_USER") or "musehub"
    admin_name = "/musehub-admin/" + prefix.strip("/").split("/")[-1] + "/DB_PASSWORD"
    with open(a.admin_pw_file) as f:
        admin_pw = f.read().strip()
    for name, value, kind in [(prefix + "DB_USER", user, "String"), (admin_name, admin_pw, "SecureString")]:
        try:
            ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=False)
            log("seeded %s" % name)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ParameterAlreadyExists":
                raise

    if a.notify_token_file and a.notify_base:
        seed_notify(ssm, a, prefix)
        # an earlier version put it under the app's prefix
        try:
            ssm.delete_parameter(Name=prefix + "NOTIFY_WEBHOOK_URL")
        except ClientError:
            pass

    wanted = [prefix + n for n in NAMES]
    got = ssm.get_parameters(Names=wanted, WithDecryption=False)
    missing = [n for n in NAMES if prefix + n in set(got.get("InvalidParameters", []))]
    dotenv = read_env_file(a.env_file)
    if not missing:
        if a.r2_state:
            fix_r2(ssm, a, prefix, dotenv)
        log("all %d parameters present under %s" % (len(NAMES), prefix))
        return 0

    r2 = r2_live_pair(a, dotenv) if a.r2_state else None
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
            chosen = next((c for c in candidates if can_login(a, c[1], user)), None)
            if chosen is None:
                chosen = candidates[0]
                log("WARNING: no DB_PASSWORD candidate logs in as %s; using the one from the %s" % (user, chosen[0]))
                source = chosen[0]
            else:
                source = chosen[0] + ", logs in"
            value = chosen[1]
        elif r2 and name == "R2_ACCESS_KEY_ID":
            source, value = r2[1], r2[0]["id"]
        elif r2 and name == "R2_SECRET_ACCESS_KEY":
            source, value = r2[1], r2[0]["secret"]
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
    if a.r2_state:
        fix_r2(ssm, a, prefix, dotenv)  # one of the pair may have been there, the other not
    return 0


if __name__ == "__main__":
    sys.exit(main())
