#!/usr/bin/env python3
"""The sandbox's stand-in for Cloudflare R2: an S3 API (moto) that really checks access keys.

Run with the sandbox venv's python. moto runs in this process with authentication on from the
first request (moto's INITIAL_NO_AUTH_ACTION_COUNT=0): a request signed with an unknown key
id gets 403 InvalidAccessKeyId, one signed with a wrong secret 403 SignatureDoesNotMatch.

What Cloudflare's dashboard holds is built here, in-process, before the port opens:
  - the bucket (--bucket) with one object;
  - an R2 API token = an IAM user `r2-token-…` allowed s3:* on the bucket, with one access key
    of R2's shape (32 hex characters of key id, 64 of secret);
  - the "dashboard" = an IAM user allowed everything, whose key `r2_dashboard.py` uses to
    create and revoke tokens through the IAM API (`scripts/sandbox r2 new-token|revoke|list`).
moto keeps its state in memory only, so every change of the live keys is written to
--state (mode 600) and a restart restores the same tokens: SSM and the app's .env stay right.
Without a state file, one token is made (the one seed_ssm.py stores in SSM).
Never prints a secret: only key ids and counts.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # read by moto.settings at import
os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

from moto.iam import models as iam_models  # noqa: E402
from moto.iam.models import iam_backends  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

ACCOUNT = "123456789012"
TOKEN_PREFIX = "r2-token-"
DASHBOARD_USER = "dashboard"


def log(msg):
    sys.stderr.write("%s r2: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), msg))
    sys.stderr.flush()


# Keys of R2's shape, and restored ones: every AccessKey moto makes takes the next restored
# pair if there is one, else a fresh one.
RESTORE = []
_orig_init = iam_models.AccessKey.__init__


def _access_key_init(self, *args, **kwargs):
    _orig_init(self, *args, **kwargs)
    if RESTORE:
        self.access_key_id, self.secret_access_key, created = RESTORE.pop(0)
        if created:
            self.create_date = iam_models.datetime.fromisoformat(created)
    else:
        self.access_key_id = secrets.token_hex(16)
        self.secret_access_key = secrets.token_hex(32)


iam_models.AccessKey.__init__ = _access_key_init


def policy(bucket):
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*",
                       "Resource": ["arn:aws:s3:::%s" % bucket, "arn:aws:s3:::%s/*" % bucket]}],
    })


ADMIN_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
})


def iam():
    return iam_backends[ACCOUNT]["aws"]


def live_keys():
    """Every user with its keys: what a restart must restore."""
    out = []
    for user in list(iam().users.values()):
        for k in user.access_keys:
            out.append({"user": user.name, "id": k.access_key_id, "secret": k.secret_access_key,
                        "created": k.create_date.isoformat()})
    return out


def save(path):
    fd, tmp = tempfile.mkstemp(prefix=".r2-state.", dir=os.path.dirname(path))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": live_keys()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def persist_changes(path):
    """Write the state after every API call that changes the live keys or users."""
    cls = type(iam())
    for name in ("create_access_key", "delete_access_key", "delete_user", "create_user"):
        orig = getattr(cls, name)

        def wrapped(self, *a, _orig=orig, _name=name, **k):
            r = _orig(self, *a, **k)
            save(path)
            return r

        setattr(cls, name, wrapped)




ANONYMOUS = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
             b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")


def refuse_anonymous(app):
    """An unsigned request gets 403 AccessDenied, as from R2 (moto would answer 500)."""
    def wrapped(environ, start_response):
        signed = "HTTP_AUTHORIZATION" in environ or "X-Amz-Signature" in environ.get("QUERY_STRING", "")
        if signed or environ.get("PATH_INFO", "").startswith("/moto-api"):
            return app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "application/xml"),
                                         ("Content-Length", str(len(ANONYMOUS)))])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [ANONYMOUS]
    return wrapped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--state", required=True, help="JSON file of the live keys (mode 600)")
    ap.add_argument("--admin-file", required=True, help="where the dashboard's key pair is written")
    ap.add_argument("--pidfile", required=True)
    a = ap.parse_args()

    try:
        with open(a.state) as f:
            saved = json.load(f)["keys"]
    except FileNotFoundError:
        saved = None

    users = {}
    if saved:
        for k in saved:
            users.setdefault(k["user"], []).append((k["id"], k["secret"], k.get("created")))
    if DASHBOARD_USER not in users:
        users[DASHBOARD_USER] = [None]
    if saved is None:
        users[TOKEN_PREFIX + time.strftime("%Y%m%d%H%M%S") + "-first"] = [None]
    for name, keys in users.items():
        b = iam()
        b.create_user(region_name="us-east-1", user_name=name, path="/", tags=[])
        b.put_user_policy(name, "dashboard" if name == DASHBOARD_USER else "r2-bucket",
                          ADMIN_POLICY if name == DASHBOARD_USER else policy(a.bucket))
        for k in keys:
            if k is not None:
                RESTORE.append(k)
            b.create_access_key(name)
    s3 = s3_backends[ACCOUNT]["aws"]
    s3.create_bucket(a.bucket, "us-east-1")
    s3.put_object(a.bucket, "README.txt", b"MuseHub sandbox bucket (R2 stand-in)\n")

    save(a.state)
    persist_changes(a.state)
    admin = next(k for k in live_keys() if k["user"] == DASHBOARD_USER)
    fd = os.open(a.admin_file + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n" % (admin["id"], admin["secret"]))
    os.replace(a.admin_file + ".tmp", a.admin_file)

    srv = make_server(a.host, a.port, refuse_anonymous(DomainDispatcherApplication(create_backend_app)), threaded=True,
                      request_handler=MotoRequestHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(a.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(a.pidfile + ".tmp", a.pidfile)
    tokens = [k["id"] for k in live_keys() if k["user"] != DASHBOARD_USER]
    log("pid %d on http://%s:%d, bucket %s, %d live token(s): %s (authentication on)"
        % (os.getpid(), a.host, a.port, a.bucket, len(tokens), ", ".join(tokens)))
    srv.serve_forever()


if __name__ == "__main__":
    main()
