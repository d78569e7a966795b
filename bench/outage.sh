#!/usr/bin/env bash
# Latency during a backend outage, with and without what issue 14 added. See bench/README.md.
#
#   bench/outage.sh
#
# Two outages, each run twice under the same steady load (wrk, CONNECTIONS connections,
# SECONDS seconds, --latency): once with a plain backend, once with a health check or a breaker.
#   partial: one of two targets hangs (accepts, never answers); the other is a tiny nginx.
#            plain: every request the round robin gives the hung target waits for the
#            backend timeout (2 s) and gets 504. health: `health http "/data" every 1s timeout
#            200ms unhealthy 1` takes the hung target out within about a second.
#   full:    the only target hangs. plain: every request waits 2 s. breaker: `count 5 in 10s`
#            opens after five timeouts and the downgrade mock answers at once.
# Prints wrk's requests, p50, p99 and how many answers were not 2xx, for each run.
#
# Knobs: OUTAGE_SECONDS=15, OUTAGE_CONNECTIONS=8, OUTAGE_PORT=18592 (the gateway),
#        OUTAGE_GOOD_PORT=18593 (nginx), OUTAGE_SICK_PORT=18594 (the hung target).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
SECONDS_=${OUTAGE_SECONDS:-15}
CONNS=${OUTAGE_CONNECTIONS:-8}
PORT=${OUTAGE_PORT:-18592}
GOOD=${OUTAGE_GOOD_PORT:-18593}
SICK=${OUTAGE_SICK_PORT:-18594}

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "outage.sh: $tool is missing (apt-get install wrk curl)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "outage.sh: nginx is missing (apt-get install nginx)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release >&2)
RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rulegate-outage.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# the well target: bench's tiny nginx answering GET /data
sed -e "s|@TMP@|$TMP|g" -e "s|@BACKEND_PORT@|$GOOD|g" "$BENCH_DIR/nginx-backend.conf" >"$TMP/backend.conf"
mkdir -p "$TMP/backend-tmp"
"$NGINX" -p "$TMP" -c "$TMP/backend.conf" -e "$TMP/backend-error.log" &
PIDS+=($!)
# the hung target: accepts every connection and never answers
python3 - "$SICK" <<'EOF' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4096)
held = []
while True:
    held.append(s.accept()[0])
EOF
PIDS+=($!)

# policy NAME TARGETS EXTRA: a service forwarding GET /data to a backend with these targets and
# these extra backend statements.
policy() {
    mkdir -p "$TMP/$1"
    cat >"$TMP/$1/outage.policy" <<EOF
service outage {
    dialect huawei
    hosts "*"
    backend b {
        targets $2
        timeout 2s
        $3
    }
    route GET "/data" {
        forward b
    }
}
EOF
}
G="\"http://127.0.0.1:$GOOD\""
S="\"http://127.0.0.1:$SICK\""
policy partial-plain "$G $S" ""
policy partial-health "$G $S" 'health http "/data" every 1s timeout 200ms unhealthy 1 healthy 1'
policy full-plain "$S" ""
policy full-breaker "$S" 'breaker {
            count 5 in 10s
            open 30s
            downgrade mock 503 json {"message": "resting"}
        }'

run() {
    "$RULEGATE" serve "$TMP/$1" --listen "127.0.0.1:$PORT" 2>"$TMP/$1.log" &
    local server=$!
    for _ in $(seq 60); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/data" --max-time 3 && break
        sleep 0.2
    done
    # a fresh gateway: its first requests meet the outage as a client would
    kill -INT "$server"; wait "$server" 2>/dev/null || true
    "$RULEGATE" serve "$TMP/$1" --listen "127.0.0.1:$PORT" 2>>"$TMP/$1.log" &
    server=$!
    sleep 0.3
    local out
    out=$(wrk -t1 -c"$CONNS" -d"${SECONDS_}s" --timeout 5s --latency "http://127.0.0.1:$PORT/data")
    kill -INT "$server"; wait "$server" 2>/dev/null || true
    local requests p50 p99 mix
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
    mix=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    printf '%-16s %8s requests  p50 %8s  p99 %8s  not 2xx: %s\n' "$1" "$requests" "$p50" "$p99" "${mix:-0}"
}


echo "outage under wrk -c$CONNS -d${SECONDS_}s (backend timeout 2s)"
for p in partial-plain partial-health full-plain full-breaker; do
    run "$p"
done
