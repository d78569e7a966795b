#!/usr/bin/env bash
# Load comparison: rulegate against its peers (nginx, HAProxy, Caddy) on the same routes (a mock
# and a forward), over plain HTTP/1.1, HTTPS, TLS handshakes, HTTP/2 over TLS, a signed gateway
# request, and latency at fixed rates. See bench/README.md. One command: bench/run.sh
#
# Knobs (environment):
#   BENCH_WORKLOADS="plain https handshake h2 gateway latency"   the workloads to run, in this order:
#       plain      HTTP/1.1 keep-alive, GET /health (mock) and GET /data (forward), wrk; in every
#                  BENCH_LOGS configuration (the others run in the default configuration only)
#       https      the same over TLS 1.3 (HTTP/1.1 keep-alive), wrk
#       handshake  a new TLS connection per request (full handshakes: bench/loadgen's handshakes), /health
#       h2         HTTP/2 over TLS, BENCH_H2_CLIENTS connections × BENCH_H2_STREAMS streams, h2load
#       gateway    rulegate's GET /gw/7?tenant=acme (app signature, checks, rate, forward) against
#                  nginx's plain proxy_pass of /data (no peer verifies those signatures)
#       latency    p50/p99/p99.9 at BENCH_LATENCY_LOADS % of each server's measured peak at a
#                  fixed rate, timed from when each request was due (coordinated omission):
#                  bench/loadgen, over plain HTTP and over TLS
#   BENCH_PEERS="nginx haproxy caddy"   the peers rulegate is measured against
#   BENCH_DURATION=10s      duration of each measurement
#   BENCH_ROUNDS=3          measurements of each server on each path, the order of the servers rotated
#                           every round; the report gives medians and checks the bars on the median ratio
#   BENCH_WARMUP=3s         warm-up before each measurement (0 to skip)
#   BENCH_CONNECTIONS=64    wrk -c (plain, https, gateway), loadgen -c (latency)
#   BENCH_THREADS=1         wrk -t
#   BENCH_H2_CLIENTS=16 BENCH_H2_STREAMS=32      h2load -c and -m for the h2 workload
#   BENCH_HANDSHAKE_CONNECTIONS=32   connections opening at once in the handshake workload
#   BENCH_LATENCY_LOADS="50 80"                  % of each server's peak
#   BENCH_LATENCY_TARGETS="plain:/health plain:/data https:/health"   workload:path whose peak is the base
#   BENCH_LATENCY_ROUNDS=1  measurements of each server at each load
#   BENCH_LOGS="on off"     access logging configurations to run, in order ("on" = the default one)
#   BENCH_MAX_LOAD=1.0      wait until the 1-minute load average is below this before measuring ...
#   BENCH_WAIT=1200         ... for at most this many seconds (0: do not wait), then measure anyway
#   BENCH_IDLE_MAX=15       before each measurement, wait until other processes use at most this % of a core ...
#   BENCH_IDLE_WAIT=120     ... for at most this many seconds, then measure anyway
#   BENCH_SERVER_CPU=0      the core of the server under test
#   BENCH_CLIENT_CPU=1      the core of the load generator and the backend
#   BENCH_FLOOR=1           also measure bench/floor (rulegate's HTTP stack with nothing of rulegate in
#                           it), in the logging-off configuration, with the plain workload, and beside
#                           the servers in the latency workload's plain targets; 0 to skip
#   BENCH_BACKEND_PORT=18480 BENCH_NGINX_PORT=18481 BENCH_RULEGATE_PORT=18482 BENCH_FLOOR_PORT=18483
#   BENCH_HAPROXY_PORT=18484 BENCH_CADDY_PORT=18485
#   BENCH_TLS_PORT_OFFSET=10    each server's TLS port is its port + this (nginx 18491, rulegate 18492, …)
#   BENCH_KEEP=1            keep the temp dir (logs, client outputs, generated configs) and say where
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

WORKLOADS=${BENCH_WORKLOADS:-plain https handshake h2 gateway latency}
PEERS=${BENCH_PEERS:-nginx haproxy caddy}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-3s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
H2_CLIENTS=${BENCH_H2_CLIENTS:-16}
H2_STREAMS=${BENCH_H2_STREAMS:-32}
HS_CONNS=${BENCH_HANDSHAKE_CONNECTIONS:-32}
LATENCY_LOADS=${BENCH_LATENCY_LOADS:-50 80}
LATENCY_TARGETS=${BENCH_LATENCY_TARGETS:-plain:/health plain:/data https:/health}
LATENCY_ROUNDS=${BENCH_LATENCY_ROUNDS:-1}
LOG_MODES=${BENCH_LOGS:-on off}
MAX_LOAD=${BENCH_MAX_LOAD:-1.0}
WAIT=${BENCH_WAIT:-1200}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
BACKEND_PORT=${BENCH_BACKEND_PORT:-18480}
NGINX_PORT=${BENCH_NGINX_PORT:-18481}
RULEGATE_PORT=${BENCH_RULEGATE_PORT:-18482}
FLOOR=${BENCH_FLOOR:-1}
FLOOR_PORT=${BENCH_FLOOR_PORT:-18483}
HAPROXY_PORT=${BENCH_HAPROXY_PORT:-18484}
CADDY_PORT=${BENCH_CADDY_PORT:-18485}
TLS_OFFSET=${BENCH_TLS_PORT_OFFSET:-10}
NGINX_TLS_PORT=$((NGINX_PORT + TLS_OFFSET))
RULEGATE_TLS_PORT=$((RULEGATE_PORT + TLS_OFFSET))
HAPROXY_TLS_PORT=$((HAPROXY_PORT + TLS_OFFSET))
CADDY_TLS_PORT=$((CADDY_PORT + TLS_OFFSET))
# bench.policy's gateway route: app loadgen, key ak-bench-loadgen, its secret from the environment
GW_KEY=ak-bench-loadgen
GW_PATH=/gw/7
GW_QUERY=tenant=acme
export BENCH_APP_SECRET=${BENCH_APP_SECRET:-bench-app-secret}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
has() { [[ " $1 " == *" $2 "* ]]; } # has "list" word

for w in $WORKLOADS; do
    has "plain https handshake h2 gateway latency" "$w" || die "BENCH_WORKLOADS: unknown workload '$w'"
done
for p in $PEERS; do
    has "nginx haproxy caddy" "$p" || die "BENCH_PEERS: unknown peer '$p'"
done
for m in $LOG_MODES; do
    has "on off" "$m" || die "BENCH_LOGS: '$m' is neither on nor off"
done
if has "$WORKLOADS" gateway && ! has "$PEERS" nginx; then
    die "the gateway workload is measured against nginx: add nginx to BENCH_PEERS"
fi
# The workloads other than plain run in one logging configuration: the default one (on) if asked for.
MAIN_MODE=on
has "$LOG_MODES" on || MAIN_MODE=${LOG_MODES%% *}

# ---------------------------------------------------------------- 1. tools and the build

