#!/usr/bin/env python3
"""Sign one request with Huawei APIG's SDK-HMAC-SHA256, for a load generator to replay.

Usage: apig-sign.py KEY SECRET METHOD PATH?QUERY [HOST]

Prints the headers to send, one `Name: value` a line: `X-Sdk-Date` (now) and `Authorization`.
With HOST, `host` and `x-sdk-date` are signed (HTTP/1: wrk sends `Host: HOST`); without it,
only `x-sdk-date` (HTTP/2 carries the host as `:authority`, which no signed header names).
The body is empty. The algorithm is `apigateway_sdk_python.signer.Signer.Sign`'s (the SDK
tests/interop/interop.py signs with), in the standard library only, so bench/callgrind.sh
needs no SDK: the canonical request is the method, the path's segments decoded and encoded
again with a `/` at the end, the query sorted, the signed headers, their names and the body's
hash; the string to sign is the scheme, the date and that request's SHA-256.
"""

import hashlib
import hmac
import sys
import time
from urllib.parse import quote, unquote


def encode(s):
    return quote(s, safe="~")


def canonical_request(method, path, query, headers, signed):
    segments = [encode(unquote(seg)) for seg in path.split("/")]
    uri = "/".join(segments)
    if not uri.endswith("/"):
        uri += "/"
    pairs = []
    for pair in filter(None, query.split("&")):
        k, _, v = pair.partition("=")
        pairs.append((encode(unquote(k)), encode(unquote(v))))
    query = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    lines = "".join(f"{n}:{headers[n].strip()}\n" for n in signed)
    body = hashlib.sha256(b"").hexdigest()
    return f"{method}\n{uri}\n{query}\n{lines}\n{';'.join(signed)}\n{body}"


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    key, secret, method, target = sys.argv[1:5]
    host = sys.argv[5] if len(sys.argv) == 6 else None
    path, _, query = target.partition("?")
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    headers = {"x-sdk-date": date}
    if host:
        headers["host"] = host
    signed = sorted(headers)
    canonical = canonical_request(method.upper(), path, query, headers, signed)
    to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    print(f"X-Sdk-Date: {date}")
    print(
        f"Authorization: SDK-HMAC-SHA256 Access={key}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )


if __name__ == "__main__":
    main()
