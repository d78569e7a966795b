#!/usr/bin/env bash
# Instructions per request: rulegate serve under callgrind, driven by wrk. See bench/README.md.
#
#   bench/callgrind.sh [PATH]        PATH on bench/policy/bench.policy: /health (default), /data,
#                                    /data/guarded (a health check and a breaker, idle) and
#                                    /data/plain (its control: the same route, a plain backend),
#                                    /data/mapped/7?tenant=acme (five backend parameters), or
#                                    /data/signed/7?tenant=acme (the same, signed), or
#                                    /gw/7?tenant=acme (the gateway request: every /gw/ path is
#                                    sent signed as app loadgen, see below)
#
# Unlike req/s, the count does not depend on what else the machine runs, so it shows what a
# change to the request path costs while builds run beside it. Start-up (compiling the policy,
# loading the system's TLS roots) is left out: the counters are zeroed once the gateway answers.
# What remains still moves by a few percent with the event loop's batching (how many requests
# each wake-up finds), so compare runs of the same length on the same machine.
#
# Knobs: CALLGRIND_SECONDS=10 (wrk -d), CALLGRIND_CONNECTIONS=8 (wrk -c),
#        CALLGRIND_PORT=18492, CALLGRIND_BACKEND_PORT=18493 (the /data backend, a tiny nginx),
#        CALLGRIND_OUT=target/callgrind.out (kept for callgrind_annotate),
#        CALLGRIND_SERVE_ARGS='' (more `serve` options, split on spaces: e.g. the span export
#        with the /data backend as its sink, "--otlp http://127.0.0.1:18493/data"),
#        CALLGRIND_PROTO=http (how the load arrives; see below), CALLGRIND_TLS_PORT=18494,
#        CALLGRIND_H2LOAD_ARGS='-c 4 -m 16' (h2load's connections and streams per connection),
#        RULEGATE=PATH (measure this binary instead of building one: two builds side by side).
#
# CALLGRIND_PROTO, each a figure per answered request:
#   http       wrk over plain keep-alive connections (the default, as before)
#   https      wrk over TLS keep-alive connections (`serve --tls-listen`, an ECDSA P-256
#              certificate made by openssl for the run)
#   h2         h2load, HTTP/2 over TLS (ALPN h2), CALLGRIND_H2LOAD_ARGS, -D CALLGRIND_SECONDS
#   handshake  wrk over TLS with `Connection: close`: a new connection, so a TLS handshake, per
#              request (wrk's OpenSSL offers to resume the session it had: see profile-17.md)
#
# The gateway request (/gw/...): bench/apig-sign.py signs it once (SDK-HMAC-SHA256, app
# loadgen, BENCH_APP_SECRET, the date now: the route allows 15 minutes of skew) and the load
# generator replays those headers. Over HTTP/1 `host` is signed too; over HTTP/2 the host is
# `:authority`, so only `x-sdk-date` is. Any answer that is not 2xx is reported: a refused
# signature would otherwise be measured as a cheap request.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
URL_PATH=${1:-/health}
SECONDS_=${CALLGRIND_SECONDS:-10}
CONNS=${CALLGRIND_CONNECTIONS:-8}
PORT=${CALLGRIND_PORT:-18492}
BACKEND_PORT=${CALLGRIND_BACKEND_PORT:-18493}
OUT=${CALLGRIND_OUT:-$ROOT/target/callgrind.out}
PROTO=${CALLGRIND_PROTO:-http}
TLS_PORT=${CALLGRIND_TLS_PORT:-18494}
APP_KEY=ak-bench-loadgen
APP_SECRET=bench-app-secret

TOOLS=(valgrind callgrind_control callgrind_annotate wrk curl)
case "$PROTO" in
    http) ;;
    https | handshake) TOOLS+=(openssl) ;;
    h2) TOOLS+=(openssl h2load) ;;
    *) echo "callgrind.sh: CALLGRIND_PROTO is http, https, h2 or handshake, not $PROTO" >&2; exit 1 ;;
