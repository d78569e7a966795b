"""A backend that checks rulegate's backend signatures with Huawei's own SDK.

Usage: signed_backend.py KEY SECRET NAME:PORT [NAME:PORT ...]

Listens on 127.0.0.1:PORT for each NAME. Every request is answered 200 with a JSON report:
the backend's name, the request as received (method, target, headers in order, body), whether
`apigateway_sdk_python.signer.Signer.Verify` accepts its signature, and whether it accepts
the same request with its query tampered with (it must not). Verification is done the way
Huawei's backend sample does it: parse `Authorization`, rebuild the request from the headers
`SignedHeaders` names, and recompute the signature with the SDK. A `Basic` authorization is
compared with base64(KEY:SECRET).
"""

import base64
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from apigateway_sdk_python import signer

KEY, SECRET = sys.argv[1], sys.argv[2]
AUTH = re.compile(
    r"SDK-HMAC-SHA256\s+Access=([^,]+),\s?SignedHeaders=([^,]+),\s?Signature=(\w+)"
)


def hmac_verified(method, target, headers, body):
    found = AUTH.fullmatch(headers.get("Authorization", ""))
    if not found or found.group(1) != KEY:
        return False
    signed = {}
    for name in found.group(2).split(";"):
        value = headers.get(name)
        if value is None:
            return False
        signed[name] = value
    url = "http://" + headers.get("Host", "") + target
    request = signer.HttpRequest(method, url, signed, body.decode("utf-8"))
    verifier = signer.Signer()
    verifier.Key = KEY
    verifier.Secret = SECRET
    return verifier.Verify(request, found.group(3))


def verified(method, target, headers, body):
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Basic "):
        pair = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        return authorization == "Basic " + pair
    return hmac_verified(method, target, headers, body)


def tampered(target):
    return target + ("&" if "?" in target else "?") + "tampered=1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method, target = self.command, self.path
        report = {
            "backend": self.server.name,
            "method": method,
            "target": target,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
            "verified": verified(method, target, self.headers, body),
            "tampered_verified": verified(method, tampered(target), self.headers, body),
        }
        out = json.dumps(report).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass


def serve(name, port):
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    server.name = name
    server.serve_forever()


threads = []
for spec in sys.argv[3:]:
    name, port = spec.split(":")
    t = threading.Thread(target=serve, args=(name, port), daemon=True)
    t.start()
    threads.append(t)
print("ready", flush=True)
for t in threads:
    t.join()
