#!/usr/bin/env python3
"""The chat webhook of the runbook sandbox: a stand-in for a Slack incoming webhook (stdlib only).

The sandbox environment's notify target (`notify:` in runbooks/environments.yaml). As with
Slack, the URL is the credential: https://localhost:<port>/services/T0SANDBOX/B0SANDBOX/<token>,
where only the token in --token-file (written once by scripts/sandbox, mode 600) is accepted.
The URL itself is seeded in SSM by seed_ssm.py.

  POST JSON {"text": "..."} to the URL   200 "ok", and one JSON line {"at", "text",
                                         "content_type"} appended to --log (mode 600) for tests
  a wrong token, or another path         403 "invalid_token" (Slack's answer)
  a body that is not JSON                400 "invalid_payload"
  no non-empty "text" string             400 "no_text"
  another method than POST               405 "method_not_allowed"

The token is never written to the log or the access log (its place shows `<token>`).

Usage: notify_hook.py --port 8444 --cert server.pem --key server.key --token-file F --log F --pidfile F
"""

import argparse
import hmac
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/services/T0SANDBOX/B0SANDBOX/"
LOG_LOCK = threading.Lock()
ARGS = None


def token():
    # Read at each request: the file is the one truth, also for seed_ssm.py.
    with open(ARGS.token_file) as f:
        return f.read().strip()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runbook-sandbox-notify/1"

    def log_message(self, fmt, *args):
        text = fmt % args
        if PREFIX in text:  # the token is the webhook's credential: never in the log
            head, _, tail = text.partition(PREFIX)
            text = head + PREFIX + "<token>" + (" " + tail.split(" ", 1)[1] if " " in tail else "")
        sys.stderr.write("%s %s\n" % (self.address_string(), text))

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 1 << 20)) if n > 0 else b""
        path = self.path.split("?", 1)[0]
        given = path[len(PREFIX):] if path.startswith(PREFIX) else ""
        if not given or not hmac.compare_digest(given.encode(), token().encode()):
            return self.answer(403, "invalid_token")
        if self.command != "POST":
            return self.answer(405, "method_not_allowed")
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self.answer(400, "invalid_payload")
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"]:
            return self.answer(400, "no_text")
        line = json.dumps({
            "at": time.time(),
            "text": doc["text"],
            "content_type": self.headers.get("Content-Type", ""),
        }) + "\n"
        with LOG_LOCK:
            fd = os.open(ARGS.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        return self.answer(200, "ok")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None

    def finish_request(self, request, client_address):
        # The handshake in the connection's own thread: a stalled client blocks nobody else.
        request.settimeout(30)
        request = self.tls.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            return
        sys.stderr.write("%s connection error: %s\n" % (client_address[0], err))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--pidfile", required=True)
    ARGS = ap.parse_args()
    server = Server((ARGS.host, ARGS.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    server.tls = ctx
    with open(ARGS.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(ARGS.pidfile + ".tmp", ARGS.pidfile)
    sys.stderr.write("serving https://%s:%d%s<token> (pid %d)\n" % (ARGS.host, ARGS.port, PREFIX, os.getpid()))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