need_install=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
command -v openssl >/dev/null 2>&1 || need_install+=(openssl)
if has "$PEERS" haproxy; then command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_install+=(haproxy); fi
if has "$PEERS" caddy; then command -v caddy >/dev/null 2>&1 || need_install+=(caddy); fi
if has "$WORKLOADS" h2; then command -v h2load >/dev/null 2>&1 || need_install+=(nghttp2-client); fi
if has "$WORKLOADS" latency || has "$WORKLOADS" handshake; then command -v jq >/dev/null 2>&1 || need_install+=(jq); fi
if [ ${#need_install[@]} -gt 0 ]; then
    say "bench: installing ${need_install[*]} (Debian packages)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        die "need root (or sudo) to install ${need_install[*]}"
    fi
    "${SUDO[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${need_install[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
command -v curl >/dev/null || die "curl is missing"
[ "$(nproc --all)" -gt "$(( SERVER_CPU > CLIENT_CPU ? SERVER_CPU : CLIENT_CPU ))" ] \
    || die "need cores $SERVER_CPU and $CLIENT_CPU; this machine has $(nproc --all)"

say "bench: cargo build --release"
(cd "$ROOT" && cargo build --release)
RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate
[ -x "$RULEGATE" ] || die "no binary at $RULEGATE"
# the floor takes part in the plain workload and in the latency workload's plain targets
LATENCY_FLOOR=
if has "$WORKLOADS" latency && [[ " $LATENCY_TARGETS" == *" plain:"* ]]; then LATENCY_FLOOR=1; fi
if [ "$FLOOR" = 1 ] && { has "$WORKLOADS" plain || [ -n "$LATENCY_FLOOR" ]; }; then
    say "bench: cargo build --release (bench/floor)"
    FLOOR_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/bench-floor
    CARGO_TARGET_DIR=$FLOOR_TARGET cargo build --release --manifest-path "$BENCH_DIR/floor/Cargo.toml"
    FLOOR_BIN=$FLOOR_TARGET/release/floor
else
    FLOOR=0
fi
if has "$WORKLOADS" latency || has "$WORKLOADS" handshake; then
    say "bench: cargo build --release (bench/loadgen)"
    LOADGEN_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/bench-loadgen
    CARGO_TARGET_DIR=$LOADGEN_TARGET cargo build --release --manifest-path "$BENCH_DIR/loadgen/Cargo.toml"
    LOADGEN=$LOADGEN_TARGET/release/loadgen
    HANDSHAKES=$LOADGEN_TARGET/release/handshakes
fi

for port in "$BACKEND_PORT" "$NGINX_PORT" "$RULEGATE_PORT" "$FLOOR_PORT" "$HAPROXY_PORT" "$CADDY_PORT" \
    "$NGINX_TLS_PORT" "$RULEGATE_TLS_PORT" "$HAPROXY_TLS_PORT" "$CADDY_TLS_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is taken; set BENCH_*_PORT"
    fi
done

# ---------------------------------------------------------------- 2. temp dir and cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rulegate-bench.XXXXXX")
PIDS=()

stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

render() { # template output [log mode]: fill in the @…@ placeholders; drop `#LOG_ON` lines when off
    local drop='^$^'
    [ "${3:-on}" = off ] && drop='#LOG_ON'
    sed -e "s|@TMP@|$TMP|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@NGINX_TLS_PORT@|$NGINX_TLS_PORT|g" \
        -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" -e "s|@HAPROXY_TLS_PORT@|$HAPROXY_TLS_PORT|g" \
        -e "s|@CADDY_PORT@|$CADDY_PORT|g" -e "s|@CADDY_TLS_PORT@|$CADDY_TLS_PORT|g" \
        -e "s|@ACCESS_LOG@|${ACCESS_LOG:-off}|g" -e "\\|$drop|d" "$1" >"$2"
}

# TLS: one ECDSA P-256 certificate for every server (for 127.0.0.1 and localhost), and the
# clients' OpenSSL configuration (wrk, h2load, curl and openssl s_client read OPENSSL_CONF):
# TLS 1.3 with TLS_AES_128_GCM_SHA256 first and X25519 then P-256, the order every server is given,
# so that a server that follows the client's order (rulegate's rustls does) makes the same choice
# as those that follow their own. The servers get an empty one: no system OpenSSL configuration is
# read by anything the bench starts.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>"$TMP/tls/openssl.log" || die "openssl req: $(cat "$TMP/tls/openssl.log")"
cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/bundle.pem" # HAProxy's crt: both in one file
cat >"$TMP/tls/client.cnf" <<'EOF'
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_client
[bench_client]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
Groups = X25519:P-256
EOF
: >"$TMP/tls/server.cnf"
CLIENT_SSL=(env "OPENSSL_CONF=$TMP/tls/client.cnf")
SERVER_SSL=(env "OPENSSL_CONF=$TMP/tls/server.cnf")

# curl URL EXPECTED-BODY [VERSION [curl args…]]: one request must answer 200 with exactly this body
# (and over this HTTP version: 1.1 or 2); anything else stops the run.
check() {
    local url=$1 want=$2 version=${3:-1.1} got
    shift 3 || shift $#
    got=$("${CLIENT_SSL[@]}" curl -sS --max-time 5 --cacert "$TMP/tls/cert.pem" -o "$TMP/check.body" \
        -w '%{http_code} %{http_version}' "$@" "$url" 2>"$TMP/check.err") || got="curl failed: $(cat "$TMP/check.err")"
    if [ "$got" != "200 $version" ] || [ "$(cat "$TMP/check.body")" != "$want" ]; then
        die "CHECK FAILED: $url answered '$got' with '$(head -c 300 "$TMP/check.body" 2>/dev/null)'; expected '200 $version' with '$want'"
    fi
}

wait_ready() { # url expected-body
    local i
    for i in $(seq 100); do
        curl -fsS --max-time 1 -o /dev/null "$1" 2>/dev/null && break
        sleep 0.1
    done
    check "$1" "$2"
}

# What TLS a server negotiates with the bench's clients: "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519 h2";
# anything but TLS 1.3 with TLS_AES_128_GCM_SHA256 stops the run.
tls_check() { # port
    local out
    out=$("${CLIENT_SSL[@]}" openssl s_client -connect "127.0.0.1:$1" -servername localhost -alpn h2,http/1.1 \
        </dev/null 2>/dev/null | awk '
        /^New, TLS/ { sub(",", "", $2); p = $2; c = $5 }
        /^Server Temp Key:/ { sub(",", "", $4); g = $4 }
        /^ALPN protocol:/ { a = $3 }
        END { print p, c, g, a }')
    [[ "$out" == "TLSv1.3 TLS_AES_128_GCM_SHA256 "* ]] || die "CHECK FAILED: 127.0.0.1:$1 negotiates '$out', not TLS 1.3 with TLS_AES_128_GCM_SHA256"
    echo "$out"
}

start_nginx() { # name config cpu → pid of the master (workers inherit the affinity)
    mkdir -p "$TMP/$1-tmp"
    "${SERVER_SSL[@]}" "$NGINX" -t -q -p "$TMP" -c "$2" -e "$TMP/$1-error.log" || die "nginx rejects $2"
    "${SERVER_SSL[@]}" taskset -c "$3" "$NGINX" -p "$TMP" -c "$2" -e "$TMP/$1-error.log" &
    PIDS+=($!)
    LAST_PID=$!
}

start_rulegate() { # log mode
    local env=(BENCH_SIGNING_SECRET=bench-signing-secret) # bench.policy's signing backend
    [ "$1" = off ] && env+=(RULEGATE_LOG=warn)
    env "${env[@]}" taskset -c "$SERVER_CPU" "$RULEGATE" serve "$TMP/policy" \
        --listen "127.0.0.1:$RULEGATE_PORT" \
        --tls-listen "127.0.0.1:$RULEGATE_TLS_PORT" --cert "$TMP/tls/cert.pem" --key "$TMP/tls/key.pem" \
        --drain 1s 2>"$TMP/rulegate-$1.log" &
    PIDS+=($!)
    LAST_PID=$!
}

start_haproxy() { # log mode
    render "$BENCH_DIR/haproxy.cfg" "$TMP/haproxy-$1.cfg" "$1"
    "${SERVER_SSL[@]}" "$HAPROXY" -c -q -f "$TMP/haproxy-$1.cfg" || die "haproxy rejects $TMP/haproxy-$1.cfg"
    # the access lines go to stdout
    "${SERVER_SSL[@]}" taskset -c "$SERVER_CPU" "$HAPROXY" -db -f "$TMP/haproxy-$1.cfg" \
        >"$TMP/haproxy-access-$1.log" 2>"$TMP/haproxy-$1.log" &
    PIDS+=($!)
    LAST_PID=$!
}

start_caddy() { # log mode
    render "$BENCH_DIR/Caddyfile" "$TMP/Caddyfile-$1" "$1"
    mkdir -p "$TMP/caddy-home"
    env HOME="$TMP/caddy-home" XDG_DATA_HOME="$TMP/caddy-home" XDG_CONFIG_HOME="$TMP/caddy-home" GOMAXPROCS=1 \
        taskset -c "$SERVER_CPU" caddy run --adapter caddyfile --config "$TMP/Caddyfile-$1" 2>"$TMP/caddy-$1.log" &
    PIDS+=($!)
    LAST_PID=$!
}

# ---------------------------------------------------------------- 3. measuring

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load1() { cut -d' ' -f1 /proc/loadavg; }

wait_quiet() {
    local waited=0
    while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
        if [ "$waited" -ge "$WAIT" ]; then
            say "bench: WARNING: load average still $(loadavg) after ${waited}s; measuring anyway"
            QUIET="no (load $(loadavg) after waiting ${waited}s)"
            return
        fi
        [ $((waited % 60)) -eq 0 ] && say "bench: load average $(loadavg) ≥ $MAX_LOAD; waiting (at most ${WAIT}s)"
        sleep 10
        waited=$((waited + 10))
    done
    QUIET="yes (load $(loadavg) after waiting ${waited}s)"
}

cputime_of() { # pids… → "user system" clock ticks, summed over the processes and their threads
    local pid
    for pid in "$@"; do sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || true; done |
        awk '{ u += $12; s += $13 } END { print u + 0, s + 0 }'
}
ticks_of() { cputime_of "$@" | awk '{ print $1 + $2 }'; }
children_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'; } # waited-for children (the clients)
cpu_line() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 }' /proc/stat; }
tasks_busy() { awk '$1 ~ /^cpu[0-9]/ { t += $2 + $3 + $4 } END { print t }' /proc/stat; }
family() { { echo "$1"; pgrep -P "$1" || true; } | paste -sd' '; } # an nginx master and its workers
now() { date +%s.%N; }
# The kernel's count of connections dropped because a listen queue was full (all sockets): a SYN
# dropped there is sent again by the client a second later.
listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c + 0 }' /proc/net/netstat; }

# Load average counts this script's own servers for a minute after each measurement, so before
# each one check instead that the two cores are idle apart from us: at most IDLE_MAX % of one core
# busy over a second (BENCH_IDLE_MAX, default 15), waiting up to BENCH_IDLE_WAIT seconds (default 120).
IDLE_MAX=${BENCH_IDLE_MAX:-15}
IDLE_WAIT=${BENCH_IDLE_WAIT:-120}
wait_idle() {
    local waited=0 a b hz busy
    hz=$(getconf CLK_TCK)
    while :; do
        a=$(tasks_busy); sleep 1; b=$(tasks_busy)
        busy=$(( (b - a) * 100 / hz ))
        [ "$busy" -le "$IDLE_MAX" ] && return
        if [ "$waited" -ge "$IDLE_WAIT" ]; then
            say "bench: WARNING: other processes still use ${busy}% of a core after ${waited}s; measuring anyway"
            return
        fi
        [ $((waited % 30)) -eq 0 ] && say "bench: other processes use ${busy}% of a core; waiting"
        sleep 4
        waited=$((waited + 5))
    done
}

to_ms() { # wrk latency "812.00us" / "2.31ms" / "1.02s" → milliseconds; "-" stays
    awk -v v="$1" 'BEGIN {
        if (v == "" || v == "-") { print "-"; exit }
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

RESULTS=$TMP/results.tsv
# The median of a space-separated list of numbers, for the report's awk programs.
AWK_MEDIAN='
        function median(list,    v, n, i, j, t) {
            n = split(list, v, " ")
            if (n == 0) return 0
            for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
'
: >"$RESULTS"

# The load generators. Each writes its output to $out and sets rps, p50, p99, p999 (ms, or "-"),
# requests (answers counted), non2xx and errors ("none" or what went wrong).
run_wrk() { # url [wrk args…]
    local url=$1; shift
    if [ "$WARMUP" != 0 ]; then
        "${CLIENT_SSL[@]}" taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$@" "$url" >/dev/null
    fi
    mark_start
    "${CLIENT_SSL[@]}" taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$out"
    mark_end
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    p999=-
    requests=$(awk '/requests in/ { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    errors=$(awk -F': ' '/Socket errors:/ { gsub(" ", "_", $2); print $2 }' "$out")
}

parse_h2load() { # file → "rps succeeded non2xx failed errored timeout" (the sums over the file's runs)
    awk '/^finished in/ { rps += $4 }
        /^requests:/ { ok += $8; failed += $10; errored += $12; timeout += $14 }
        /^status codes:/ { bad += $5 + $7 + $9 }
        END { print rps + 0, ok + 0, bad + 0, failed + 0, errored + 0, timeout + 0 }' "$1"
}

set_h2load_results() { # "rps ok non2xx failed errored timeout"
    local f
    read -r rps requests non2xx f1 f2 f3 <<<"$1"
    errors=none
    for f in "failed $f1" "errored $f2" "timeout $f3"; do
        [ "${f#* }" = 0 ] || errors=$([ "$errors" = none ] && echo "${f// /_}" || echo "${errors},${f// /_}")
    done
    p50=- p99=- p999=-
}

run_h2() { # url: HTTP/2 over TLS, H2_CLIENTS connections × H2_STREAMS concurrent streams
    local warm=()
    [ "$WARMUP" != 0 ] && warm=(--warm-up-time "$WARMUP")
    local try rc
    for try in 1 2; do
        mark_start
        rc=0
        "${CLIENT_SSL[@]}" taskset -c "$CLIENT_CPU" h2load -t1 -c"$H2_CLIENTS" -m"$H2_STREAMS" -D "$DURATION" \
            "${warm[@]}" "$1" >"$out" 2>&1 || rc=$?
        mark_end
        grep -q '^finished in' "$out" && break
        say "bench: h2load exited with $rc without finishing ($(tail -3 "$out" | tr '\n' ' ')); $([ "$try" = 1 ] && echo "once more" || echo "giving up")"
    done
    grep -q '^finished in' "$out" || die "h2load did not finish twice on $1"
    set_h2load_results "$(parse_h2load "$out")"
}

# measured_twice NAME WHAT COMMAND…: COMMAND between mark_start and mark_end, its output in $out
# (stderr in $out.err); once more if it fails, then the run stops.
measured_twice() {
    local name=$1 what=$2 try rc
    shift 2
    for try in 1 2; do
        mark_start
        rc=0
        "$@" >"$out" 2>"$out.err" || rc=$?
        mark_end
        [ "$rc" = 0 ] && return
        say "bench: $name exited with $rc ($(head -c 500 "$out.err")); $([ "$try" = 1 ] && echo "once more" || echo "giving up")"
    done
    die "$name failed twice on $what"
}

# Full TLS handshakes: bench/loadgen's `handshakes`, HS_CONNS connections opening at once, each a
# fresh TLS 1.3 client (no session to resume) sending one request with `Connection: close`, so
# every connection is a full handshake (X25519 and the server's ECDSA P-256 signature, checked).
# Why not h2load: with OpenSSL 3.0 it spends ~500 µs of its core on a handshake, more than any
# server here, and every server tied at its rate (see bench/README.md, 01:05 on 2026-12-06).
run_handshake() { # url
    if [ "$WARMUP" != 0 ]; then
        taskset -c "$CLIENT_CPU" "$HANDSHAKES" --cert "$TMP/tls/cert.pem" --connections "$HS_CONNS" \
            --duration "$WARMUP" "$1" >"$out.warmup" 2>&1 || true
    fi
    measured_twice handshakes "$1" taskset -c "$CLIENT_CPU" "$HANDSHAKES" --cert "$TMP/tls/cert.pem" \
        --connections "$HS_CONNS" --duration "$DURATION" "$1"
    # every connection must have been a full TLS 1.3 handshake with the bench's preferences
    jq -e '.negotiated == "TLSv1_3 TLS13_AES_128_GCM_SHA256 X25519 Full"' "$out" >/dev/null \
        || die "handshakes negotiated something else on $1: $(cat "$out")"
    read -r rps requests non2xx errors < <(jq -r '[.per_second, .handshakes, .non2xx,
        (if .errors == 0 then "none" else "\(.errors)_errors" end)] | map(tostring) | join(" ")' "$out")
    p50=- p99=- p999=-
}

# A fixed rate, latency counted from when each request was due: bench/loadgen, over plain HTTP
# or TLS (rustls, the bench's certificate pinned). It holds 110k req/s on one core over plain
# HTTP and ~85k over TLS, where oha (used over HTTPS until 2026-12-06) topped out near 60k.
run_fixed_rate() { # url rate
    local url=$1 rate=$2 tls=()
    [[ "$url" == https:* ]] && tls=(--cert "$TMP/tls/cert.pem")
    measured_twice loadgen "$url at $rate/s" taskset -c "$CLIENT_CPU" "$LOADGEN" --rate "$rate" \
        --warmup "$WARMUP" --duration "$DURATION" --connections "$CONNS" "${tls[@]}" "$url"
    read -r rps p50 p99 p999 requests non2xx errors < <(jq -r '[.achieved_rps, .p50_ms, .p99_ms,
        .p999_ms, .completed, .non2xx, (if .errors == 0 then "none" else "\(.errors)_errors" end)]
        | map(tostring) | join(" ")' "$out")
}

mark_start() {
    load0=$(loadavg)
    s0=$(cputime_of "${SERVER_PIDS[@]}"); b0=$(ticks_of "${BACKEND_PIDS[@]}")
    w0=$(children_ticks); c0=$(cpu_line "$SERVER_CPU"); d0=$(cpu_line "$CLIENT_CPU"); o0=$(listen_overflows); t0=$(now)
}
mark_end() {
    t1=$(now); s1=$(cputime_of "${SERVER_PIDS[@]}"); b1=$(ticks_of "${BACKEND_PIDS[@]}")
    w1=$(children_ticks); c1=$(cpu_line "$SERVER_CPU"); d1=$(cpu_line "$CLIENT_CPU"); o1=$(listen_overflows)
}

# measure TOOL WORKLOAD MODE SERVER PATH URL [tool args…]
# (globals: ROUND; SERVER_PIDS, the processes whose CPU time is the server's)
# Appends one line to $TMP/last.tsv:
#  1 mode  2 server  3 path  4 req/s  5 p99 (ms)  6 p99 (ms)  7 non-2xx  8 errors  9 server%  10 backend%
#  11 client%  12 core0%  13 core1%  14 others%  15 load before  16 load after  17 answers
#  18 µs user/req  19 µs system/req  20 round  21 workload  22 p50 (ms)  23 p99.9 (ms)  24 target rate
#  25 connections dropped by a full listen queue
measure() {
    local tool=$1 workload=$2 mode=$3 server=$4 path=$5 url=$6; shift 6
    local out="$TMP/$tool-$workload-$mode-$server-${path//[^a-z0-9]/}-${RATE:-max}-$ROUND.txt"
    local hz load0 t0 t1 s0 s1 b0 b1 w0 w1 c0 c1 d0 d1 o0 o1
    local rps p50 p99 p999 requests non2xx errors
    wait_idle
    hz=$(getconf CLK_TCK)
    case $tool in
        wrk) run_wrk "$url" "$@" ;;
        h2) run_h2 "$url" ;;
        handshake) run_handshake "$url" ;;
        fixed) run_fixed_rate "$url" "$RATE" ;;
    esac
    if [ -z "$rps" ] || [ -z "$requests" ]; then die "could not parse the client's output in $out: $(head -c 2000 "$out")"; fi
    [ "${requests%.*}" -gt 0 ] || die "no answer at all in $out: $(head -c 2000 "$out")"
    # CPU over the measurement, in % of one core: the server, the backend, the client, each core's
    # busy time, and what processes other than ours took on the two cores (another job's load,
    # kernel threads); and the server's CPU time per request, user and system, in µs.
    awk -v mode="$mode" -v server="$server" -v path="$path" -v rps="$rps" -v p99="$p99" \
        -v non2xx="${non2xx:-0}" -v errors="${errors:-none}" \
        -v dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v hz="$hz" -v requests="$requests" \
        -v s0="$s0" -v s1="$s1" -v b="$((b1 - b0))" -v w="$((w1 - w0))" \
        -v c0="$c0" -v c1="$c1" -v d0="$d0" -v d1="$d1" -v load0="$load0" -v load1="$(loadavg)" -v round="$ROUND" \
        -v workload="$workload" -v p50="$p50" -v p999="$p999" -v rate="${RATE:--}" -v overflows="$((o1 - o0))" '
        BEGIN {
            split(s0, a); split(s1, z); su = z[1] - a[1]; ss = z[2] - a[2]; s = su + ss
            split(c0, a); split(c1, z); core0 = (z[1] - a[1]); task0 = (z[2] - a[2])
            split(d0, a); split(d1, z); core1 = (z[1] - a[1]); task1 = (z[2] - a[2])
            k = 100 / (dt * hz)
            other = (task0 + task1 - s - b - w) * k; if (other < 0) other = 0
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t%d\t%s\t%s\t%s\t%s\t%d\n", \
                mode, server, path, rps, p99, p99, non2xx, errors, s * k, b * k, w * k, \
                core0 * k, core1 * k, other, load0, load1, requests, su / hz * 1e6 / requests, ss / hz * 1e6 / requests, round, \
                workload, p50, p999, rate, overflows
        }' >"$TMP/last.tsv"
    local warn=
    if [ "${non2xx:-0}" != 0 ] || [ "${errors:-none}" != none ]; then
        warn=" — WARNING: ${non2xx:-0} answers not 2xx, errors: ${errors:-none} (flagged ! in the report)"
    fi
    if [ "$((o1 - o0))" -gt 0 ]; then
        warn+=" — WARNING: $((o1 - o0)) connections dropped by a full listen queue (flagged o in the report)"
    fi
    say "bench:   $(printf '%-9s round %s %-8s %-8s' "$workload" "$ROUND" "$server" "$path")${RATE:+ at $RATE/s}" \
        "$(printf '%.0f' "$rps") req/s, p99 ${p99}ms, others $(cut -f14 "$TMP/last.tsv")% of a core$warn"
}

