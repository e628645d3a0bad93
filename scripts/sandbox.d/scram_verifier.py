#!/usr/bin/env python3
"""Print the SCRAM-SHA-256 verifier of the password read from stdin (stdlib only).

The sandbox creates its Postgres roles with `PASSWORD '<verifier>'`, the same way the runbook
tool sets passwords: the plaintext never reaches the server, so it cannot show up in the
server log (which runs with log_statement = 'all'). Format as in PostgreSQL's pg_authid:
SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, all base64.
"""

import base64
import hashlib
import hmac
import os
import sys

ITERATIONS = 4096  # PostgreSQL's default scram_iterations


def verifier(password: bytes) -> str:
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (ITERATIONS, b64(salt), b64(stored_key), b64(server_key))


if __name__ == "__main__":
    pw = sys.stdin.buffer.read().rstrip(b"\r\n")
    if not pw:
        sys.exit("scram_verifier: empty password on stdin")
    print(verifier(pw))
