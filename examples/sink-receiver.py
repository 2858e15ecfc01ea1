#!/usr/bin/env python3
"""A webhook receiver for trying sinks and the chat_poster plugin: prints
each POST and checks its Standard Webhooks signature (or says whether it
carried an authorization header, never its value).

    python3 examples/sink-receiver.py [PORT] [SECRET]

PORT defaults to 9000; SECRET (whsec_...) to the one in wasmsched-sinks.toml.
Answers 204 to every POST; set FAIL=3 in the environment to answer 500 to
the first three (watch wasmsched retry).
"""

import base64
import hashlib
import hmac
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
SECRET = sys.argv[2] if len(sys.argv) > 2 else "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
failures = int(os.environ.get("FAIL", "0"))


def signed(headers, body):
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    message = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(s, expected) for s in headers.get("webhook-signature", "").split())


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        global failures
        body = self.rfile.read(int(self.headers["content-length"]))
        check = "unsigned"
        if "authorization" in self.headers:
            check = f"authorization: {self.headers['authorization'].split()[0]} ***"
        if "webhook-signature" in self.headers:
            check = "signature ok" if signed(self.headers, body) else "signature BAD"
        status = 500 if failures > 0 else 204
        failures = max(0, failures - 1)
        print(f"{self.path} {status} ({check}): {body.decode()}", flush=True)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
