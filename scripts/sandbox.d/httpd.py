#!/usr/bin/env python3
"""Test HTTP and HTTPS server of the runbook sandbox (stdlib only).

One process serves plain HTTP and HTTPS on 127.0.0.1, so `http.check` can be exercised
against real sockets, real TLS (a certificate signed by the sandbox CA) and real failures.

Endpoints (any method; HEAD answers without a body):
  /ok                  200 "ok"
  /status/<code>       that status code (100-599)
  /flaky/<key>/<n>     503 for the first n requests with that key, then 200 "recovered";
                       the count lives in memory, per key (use a fresh key per test)
  /echo                200, JSON {"method", "path", "headers", "body"} of the request
  /slow/<ms>           sleeps <ms> milliseconds (at most 60000), then 200 "slow ok"
  /reset               forgets every /flaky counter
  anything else        404 "not found"

Usage: httpd.py --http-port 8080 --https-port 8443 --cert server.pem --key server.key --pidfile F
"""

import argparse
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAKY = {}
FLAKY_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with an exact Content-Length on every answer, so keep-alive clients work.
    protocol_version = "HTTP/1.1"
    server_version = "runbook-sandbox-httpd/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s %s\n" % (self.server.scheme, self.address_string(), fmt % args))

    def send_text(self, code, text, content_type="text/plain; charset=utf-8"):
        body = text.encode() if isinstance(text, str) else text
        self.send_response(code)
        if code in (204, 304) or code < 200:
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def route(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        parts = [p for p in path.split("/") if p]
        if path == "/":
            return self.send_text(200, "runbook sandbox httpd: /ok /status/<code> /flaky/<key>/<n> /echo /login /slow/<ms>\n")
        if parts == ["ok"]:
            return self.send_text(200, "ok")
        if len(parts) == 2 and parts[0] == "status" and parts[1].isdigit() and 100 <= int(parts[1]) <= 599:
            code = int(parts[1])
            return self.send_text(code, "status %d" % code)
        if len(parts) == 3 and parts[0] == "flaky" and parts[2].isdigit():
            key, n = parts[1], int(parts[2])
            with FLAKY_LOCK:
                seen = FLAKY.get(key, 0) + 1
                FLAKY[key] = seen
            if seen <= n:
                return self.send_text(503, "unavailable (attempt %d of %d)" % (seen, n))
            return self.send_text(200, "recovered")
        if parts == ["echo"]:
            headers = {}
            for name, value in self.headers.items():
                headers[name] = headers[name] + ", " + value if name in headers else value
            doc = {
                "method": self.command,
                "path": self.path,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
            }
            return self.send_text(200, json.dumps(doc, indent=2) + "\n", "application/json")
        if parts == ["login"]:
            # A login that hands back a session no client could know: made from the request's
            # body (reversed), in headers no word list names.
            session = body.decode("utf-8", "replace")[::-1]
            self.send_response(200)
            self.send_header("X-Sess-Id", session)
            self.send_header("Location", "/home#access_token=" + session.encode().hex())
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", "2")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(b"ok")
            return
        if len(parts) == 2 and parts[0] == "slow" and parts[1].isdigit():
            time.sleep(min(int(parts[1]), 60000) / 1000.0)
            return self.send_text(200, "slow ok")
        if parts == ["reset"]:
            with FLAKY_LOCK:
                FLAKY.clear()
            return self.send_text(200, "reset")
        return self.send_text(404, "not found")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    scheme = "http"
    tls = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the per-connection thread, not in accept():
        # a client that stalls or speaks plain HTTP to the TLS port cannot block the others.
        request.settimeout(30)
        if self.tls is not None:
            request = self.tls.wrap_socket(request, server_side=True)
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):
            return  # a port probe or a client that hung up: not news
        sys.stderr.write("%s %s connection error: %s\n" % (self.scheme, client_address[0], err))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pidfile", required=True)
    a = ap.parse_args()

    plain = Server((a.host, a.http_port), Handler)
    secure = Server((a.host, a.https_port), Handler)
    secure.scheme = "https"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    secure.tls = ctx

    # Written only once both ports are bound: the pidfile means "serving".
    with open(a.pidfile + ".tmp", "w") as f:
        f.write("%d\n" % os.getpid())
    os.replace(a.pidfile + ".tmp", a.pidfile)
    sys.stderr.write("serving http://%s:%d and https://%s:%d (pid %d)\n"
                     % (a.host, a.http_port, a.host, a.https_port, os.getpid()))
    sys.stderr.flush()
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    secure.serve_forever()


if __name__ == "__main__":
    main()
