#!/usr/bin/env python3
"""MuseHub stand-in app of the runbook sandbox (stdlib only), started by deploy/deploy.sh.

Like the real app it reads DB_USER (default musehub) and DB_PASSWORD from .env once, at start,
and needs the database:
  GET /explore  200 "explore ok" while it can log in to Postgres as DB_USER (database
                musehub) with that password; else 503 with a short reason (never a secret).
                The login is a real one (psql, password through PGPASSWORD in psql's
                environment, never argv), its result cached for about a second, or for the
                seconds written in the file DB_CHECK_CACHE_SECONDS next to app.py (read at
                start; 0 = every request logs in, for measuring a rotation's outage).
                While the fault-injection file (--fail-file, FAIL_HEALTH) exists: 503 "forced failure".
  GET /healthz  200 always (the process is up).
It also reads WEBHOOK_SECRET_KEY and RUNNER_TOKEN from .env at start, and checks them as
MuseHub's consumers do:
  POST /webhooks/github  a delivery signed GitHub's way: `X-Hub-Signature-256: sha256=<hex
                HMAC-SHA256 of the body, keyed with WEBHOOK_SECRET_KEY>`; 200 "webhook ok" when
                the signature is right, 401 otherwise (compared in constant time).
  GET|POST /api/runner/ping  the runner's call: `Authorization: Bearer <RUNNER_TOKEN>`; 200
                "runner ok" when the token is right, 401 otherwise (constant time).
  Either answers 503 while its secret is missing from .env. Neither logs a header or a body.
So after a DB password rotation /explore keeps failing until secrets.sh + deploy.sh ran, and
after a webhook key or runner token rotation the old one is refused once they ran.
"""

import argparse
import hashlib
import hmac
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CACHE_SECONDS = 1.0
MAX_BODY = 1024 * 1024  # a webhook delivery larger than this is refused (413)


class DbCheck:
    def __init__(self, args, user, password, cache_seconds):
        self.args = args
        self.user = user
        self.password = password
        self.cache_seconds = cache_seconds
        self.lock = threading.Lock()
        self.at = 0.0
        self.result = (False, "not checked")

    def login(self):
        if not self.password:
            return False, "DB_PASSWORD missing from .env"
        a = self.args
        env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "3",
               "PGAPPNAME": "musehub-standin"}
        try:
            r = subprocess.run(
                [a.psql, "-X", "-A", "-t", "-q", "-w", "-h", a.pg_host, "-p", str(a.pg_port),
                 "-U", self.user, "-d", "musehub", "-c", "select 1"],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return False, "database login timed out"
        if r.returncode == 0:
            return True, "ok"
        err = r.stderr
        if "password authentication failed" in err:
            return False, "database login failed: password rejected for role %s" % self.user
        if "Connection refused" in err or "could not connect" in err:
            return False, "database unreachable"
        return False, "database login failed"

    def get(self):
        with self.lock:  # one login at a time; concurrent requests share its result
            now = time.monotonic()
            if self.cache_seconds <= 0 or now - self.at > self.cache_seconds:
                self.result = self.login()
                self.at = time.monotonic()
                if not self.result[0]:
                    sys.stderr.write("db check: %s\n" % self.result[1])
            return self.result


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "musehub-standin/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def reply(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return self.reply(200, "ok")
        if path == "/explore":
            if os.path.exists(self.server.fail_file):
                return self.reply(503, "forced failure")
            ok, reason = self.server.db.get()
            return self.reply(200, "explore ok") if ok else self.reply(503, reason)
        if path == "/api/runner/ping":
            return self.runner()
        if path == "/webhooks/github":
            return self.reply(405, "deliveries are POSTed")
        if path == "/":
            return self.reply(200, "musehub stand-in: /explore /healthz /webhooks/github /api/runner/ping")
        return self.reply(404, "not found")

    do_HEAD = do_GET

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path == "/webhooks/github":
            return self.webhook()
        if path == "/api/runner/ping":
            return self.runner()
        self.discard_body()
        return self.reply(404, "not found")

    def discard_body(self):
        """Read the body (or close the connection when it cannot be read), so the next
        request on a kept-alive connection starts where it should."""
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def webhook(self):
        body = self.discard_body()
        if body is None:
            return self.reply(413, "body too large or without a length")
        key = self.server.webhook_key
        if not key:
            return self.reply(503, "WEBHOOK_SECRET_KEY missing from .env")
        given = self.headers.get("X-Hub-Signature-256", "")
        want = "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        # bytes, so that a header with other characters compares (unequal) instead of raising
        if hmac.compare_digest(want.encode(), given.encode("latin-1", "replace")):
            return self.reply(200, "webhook ok")
        return self.reply(401, "invalid signature" if given else "missing X-Hub-Signature-256")

    def runner(self):
        if self.command == "POST" and self.discard_body() is None:
            return self.reply(413, "body too large or without a length")
        token = self.server.runner_token
        if not token:
            return self.reply(503, "RUNNER_TOKEN missing from .env")
        auth = self.headers.get("Authorization", "")
        given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if given and hmac.compare_digest(token.encode(), given.encode("latin-1", "replace")):
            return self.reply(200, "runner ok")
        return self.reply(401, "invalid runner token" if given else "missing bearer token")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        # TLS handshake in the connection's own thread, not in accept().
        request.settimeout(30)
        request = self.tls.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        # a bare TCP connect (deploy.sh's "is it listening?" probe) ends before any TLS: not news
        if isinstance(err, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):
            return
        sys.stderr.write("connection error from %s: %s\n" % (client_address[0], err))


def read_env(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v
    return out


def cache_seconds(a):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "DB_CHECK_CACHE_SECONDS")
    try:
        with open(path) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return CACHE_SECONDS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--fail-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--psql", required=True)
    ap.add_argument("--pg-host", default="127.0.0.1")
    ap.add_argument("--pg-port", type=int, required=True)
    a = ap.parse_args()

    env = read_env(a.env_file)  # once, at start: a new .env needs a redeploy
    srv = Server((a.host, a.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    srv.tls = ctx
    srv.fail_file = a.fail_file
    srv.webhook_key = env.get("WEBHOOK_SECRET_KEY", "")
    srv.runner_token = env.get("RUNNER_TOKEN", "")
    srv.db = DbCheck(a, env.get("DB_USER") or "musehub", env.get("DB_PASSWORD", ""), cache_seconds(a))

    with open(a.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(a.pidfile + ".tmp", a.pidfile)
    sys.stderr.write("%s musehub stand-in pid %d listening on https://%s:%d (.env: %d variables: %s)\n"
                     % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), os.getpid(), a.host, a.port,
                        len(env), ", ".join(sorted(env))))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