# A measurement during which other processes took more than OTHERS_MAX % of a core is repeated,
# at most RETRIES times; the last one is kept (and flagged in the report if still disturbed).
OTHERS_MAX=${BENCH_OTHERS_MAX:-10}
RETRIES=${BENCH_RETRIES:-2}
measure_clean() {
    local try
    for try in $(seq 0 "$RETRIES"); do
        measure "$@"
        [ "$(cut -f14 "$TMP/last.tsv")" -le "$OTHERS_MAX" ] && break
        [ "$try" -lt "$RETRIES" ] && say "bench:   disturbed by other processes; measuring again"
    done
    cat "$TMP/last.tsv" >>"$RESULTS"
}

# ---------------------------------------------------------------- 4. the servers

declare -A PID_OF PORT_OF TLS_PORT_OF TLS_OF
PORT_OF=([rulegate]=$RULEGATE_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT [caddy]=$CADDY_PORT [floor]=$FLOOR_PORT)
TLS_PORT_OF=([rulegate]=$RULEGATE_TLS_PORT [nginx]=$NGINX_TLS_PORT [haproxy]=$HAPROXY_TLS_PORT [caddy]=$CADDY_TLS_PORT)
read -r -a SERVERS <<<"$PEERS rulegate"

start_servers() { # log mode
    local mode=$1 s
    case $mode in
        on) ACCESS_LOG="$TMP/nginx-access.log rulegate_like buffer=32k flush=100ms" ;;  # buffered, as rulegate's is
        off) ACCESS_LOG=off ;;
    esac
    for s in "${SERVERS[@]}"; do
        case $s in
            nginx)
                render "$BENCH_DIR/nginx-gateway.conf" "$TMP/nginx-gateway-$mode.conf" "$mode"
                start_nginx nginx "$TMP/nginx-gateway-$mode.conf" "$SERVER_CPU" ;;
            haproxy) start_haproxy "$mode" ;;
            caddy) start_caddy "$mode" ;;
            rulegate) start_rulegate "$mode" ;;
        esac
        PID_OF[$s]=$LAST_PID
    done
    for s in "${SERVERS[@]}"; do
        wait_ready "http://127.0.0.1:${PORT_OF[$s]}/health" '{"status":"ok"}'
        wait_ready "http://127.0.0.1:${PORT_OF[$s]}/data" '{"ok":true}'
        TLS_OF[$s]=$(tls_check "${TLS_PORT_OF[$s]}")
    done
    RULEGATE_PID=${PID_OF[rulegate]}
    RULEGATE_THREADS=$(find "/proc/$RULEGATE_PID/task" -mindepth 1 -maxdepth 1 | wc -l)
    RULEGATE_WORKERS=$( (grep -lx tokio-rt-worker /proc/"$RULEGATE_PID"/task/*/comm 2>/dev/null || true) | wc -l)  # 0: a current-thread runtime
    local line="bench: logging $mode: rulegate $RULEGATE_THREADS threads, $RULEGATE_WORKERS tokio worker(s)"
    has "$PEERS" nginx && line+="; nginx $(pgrep -P "${PID_OF[nginx]}" | wc -l) worker(s)"
    has "$PEERS" haproxy && line+="; haproxy $(find "/proc/${PID_OF[haproxy]}/task" -mindepth 1 -maxdepth 1 | wc -l) thread(s)"
    has "$PEERS" caddy && line+="; caddy $(find "/proc/${PID_OF[caddy]}/task" -mindepth 1 -maxdepth 1 | wc -l) thread(s) (GOMAXPROCS=1)"
    say "$line"
    for s in "${SERVERS[@]}"; do say "bench:   $s TLS: ${TLS_OF[$s]}"; done
}

stop_servers() {
    local s
    for s in "${SERVERS[@]}"; do stop_pid "${PID_OF[$s]}"; forget_pid "${PID_OF[$s]}"; done
}

server_pids() { # server → SERVER_PIDS
    if [ "$1" = nginx ]; then read -r -a SERVER_PIDS <<<"$(family "${PID_OF[nginx]}")"; else SERVER_PIDS=("${PID_OF[$1]}"); fi
}

rotated() { # round [server…] → those servers (by default every server) in this round's order
    local round=$1 n i; shift
    local -a list=("${@:-${SERVERS[@]}}")
    n=${#list[@]}
    for i in $(seq 0 $((n - 1))); do printf '%s ' "${list[$(( (i + round - 1) % n ))]}"; done
}

base_url() { # workload server → scheme://127.0.0.1:port
    case $1 in
        plain|gateway) echo "http://127.0.0.1:${PORT_OF[$2]}" ;;
        *) echo "https://127.0.0.1:${TLS_PORT_OF[$2]}" ;;
    esac
}

# Before each workload: every server gives 200 and the expected body over the workload's protocol.
check_workload() { # workload
    local s
    for s in "${SERVERS[@]}"; do
        case $1 in
            plain)
                check "http://127.0.0.1:${PORT_OF[$s]}/health" '{"status":"ok"}'
                check "http://127.0.0.1:${PORT_OF[$s]}/data" '{"ok":true}' ;;
            https)
                check "https://127.0.0.1:${TLS_PORT_OF[$s]}/health" '{"status":"ok"}' 1.1 --http1.1
                check "https://127.0.0.1:${TLS_PORT_OF[$s]}/data" '{"ok":true}' 1.1 --http1.1 ;;
            handshake)
                check "https://127.0.0.1:${TLS_PORT_OF[$s]}/health" '{"status":"ok"}' 1.1 --http1.1 ;;
            h2)
                check "https://127.0.0.1:${TLS_PORT_OF[$s]}/health" '{"status":"ok"}' 2 --http2
                check "https://127.0.0.1:${TLS_PORT_OF[$s]}/data" '{"ok":true}' 2 --http2 ;;
        esac
    done
    say "bench: $1: every server answers 200 with the expected bodies"
}

# The gateway request's two headers, signed now (valid for bench.policy's 15-minute clock skew)
gw_sign() {
    mapfile -t GW_HEADERS < <(python3 "$BENCH_DIR/apig-sign.py" "$GW_KEY" "$BENCH_APP_SECRET" \
        GET "$GW_PATH?$GW_QUERY" "127.0.0.1:$RULEGATE_PORT")
    [ ${#GW_HEADERS[@]} = 2 ] || die "bench/apig-sign.py failed"
}
check_gateway() {
    local code
    gw_sign
    check "http://127.0.0.1:$RULEGATE_PORT$GW_PATH?$GW_QUERY" '{"ok":true}' 1.1 -H "${GW_HEADERS[0]}" -H "${GW_HEADERS[1]}"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RULEGATE_PORT$GW_PATH?$GW_QUERY")
    [ "$code" = 401 ] || die "CHECK FAILED: the gateway request without a signature answered $code, not 401"
    local wrong=${GW_HEADERS[1]%?}
    if [[ "${GW_HEADERS[1]}" == *0 ]]; then wrong+=1; else wrong+=0; fi # the signature's last digit changed
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "${GW_HEADERS[0]}" -H "$wrong" \
        "http://127.0.0.1:$RULEGATE_PORT$GW_PATH?$GW_QUERY")
    [ "$code" = 401 ] || die "CHECK FAILED: the gateway request with a wrong signature answered $code, not 401"
    # 200 signed requests back to back on one connection: all 200 (a limit refusing at a high rate
    # shows here, not only in wrk's non-2xx count)
    local urls=()
    for _ in $(seq 200); do urls+=(-o /dev/null "http://127.0.0.1:$RULEGATE_PORT$GW_PATH?$GW_QUERY"); done
    code=$(curl -s -H "${GW_HEADERS[0]}" -H "${GW_HEADERS[1]}" -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c | paste -sd' ')
    [[ "$code" =~ ^\ *200\ 200$ ]] || die "CHECK FAILED: 200 signed gateway requests back to back answered: $code"
    check "http://127.0.0.1:$NGINX_PORT/data" '{"ok":true}'
    say "bench: gateway: rulegate answers the signed request 200 (401 unsigned or wrongly signed); nginx /data 200"
}

# ---------------------------------------------------------------- 5. the workloads

run_rounds() { # tool workload mode paths…: every server, every path, ROUNDS rotated rounds
    local tool=$1 workload=$2 mode=$3 path s; shift 3
    for path in "$@"; do
        for ROUND in $(seq "$ROUNDS"); do
            for s in $(rotated "$ROUND"); do
                server_pids "$s"
                measure_clean "$tool" "$workload" "$mode" "$s" "$path" "$(base_url "$workload" "$s")$path"
            done
        done
    done
}

run_gateway() {
    local s
    for ROUND in $(seq "$ROUNDS"); do
        gw_sign # once a round, dated now: valid for the whole round
        for s in $(rotated "$ROUND"); do
            case $s in
                rulegate)
                    server_pids rulegate
                    measure_clean wrk gateway "$MAIN_MODE" rulegate /gw "http://127.0.0.1:$RULEGATE_PORT$GW_PATH?$GW_QUERY" \
                        -H "${GW_HEADERS[0]}" -H "${GW_HEADERS[1]}" ;;
                nginx)
                    server_pids nginx
                    measure_clean wrk gateway "$MAIN_MODE" nginx /gw "http://127.0.0.1:$NGINX_PORT/data" ;;
            esac
        done
    done
}

peak_of() { # workload path server → the median req/s measured (empty if none)
    awk -F'\t' -v w="$1" -v p="$2" -v s="$3" -v m="$MAIN_MODE" "$AWK_MEDIAN"'
        $21 == w && $3 == p && $2 == s && $1 == m { list = list " " $4 }
        END { if (list != "") printf "%.0f\n", median(list) }' "$RESULTS"
}

run_latency() {
    local target workload path s load peak
    local -a here
    for target in $LATENCY_TARGETS; do
        workload=${target%%:*} path=${target#*:}
        # the floor (rulegate's HTTP stack alone) beside them on plain HTTP: what is the stack's
        here=("${SERVERS[@]}")
        if [ -n "$FLOOR_HERE" ] && [ "$workload" = plain ]; then here+=(floor); fi
        for s in "${here[@]}"; do
            if [ -z "$(peak_of "$workload" "$path" "$s")" ]; then # the throughput workload did not run: measure the peak
                server_pids "$s"; ROUND=1
                measure_clean wrk "$workload" "$MAIN_MODE" "$s" "$path" "$(base_url "$workload" "$s")$path"
            fi
        done
        for load in $LATENCY_LOADS; do
            for ROUND in $(seq "$LATENCY_ROUNDS"); do
                for s in $(rotated "$ROUND" "${here[@]}"); do
                    peak=$(peak_of "$workload" "$path" "$s")
                    RATE=$(( peak * load / 100 ))
                    server_pids "$s"
                    measure_clean fixed "latency-$workload" "$MAIN_MODE" "$s" "$path@$load%" "$(base_url "$workload" "$s")$path"
                    RATE=
                done
            done
        done
    done
}

# ---------------------------------------------------------------- 6. the run

mkdir -p "$TMP/policy"
sed "s/__BACKEND_PORT__/$BACKEND_PORT/" "$BENCH_DIR/policy/bench.policy" >"$TMP/policy/bench.policy"
BENCH_SIGNING_SECRET=x "$RULEGATE" check "$TMP/policy" >/dev/null || die "the bench policy does not compile"

render "$BENCH_DIR/nginx-backend.conf" "$TMP/nginx-backend.conf"
start_nginx backend "$TMP/nginx-backend.conf" "$CLIENT_CPU"
BACKEND_PID=$LAST_PID
wait_ready "http://127.0.0.1:$BACKEND_PORT/data" '{"ok":true}'
read -r -a BACKEND_PIDS <<<"$(family "$BACKEND_PID")"

wait_quiet
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
START_S=$(date +%s)
say "bench: measuring; load average $(loadavg); nproc $(nproc); ${DURATION} per measurement"
say "bench: workloads: $WORKLOADS; servers: ${SERVERS[*]}; logging: $LOG_MODES (workloads other than plain: $MAIN_MODE)"

# the floor has no access log: it runs beside the logging-off configuration (else the last one)
FLOOR_MODE=
if [ "$FLOOR" = 1 ]; then
    FLOOR_MODE=${LOG_MODES##* }
    if has "$LOG_MODES" off; then FLOOR_MODE=off; fi
fi

RATE=
for mode in $LOG_MODES; do
    if [ "$mode" != "$MAIN_MODE" ] && ! has "$WORKLOADS" plain; then continue; fi
    start_servers "$mode"
    FLOOR_HERE=
    if [ "$FLOOR" = 1 ]; then
        if { [ "$mode" = "$FLOOR_MODE" ] && has "$WORKLOADS" plain; } ||
            { [ "$mode" = "$MAIN_MODE" ] && [ -n "$LATENCY_FLOOR" ]; }; then FLOOR_HERE=1; fi
    fi
    if [ -n "$FLOOR_HERE" ]; then
        taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$BACKEND_PORT" 2>"$TMP/floor.log" &
        PIDS+=($!)
        FLOOR_PID=$!
        PID_OF[floor]=$FLOOR_PID
        wait_ready "http://127.0.0.1:$FLOOR_PORT/health" '{"status":"ok"}'
        wait_ready "http://127.0.0.1:$FLOOR_PORT/data" '{"ok":true}'
        wait_ready "http://127.0.0.1:$FLOOR_PORT/data2" '{"ok":true}'
        wait_ready "http://127.0.0.1:$FLOOR_PORT/data3" '{"ok":true}'
    fi
    for workload in $WORKLOADS; do
        [ "$workload" = plain ] || [ "$mode" = "$MAIN_MODE" ] || continue
        W_START=$(date +%s)
        case $workload in
            plain) check_workload plain; run_rounds wrk plain "$mode" /health /data ;;
            https) check_workload https; run_rounds wrk https "$mode" /health /data ;;
            handshake) check_workload handshake; run_rounds handshake handshake "$mode" /health ;;
            h2) check_workload h2; run_rounds h2 h2 "$mode" /health /data ;;
            gateway) check_gateway; run_gateway ;;
            latency)
                for w in $(tr ' ' '\n' <<<"$LATENCY_TARGETS" | cut -d: -f1 | sort -u); do check_workload "$w"; done
                run_latency ;;
        esac
        say "bench: $workload ($mode) took $(( $(date +%s) - W_START ))s"
    done
    if [ -n "$FLOOR_HERE" ]; then
        if [ "$mode" = "$FLOOR_MODE" ] && has "$WORKLOADS" plain; then
            ROUND=1
            SERVER_PIDS=("$FLOOR_PID")
            for path in /health /data /data2 /data3; do
                measure_clean wrk plain "$mode" floor "$path" "http://127.0.0.1:$FLOOR_PORT$path"
            done
        fi
        stop_pid "$FLOOR_PID"; forget_pid "$FLOOR_PID"
    fi
    if [ "$mode" = on ]; then
        line="bench: access lines written: rulegate $(grep -c ' access: ' "$TMP/rulegate-on.log" || true)"
        has "$PEERS" nginx && line+=", nginx $(wc -l <"$TMP/nginx-access.log")"
        has "$PEERS" haproxy && line+=", haproxy $(wc -l <"$TMP/haproxy-access-on.log")"
        has "$PEERS" caddy && line+=", caddy $(wc -l <"$TMP/caddy-access.log")"
        say "$line"
    fi
    stop_servers
done
ELAPSED=$(( $(date +%s) - START_S ))

# ---------------------------------------------------------------- 7. the report

# One table: every server's req/s (median of the rounds), p99, and rulegate/peer (median of the
# rounds' ratios, range in brackets); then the bar against the best peer (the peer with the highest
# median req/s) or against nginx.
# report_table WORKLOAD MODE PATH AGAINST(best|nginx|-) FACTOR TITLE
report_table() {
    echo
    echo "$6"
    awk -F'\t' -v w="$1" -v mode="$2" -v path="$3" -v against="$4" -v factor="$5" -v peers="$PEERS" \
        -v omax="$OTHERS_MAX" "$AWK_MEDIAN"'
        $21 == w && $1 == mode && $3 == path {
            rps[$2] = rps[$2] " " $4; if ($6 != "-") p99[$2] = p99[$2] " " $6; cost[$2] = cost[$2] " " ($18 + $19); busy[$2] = busy[$2] " " $9
            by_round[$2, $20] = $4; if ($20 > rounds) rounds = $20
            if ($14 > omax) flag[$2] = flag[$2] "*"
            if ($7 != 0 || $8 != "none") { flag[$2] = flag[$2] "!"; bad = 1 }
            if ($25 > 0) { flag[$2] = flag[$2] "o"; overflow = 1 }
        }
        END {
            np = split(peers, peer, " ")
            printf "  %-9s %11s %9s %-3s %9s  %-24s %s\n", "server", "req/s", "p99", "", "µs/req", "rulegate/server [rounds]", "by CPU"
            printf "  %-9s %11.0f %9s %-3s %9.1f\n", "rulegate", median(rps["rulegate"]), \
                (p99["rulegate"] == "") ? "-" : sprintf("%.2fms", median(p99["rulegate"])), flag["rulegate"], median(cost["rulegate"])
            best = ""; bestrps = -1
            for (i = 1; i <= np; i++) {
                p = peer[i]; if (rps[p] == "") continue
                list = ""; lo = 1e9; hi = 0
                for (k = 1; k <= rounds; k++)
                    if (by_round[p, k] > 0 && by_round["rulegate", k] > 0) {
                        q = by_round["rulegate", k] / by_round[p, k]; list = list " " q
                        if (q < lo) lo = q; if (q > hi) hi = q
                    }
                ratio[p] = median(list); range[p] = sprintf("[%.2f–%.2f]", lo, hi)
                bycpu[p] = (median(cost["rulegate"]) > 0) ? median(cost[p]) / median(cost["rulegate"]) : 0
                printf "  %-9s %11.0f %9s %-3s %9.1f  %-24s %.2f\n", p, median(rps[p]), \
                    (p99[p] == "") ? "-" : sprintf("%.2fms", median(p99[p])), flag[p], median(cost[p]), \
                    sprintf("%.2f %s", ratio[p], range[p]), bycpu[p]
                if (median(rps[p]) > bestrps) { bestrps = median(rps[p]); best = p }
            }
            if (against == "best" && best != "")
                printf "  bar: rulegate ≥ %.1f × the best peer (%s): %.3f %s  %s\n", factor, best, ratio[best], \
                    range[best], (ratio[best] >= factor) ? "pass" : "MISS"
            else if (against == "nginx" && ratio["nginx"] != "")
                printf "  bar: rulegate ≥ %.1f × nginx: %.3f %s  %s\n", factor, ratio["nginx"], range["nginx"], \
                    (ratio["nginx"] >= factor) ? "pass" : "MISS"
            else if (against != "-")
                printf "  bar: rulegate ≥ %.1f × %s: not measured (peer not run)\n", factor, against
            if (best != "" && against != "best") printf "  against the best peer (%s): %.2f %s\n", best, ratio[best], range[best]
            target = (against == "best") ? best : against
            if (target != "" && rps[target] != "" && (median(busy["rulegate"]) < 90 || median(busy[target]) < 90))
                printf "  not server-bound (server core: rulegate %d%%, %s %d%%): the client or the machine set the pace; by CPU per request %s/rulegate = %.2f\n", \
                    median(busy["rulegate"]), target, median(busy[target]), target, bycpu[target]
            if (bad) print "  ! answers that were not 2xx, or socket/stream errors, in a measurement: see the detail"
            if (overflow) print "  o connections dropped by a full listen queue during a measurement (their SYN resent after 1 s): see the detail"
        }' "$RESULTS"
}

report_latency() { # workload path (the latency rows of one target)
    echo
    echo "latency at a fixed rate, ${1#latency-} $2 (bench/loadgen; -c$CONNS; from when each request was due) — in ms"
    awk -F'\t' -v w="$1" -v path="$2" -v peers="$PEERS" -v loads="$LATENCY_LOADS" -v omax="$OTHERS_MAX" "$AWK_MEDIAN"'
        $21 == w && index($3, path "@") == 1 {
            ld = substr($3, length(path) + 2); sub("%", "", ld)
            k = $2 SUBSEP ld
            rate[k] = $24; got[k] = got[k] " " $4; p50[k] = p50[k] " " $22; p99[k] = p99[k] " " $6; p999[k] = p999[k] " " $23
            if ($14 > omax) flag[k] = flag[k] "*"
            if ($7 != 0 || $8 != "none") { flag[k] = flag[k] "!"; bad = 1 }
            if ($4 < 0.95 * $24) { flag[k] = flag[k] "<"; short = 1 }
        }
        END {
            n = split("rulegate " peers " floor", server, " "); nl = split(loads, load, " ")
            printf "  %-5s %-9s %10s %10s %8s %8s %8s %s\n", "load", "server", "rate asked", "achieved", "p50", "p99", "p99.9", ""
            for (j = 1; j <= nl; j++) for (i = 1; i <= n; i++) {
                k = server[i] SUBSEP load[j]; if (got[k] == "") continue
                printf "  %-5s %-9s %10d %10.0f %8.3f %8.3f %8.3f %s\n", load[j] "%", server[i], rate[k], median(got[k]), \
                    median(p50[k]), median(p99[k]), median(p999[k]), flag[k]
                if (server[i] == "rulegate") rg999[j] = median(p999[k]); if (server[i] == "nginx") ng999[j] = median(p999[k])
                if (server[i] == "rulegate" && load[j] == 80) rg99 = median(p99[k])
            }
            if (path == "/health" && w == "latency-plain" && rg99 != "")
                printf "  bar: rulegate p99 at 80%% of its peak < 1 ms: %.3f ms %s\n", rg99, (rg99 < 1) ? "pass" : "MISS"
            for (j = 1; j <= nl; j++) if (rg999[j] != "" && ng999[j] != "")
                printf "  bar: rulegate p99.9 not above nginx'"'"'s at %s%%: %.3f vs %.3f ms %s\n", load[j], rg999[j], ng999[j], \
                    (rg999[j] <= ng999[j]) ? "pass" : "MISS"
            if (short) print "  < the client did not reach 95% of the rate asked (its core is the limit): the latencies include its lag"
            if (bad) print "  ! answers that were not 2xx, or errors, in a measurement: see the detail"
        }' "$RESULTS"
}

echo
echo "rulegate vs ${PEERS// /, } — $START_DATE — nproc $(nproc) — $(uname -r) — $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
RUNTIME="$RULEGATE_WORKERS tokio worker(s)"; [ "$RULEGATE_WORKERS" = 0 ] && RUNTIME="tokio current-thread runtime"
echo "server under test on core $SERVER_CPU (rulegate: $RUNTIME; nginx: 1 worker; haproxy: nbthread 1;" \
    "caddy: GOMAXPROCS=1); the load generator and the backend nginx on core $CLIENT_CPU"
echo "$DURATION per measurement after a $WARMUP warm-up; $ROUNDS rounds per server and path, the servers' order" \
    "rotated every round; quiet machine: $QUIET"
echo "req/s, p99 and µs/req (the server's CPU time per request, user + system): the median of the rounds;"
echo "rulegate/server: the median of each round's req/s ratio (range in brackets); by CPU: the server's µs/req"
echo "over rulegate's (> 1: rulegate spends less CPU per request), the ratio to read where the client is the limit"
echo "flags: * other processes used more than $OTHERS_MAX% of a core during a measurement; ! answers not 2xx or errors;"
echo "o connections dropped by a full listen queue"
if [ -n "${TLS_OF[rulegate]:-}" ]; then
    echo "TLS negotiated with the bench's OpenSSL clients (wrk, h2load):"
    for s in "${SERVERS[@]}"; do echo "  $s: ${TLS_OF[$s]}"; done
fi

for workload in $WORKLOADS; do
    case $workload in
        plain)
            for mode in $LOG_MODES; do
                if [ "$mode" = on ]; then
                    what="access logging ON (the default configuration): one line per request to a file"
                else
                    what="access logging OFF"
                fi
                against=nginx; [ "$mode" = on ] || against=-
                report_table plain "$mode" /health "$against" 1.0 \
                    "plain HTTP/1.1 keep-alive (wrk -c$CONNS), GET /health (mock), $what"
                report_table plain "$mode" /data "$against" 1.0 \
                    "plain HTTP/1.1 keep-alive (wrk -c$CONNS), GET /data (forward to the backend, keep-alive), $what (issue 17's bar; before it: ≥ 0.8)"
            done ;;
        https)
            report_table https "$MAIN_MODE" /health best 1.1 "HTTPS keep-alive (TLS 1.3, HTTP/1.1, wrk -c$CONNS), GET /health (mock)"
            report_table https "$MAIN_MODE" /data best 1.0 "HTTPS keep-alive (TLS 1.3, HTTP/1.1, wrk -c$CONNS), GET /data (forward)" ;;
        handshake)
            report_table handshake "$MAIN_MODE" /health best 1.0 \
                "TLS handshakes: a full TLS 1.3 handshake (ECDSA P-256, X25519) per request, GET /health; bench/loadgen's handshakes, $HS_CONNS connections at once; req/s = handshakes/s, µs/req = server CPU per handshake" ;;
        h2)
            report_table h2 "$MAIN_MODE" /health best 1.0 "HTTP/2 over TLS (h2load -c$H2_CLIENTS -m$H2_STREAMS), GET /health (mock)"
            report_table h2 "$MAIN_MODE" /data best 1.0 "HTTP/2 over TLS (h2load -c$H2_CLIENTS -m$H2_STREAMS), GET /data (forward)" ;;
        gateway)
            report_table gateway "$MAIN_MODE" /gw nginx 0.8 \
                "the gateway request (wrk -c$CONNS, plain HTTP/1.1): rulegate GET $GW_PATH?$GW_QUERY (SDK-HMAC-SHA256 app signature verified, two parameter checks, a per-app rate limit, forward) against nginx GET /data (plain proxy_pass, the floor: no peer verifies these signatures)" ;;
        latency)
            for target in $LATENCY_TARGETS; do report_latency "latency-${target%%:*}" "${target#*:}"; done ;;
    esac
done

if [ -n "$FLOOR_MODE" ] && has "$PEERS" nginx && has "$WORKLOADS" plain; then
    echo
    echo "the floor (bench/floor: rulegate's tokio + hyper stack, no policy, no log, no metrics), against" \
        "nginx with logging $FLOOR_MODE"
    # nginx measured in rounds: the floor is compared with the median of them
    awk -F'\t' -v mode="$FLOOR_MODE" -v omax="$OTHERS_MAX" "$AWK_MEDIAN"'
        $21 == "plain" && $1 == mode { rps[$2, $3] = rps[$2, $3] " " $4; p99[$2, $3] = $5; flag[$2, $3] = ($14 > omax) ? "*" : " " }
        END {
            printf "%-8s %-52s %12s %9s %12s\n", "path", "floor", "req/s", "p99", "floor/nginx"
            what["/health"] = "static answer"
            what["/data"] = "hyper-util legacy Client"
            what["/data2"] = "hand-rolled pool of hyper::client::conn::http1"
            what["/data3"] = "exchange written out on the request task (as rulegate)"
            n = split("/health /data /data2 /data3", paths, " ")
            for (i = 1; i <= n; i++) {
                p = paths[i]; q = (p ~ /^\/data/) ? "/data" : p
                printf "%-8s %-52s %11.0f%s %7sms %12.2f\n", q, what[p], median(rps["floor", p]), flag["floor", p], \
                    p99["floor", p], median(rps["floor", p]) / median(rps["nginx", q])
            }
        }' "$RESULTS"
fi
echo
echo "detail: CPU in % of one core over each measurement; 'others' = what processes other than the"
echo "server, the backend and the client used on the two cores (another job, kernel threads); server CPU"
echo "time per request in µs (user + system) — the cost, nearly independent of what else runs"
printf '%-15s %-4s %-8s %-12s %5s %9s %8s %6s %8s %8s %7s %6s %6s %7s %-11s %12s  %s\n' workload log server path round \
    req/s p99ms non2xx server% backend% client% core0% core1% others% "saturated" "µs/req u+s" "load avg before → after"
awk -F'\t' '{
    sat = ($9 >= 90) ? (($13 >= 90) ? "both" : "server") : (($13 >= 90) ? "core " cc : "neither")
    printf "%-15s %-4s %-8s %-12s %5s %9.0f %8s %6s %8s %8s %7s %6s %6s %7s %-11s %12s  %s → %s%s%s%s\n", \
    $21, $1, $2, $3, $20, $4, $6, $7, $9, $10, $11, $12, $13, $14, sat, sprintf("%.1f+%.1f", $18, $19), $15, $16, \
    ($24 == "-") ? "" : "  rate asked " $24, ($8 == "none") ? "" : "  errors: " $8, \
    ($25 > 0) ? "  listen queue drops: " $25 : "" }' cc="$CLIENT_CPU" "$RESULTS"
echo "saturated: which of the server (≥ 90% of its core) and core $CLIENT_CPU (client + backend, ≥ 90% busy) was"
echo "the limit; where core $CLIENT_CPU is, the server could have answered more than the client asked of it"
