#!/usr/bin/env python3
"""MuseHub stand-in app of the runbook sandbox (stdlib only), started by deploy/deploy.sh.

Like the real app it reads DB_PASSWORD from .env once, at start, and needs the database:
  GET /explore  200 "explore ok" while it can log in to Postgres as role musehub (database
                musehub) with that password; else 503 with a short reason (never a secret).
                The login is a real one (psql, password through PGPASSWORD in psql's
                environment, never argv), its result cached for about a second.
                While the fault-injection file (--fail-file, FAIL_HEALTH) exists: 503 "forced failure".
  GET /healthz  200 always (the process is up).
So after a DB password rotation /explore keeps failing until secrets.sh + deploy.sh ran.
"""

import argparse
import os
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CACHE_SECONDS = 1.0


class DbCheck:
    def __init__(self, args, password):
        self.args = args
        self.password = password
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
                 "-U", "musehub", "-d", "musehub", "-c", "select 1"],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            return False, "database login timed out"
        if r.returncode == 0:
            return True, "ok"
        err = r.stderr
        if "password authentication failed" in err:
            return False, "database login failed: password rejected for role musehub"
        if "Connection refused" in err or "could not connect" in err:
            return False, "database unreachable"
        return False, "database login failed"

    def get(self):
        with self.lock:  # one login at a time; concurrent requests share its result
            now = time.monotonic()
            if now - self.at > CACHE_SECONDS:
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
        if path == "/":
            return self.reply(200, "musehub stand-in: /explore /healthz")
        return self.reply(404, "not found")

    do_HEAD = do_GET


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
    srv.db = DbCheck(a, env.get("DB_PASSWORD", ""))

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
