#!/usr/bin/env bash
# Latency during a backend outage, with and without what issue 14 added. See bench/README.md.
#
#   bench/outage.sh
#
# Two outages, each run twice under the same steady load (CONNECTIONS keep-alive clients for
# SECONDS seconds, every latency kept): once with a plain backend, once with a health check
# or a breaker.
#   partial: one of two targets hangs (accepts, never answers); the other is a tiny nginx.
#            plain: every request the round robin gives the hung target waits for the
#            backend timeout (2 s) and gets 504. health: `health http "/data" every 1s timeout
#            200ms unhealthy 1` takes the hung target out within about a second.
#   full:    the only target hangs. plain: every request waits 2 s. breaker: `count 5 in 10s`
#            opens after five timeouts and the downgrade mock answers at once.
# Prints the requests answered, p50, p99, p99.9 and max latency, and how many were not 2xx.
#
# Knobs: OUTAGE_ONLY="full-breaker …" (runs to do), OUTAGE_SECONDS=15, OUTAGE_CONNECTIONS=8,
#        OUTAGE_PORT=18592 (the gateway), OUTAGE_GOOD_PORT=18593 (nginx),
#        OUTAGE_SICK_PORT=18594 (the hung target).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
SECONDS_=${OUTAGE_SECONDS:-15}
CONNS=${OUTAGE_CONNECTIONS:-8}
PORT=${OUTAGE_PORT:-18592}
GOOD=${OUTAGE_GOOD_PORT:-18593}
SICK=${OUTAGE_SICK_PORT:-18594}

for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "outage.sh: $tool is missing (apt-get install curl python3)" >&2; exit 1; }
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
    out=$(python3 "$TMP/load.py" "127.0.0.1:$PORT" "$CONNS" "$SECONDS_")
    kill -INT "$server"; wait "$server" 2>/dev/null || true
    printf '%-16s %s\n' "$1" "$out"
}

# The load: CONNECTIONS keep-alive clients sending GET /data back to back for SECONDS, every
# latency kept and sorted (wrk's percentiles came out impossible for answers this uneven: a p99
# of 1.8 s over 866,000 answers from 8 connections in 15 s).
cat >"$TMP/load.py" <<'EOF'
import http.client, sys, threading, time
host, port = sys.argv[1].split(":")
conns, seconds = int(sys.argv[2]), float(sys.argv[3])
lat, bad, lock = [], [0], threading.Lock()
end = time.monotonic() + seconds
def client():
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    mine, fails = [], 0
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            c.request("GET", "/data")
            r = c.getresponse()
            r.read()
            fails += r.status >= 300
        except Exception:
            c.close()
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            fails += 1
        mine.append(time.monotonic() - t)
    with lock:
        lat.extend(mine)
        bad[0] += fails
threads = [threading.Thread(target=client) for _ in range(conns)]
for t in threads:
    t.start()
for t in threads:
    t.join()
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(f"{len(lat):8d} requests  p50 {q(.5):8.2f} ms  p99 {q(.99):8.2f} ms  "
      f"p99.9 {q(.999):8.2f} ms  max {lat[-1] * 1000:8.1f} ms  not 2xx: {bad[0]}")
EOF

echo "outage under $CONNS keep-alive clients for ${SECONDS_}s (backend timeout 2s)"
for p in ${OUTAGE_ONLY:-partial-plain partial-health full-plain full-breaker}; do
    run "$p"
done
