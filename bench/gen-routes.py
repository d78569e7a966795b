#!/usr/bin/env python3
"""A policy set of N routes for measuring parse + compile at scale (see bench/compile-scale.sh).

    bench/gen-routes.py N DIR [S]    writes DIR/svc-K.policy (S services, default 8), DIR/secrets/

Realistic on purpose: services in the three dialects, each with its hosts, stages (from a
header or from the path), backends, apps with secrets and quotas, a usage plan, an app-signature
or key-pair provider and a JWT-free mix of routes: lists with query parameters, reads with path
variables, deep routes with header parameters and per-route body limits, file trees with
`{rest+}`, rates per ip / per app, mocks, and routes published in one stage only whose label
repeats another stage's route (the case the rate counters number `#1`, `#2`, ...).
"""
import os
import sys

DIALECTS = ["huawei", "tencent", "jdcloud"]


def service_head(k):
    dialect = DIALECTS[k % 3]
    stages = (
        'stages release test from path'
        if dialect == "tencent"
        else 'stages RELEASE TEST from header "X-Stage" default RELEASE'
    )
    auth = (
        "auth signers keypair {\n        algorithms hmac-sha256\n    }"
        if dialect == "tencent"
        else "auth signers app-signature {\n        clock skew 15m\n    }"
    )
    if dialect == "jdcloud":
        auth = "auth signers jd-signature {\n        region \"cn-north-1\"\n        group \"g1\"\n    }"
    head = "default dialect huawei\n\n" if k == 0 else ""
    return head + f"""service svc{k} {{
    dialect {dialect}
    hosts "svc{k}.example.com" "*.svc{k}.example.net"
    protocols http https
    {stages}
    limits {{ body 1MiB }}
    trusted proxies 10.0.0.0/8
    allow ips 10.0.0.0/8 192.168.0.0/16
    deny ips 10.66.0.0/16

    backend catalog {{ targets "http://127.0.0.1:9101"; timeout 10s }}
    backend files {{ targets "http://127.0.0.1:9102" "http://127.0.0.1:9103"; retries 1 }}

    app mobile {{
        key "ak-svc{k}-mobile"
        secret file "secrets/mobile"
        quota 100000 per day
    }}
    app partner {{
        key "ak-svc{k}-partner"
        secret file "secrets/partner"
        rate 100 per second
    }}
    plan standard {{
        apps mobile partner
        rate 600 per minute per app
        quota 50000 per day on store error deny
    }}
    {auth}
"""


def route(k, i):
    res = i // 6
    kind = i % 6
    if kind == 0:
        return f"""
    route GET "/api/r{res}" {{
        optional query "page" int 1..1000
        optional query "sort" enum "price" "name" "newest"
        rate 50 per second per ip burst 20
        forward catalog path "/v2/r{res}"
    }}
"""
    if kind == 1:
        return f"""
    route GET "/api/r{res}/{{id}}" {{
        require path "id" int 1..
        forward catalog path "/v2/r{res}/{{id}}"
    }}
"""
    if kind == 2:
        # the same label again, published in the test stage only
        return f"""
    route POST "/api/r{res}/{{id}}" {{
        stages {"test" if k % 3 == 1 else "TEST"}
        auth signers apps mobile
        require header "X-Tenant" string 1..32
        rate 5 per second per app
        mock 200 json {{"id": 1, "name": "fixture"}}
    }}
"""
    if kind == 3:
        return f"""
    route POST "/api/r{res}/{{id}}" {{
        stages {"release" if k % 3 == 1 else "RELEASE"}
        auth signers apps mobile partner
        require header "X-Tenant" string 1..32
        require form "qty" int 1..99
        limits {{ body 64KiB }}
        rate 10 per second per app on store error deny
        forward catalog path "/v2/r{res}/{{id}}"
    }}
"""
    if kind == 4:
        return f"""
    route GET HEAD "/api/r{res}/{{id}}/items/{{item}}" {{
        require path "item" string 1..64
        optional query "fields" enum "all" "summary"
        cors origins "https://svc{k}.example.com" methods GET max-age 10m
        response header "Cache-Control" "no-store"
        forward catalog path "/v2/r{res}/{{id}}/items/{{item}}"
    }}
"""
    return f"""
    route GET PUT "/api/r{res}/{{id}}/files/{{path+}}" {{
        limits {{ body 64KiB }}
        forward files path "/store/r{res}/{{id}}/{{path+}}"
    }}
"""


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    services = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    os.makedirs(os.path.join(out, "secrets"), exist_ok=True)
    for name in ("mobile", "partner"):
        with open(os.path.join(out, "secrets", name), "w") as f:
            f.write(f"s3cret-{name}\n")
    for k in range(services):
        count = n // services + (1 if k < n % services else 0)
        parts = [service_head(k)]
        parts.extend(route(k, i) for i in range(count))
        parts.append("}\n")
        with open(os.path.join(out, f"svc-{k}.policy"), "w") as f:
            f.write("".join(parts))


if __name__ == "__main__":
    main()
