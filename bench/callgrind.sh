#!/usr/bin/env bash
# Instructions per request: rulegate serve under callgrind, driven by wrk. See bench/README.md.
#
#   bench/callgrind.sh [PATH]        PATH on bench/policy/bench.policy: /health (default), /data,
#                                    /data/guarded (a health check and a breaker, idle) and
#                                    /data/plain (its control: the same route, a plain backend),
#                                    /data/mapped/7?tenant=acme (five backend parameters), or
#                                    /data/signed/7?tenant=acme (the same, signed)
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
#        with the /data backend as its sink, "--otlp http://127.0.0.1:18493/data").
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
URL_PATH=${1:-/health}
SECONDS_=${CALLGRIND_SECONDS:-10}
CONNS=${CALLGRIND_CONNECTIONS:-8}
PORT=${CALLGRIND_PORT:-18492}
BACKEND_PORT=${CALLGRIND_BACKEND_PORT:-18493}
OUT=${CALLGRIND_OUT:-$ROOT/target/callgrind.out}

for tool in valgrind callgrind_control callgrind_annotate wrk curl; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is missing (apt-get install valgrind wrk curl)" >&2; exit 1; }
done
(cd "$ROOT" && cargo build --release >&2)
RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate

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
if [[ "$URL_PATH" == /data* ]]; then
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "callgrind.sh: /data needs nginx as its backend" >&2; exit 1; }
    sed -e "s|@TMP@|$TMP|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" "$BENCH_DIR/nginx-backend.conf" >"$TMP/backend.conf"
    mkdir -p "$TMP/backend-tmp"
    "$(command -v nginx || echo /usr/sbin/nginx)" -p "$TMP" -c "$TMP/backend.conf" -e "$TMP/backend-error.log" &
    PIDS+=($!)
fi

BENCH_SIGNING_SECRET=bench-signing-secret valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$RULEGATE" serve "$TMP/policy" --listen "127.0.0.1:$PORT" ${CALLGRIND_SERVE_ARGS:-} 2>"$TMP/serve.log" &
SERVER=$!
PIDS+=($SERVER)
for _ in $(seq 120); do
    curl -fs "http://127.0.0.1:$PORT$URL_PATH" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -fs "http://127.0.0.1:$PORT$URL_PATH" >/dev/null || { echo "callgrind.sh: the gateway does not answer $URL_PATH" >&2; cat "$TMP/serve.log" >&2; exit 1; }

callgrind_control -z "$SERVER" >/dev/null
REQUESTS=$(wrk -t1 -c"$CONNS" -d"${SECONDS_}s" "http://127.0.0.1:$PORT$URL_PATH" | awk '/requests in/ { print $1 }')
kill -INT "$SERVER"
wait "$SERVER" 2>/dev/null || true
TOTAL=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
echo "$URL_PATH: $REQUESTS requests, $TOTAL instructions, $((TOTAL / REQUESTS)) per request"
echo "profile: callgrind_annotate --inclusive=yes $OUT | less"