esac
[[ "$URL_PATH" == /gw/* ]] && TOOLS+=(python3)
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing (apt-get install valgrind wrk curl openssl nghttp2-client python3)" >&2; exit 1; }
done
if [[ -z "${RULEGATE:-}" ]]; then
    (cd "$ROOT" && cargo build --release >&2)
    RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rulegate-callgrind.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

mkdir -p "$TMP/policy"
sed "s/__BACKEND_PORT__/$BACKEND_PORT/" "$BENCH_DIR/policy/bench.policy" >"$TMP/policy/bench.policy"
if [[ "$URL_PATH" == /data* || "$URL_PATH" == /gw/* ]]; then
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "callgrind.sh: $URL_PATH needs nginx as its backend" >&2; exit 1; }
    sed -e "s|@TMP@|$TMP|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" "$BENCH_DIR/nginx-backend.conf" >"$TMP/backend.conf"
    mkdir -p "$TMP/backend-tmp"
    "$(command -v nginx || echo /usr/sbin/nginx)" -p "$TMP" -c "$TMP/backend.conf" -e "$TMP/backend-error.log" &
    PIDS+=($!)
fi

# Where the load goes, and what the readiness check asks with.
TLS_ARGS=()
case "$PROTO" in
    http) URL="http://127.0.0.1:$PORT$URL_PATH" CURL=(--http1.1) HOST="127.0.0.1:$PORT" ;;
    https | handshake) URL="https://127.0.0.1:$TLS_PORT$URL_PATH" CURL=(-k --http1.1) HOST="127.0.0.1:$TLS_PORT" ;;
    h2) URL="https://127.0.0.1:$TLS_PORT$URL_PATH" CURL=(-k --http2) HOST="" ;;
esac
if [[ "$PROTO" != http ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
    TLS_ARGS=(--tls-listen "127.0.0.1:$TLS_PORT" --cert "$TMP/cert.pem" --key "$TMP/key.pem")
fi
# The headers every request carries: a signature for /gw/, `Connection: close` for handshakes.
HEADERS=()
if [[ "$URL_PATH" == /gw/* ]]; then
    while IFS= read -r line; do HEADERS+=("$line"); done \
        < <(python3 "$BENCH_DIR/apig-sign.py" "$APP_KEY" "$APP_SECRET" GET "$URL_PATH" ${HOST:+"$HOST"})
fi
[[ "$PROTO" == handshake ]] && HEADERS+=("Connection: close")
HEADER_ARGS=()
for h in ${HEADERS[@]+"${HEADERS[@]}"}; do HEADER_ARGS+=(-H "$h"); done

BENCH_SIGNING_SECRET=bench-signing-secret BENCH_APP_SECRET=$APP_SECRET \
    valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$RULEGATE" serve "$TMP/policy" --listen "127.0.0.1:$PORT" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} \
    ${CALLGRIND_SERVE_ARGS:-} 2>"$TMP/serve.log" &
SERVER=$!
PIDS+=($SERVER)
ready() { curl -fs "${CURL[@]}" ${HEADER_ARGS[@]+"${HEADER_ARGS[@]}"} "$URL" >/dev/null 2>&1; }
for _ in $(seq 120); do
    ready && break
    sleep 0.5
done
ready || { echo "callgrind.sh: the gateway does not answer $URL" >&2; cat "$TMP/serve.log" >&2; exit 1; }

callgrind_control -z "$SERVER" >/dev/null
if [[ "$PROTO" == h2 ]]; then
    # shellcheck disable=SC2086 # the knob is h2load's options, split on spaces
    h2load ${CALLGRIND_H2LOAD_ARGS:--c 4 -m 16} -D "$SECONDS_" ${HEADER_ARGS[@]+"${HEADER_ARGS[@]}"} "$URL" >"$TMP/load.txt"
    REQUESTS=$(awk '/^requests:/ { print $6 }' "$TMP/load.txt")
    REFUSED=$(awk '/^status codes:/ { n = $5 + $7 + $9; print n }' "$TMP/load.txt")
else
    wrk -t1 -c"$CONNS" -d"${SECONDS_}s" ${HEADER_ARGS[@]+"${HEADER_ARGS[@]}"} "$URL" >"$TMP/load.txt"
    REQUESTS=$(awk '/requests in/ { print $1 }' "$TMP/load.txt")
    REFUSED=$(awk '/Non-2xx/ { print $NF }' "$TMP/load.txt")
fi
kill -INT "$SERVER"
wait "$SERVER" 2>/dev/null || true
TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
LABEL=$URL_PATH
[[ "$PROTO" != http ]] && LABEL="$URL_PATH ($PROTO)"
echo "$LABEL: $REQUESTS requests, $TOTAL instructions, $((TOTAL / REQUESTS)) per request"
if [[ "${REFUSED:-0}" != 0 ]]; then
    echo "callgrind.sh: $REFUSED answers were not 2xx (3xx, 4xx or 5xx):" >&2
    cat "$TMP/load.txt" >&2
fi
echo "profile: callgrind_annotate --inclusive=yes $OUT | less"
