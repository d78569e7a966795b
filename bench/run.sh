#!/usr/bin/env bash
# Load comparison: rulegate against nginx on the same two routes (a mock and a forward).
# See bench/README.md. One command: bench/run.sh
#
# Knobs (environment):
#   BENCH_DURATION=10s      wrk -d of each measurement
#   BENCH_ROUNDS=3          measurements of each server on each path, alternating with the other
#                           server; the report gives medians and checks the bars on the median ratio
#   BENCH_WARMUP=3s         wrk -d of the warm-up before each measurement (0 to skip)
#   BENCH_CONNECTIONS=64    wrk -c
#   BENCH_THREADS=1         wrk -t
#   BENCH_LOGS="on off"     access logging configurations to run, in order ("on" = the default one)
#   BENCH_MAX_LOAD=1.0      wait until the 1-minute load average is below this before measuring ...
#   BENCH_WAIT=1200         ... for at most this many seconds (0: do not wait), then measure anyway
#   BENCH_IDLE_MAX=15       before each measurement, wait until other processes use at most this % of a core ...
#   BENCH_IDLE_WAIT=120     ... for at most this many seconds, then measure anyway
#   BENCH_SERVER_CPU=0      the core of the server under test
#   BENCH_CLIENT_CPU=1      the core of wrk and the backend
#   BENCH_FLOOR=1           also measure bench/floor (rulegate's HTTP stack with nothing of rulegate in
#                           it), in the logging-off configuration; 0 to skip
#   BENCH_BACKEND_PORT=18480 BENCH_NGINX_PORT=18481 BENCH_RULEGATE_PORT=18482 BENCH_FLOOR_PORT=18483
#   BENCH_KEEP=1            keep the temp dir (logs, wrk outputs, generated configs) and say where
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-3s}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
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

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# ---------------------------------------------------------------- 1. tools and the build

need_install=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
command -v wrk >/dev/null 2>&1 || need_install+=(wrk)
if [ ${#need_install[@]} -gt 0 ]; then
    say "bench: installing ${need_install[*]} (Debian packages)"
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
        die "need root (or sudo) to install ${need_install[*]}"
    fi
    "${SUDO[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${need_install[@]}"
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
command -v curl >/dev/null || die "curl is missing"
[ "$(nproc --all)" -gt "$(( SERVER_CPU > CLIENT_CPU ? SERVER_CPU : CLIENT_CPU ))" ] \
    || die "need cores $SERVER_CPU and $CLIENT_CPU; this machine has $(nproc --all)"

say "bench: cargo build --release"
(cd "$ROOT" && cargo build --release)
RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate
[ -x "$RULEGATE" ] || die "no binary at $RULEGATE"
if [ "$FLOOR" = 1 ]; then
    say "bench: cargo build --release (bench/floor)"
    FLOOR_TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/bench-floor
    CARGO_TARGET_DIR=$FLOOR_TARGET cargo build --release --manifest-path "$BENCH_DIR/floor/Cargo.toml"
    FLOOR_BIN=$FLOOR_TARGET/release/floor
fi

for port in "$BACKEND_PORT" "$NGINX_PORT" "$RULEGATE_PORT" "$FLOOR_PORT"; do
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

render() { # template output: fill in the @…@ placeholders
    sed -e "s|@TMP@|$TMP|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@ACCESS_LOG@|${ACCESS_LOG:-off}|g" "$1" >"$2"
}

wait_ready() { # url expected-body
    local i body
    for i in $(seq 100); do
        body=$(curl -fsS --max-time 1 "$1" 2>/dev/null) && break
        sleep 0.1
    done
    [ "${body:-}" = "$2" ] || die "$1 answered '${body:-nothing}', expected '$2'"
}

start_nginx() { # name config cpu → pid of the master (workers inherit the affinity)
    mkdir -p "$TMP/$1-tmp"
    "$NGINX" -t -q -p "$TMP" -c "$2" -e "$TMP/$1-error.log" || die "nginx rejects $2"
    taskset -c "$3" "$NGINX" -p "$TMP" -c "$2" -e "$TMP/$1-error.log" &
    PIDS+=($!)
    LAST_PID=$!
}

start_rulegate() { # log mode
    local env=(BENCH_SIGNING_SECRET=bench-signing-secret) # bench.policy's signing backend
    [ "$1" = off ] && env+=(RULEGATE_LOG=warn)
    env "${env[@]}" taskset -c "$SERVER_CPU" "$RULEGATE" serve "$TMP/policy" \
        --listen "127.0.0.1:$RULEGATE_PORT" --drain 1s 2>"$TMP/rulegate-$1.log" &
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
children_ticks() { sed 's/.*) //' "/proc/$$/stat" | awk '{ print $14 + $15 }'; } # waited-for children (wrk)
cpu_line() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 }' /proc/stat; }
tasks_busy() { awk '$1 ~ /^cpu[0-9]/ { t += $2 + $3 + $4 } END { print t }' /proc/stat; }
family() { echo "$1" $(pgrep -P "$1" || true); } # an nginx master and its workers

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

to_ms() { # wrk latency "812.00us" / "2.31ms" / "1.02s" → milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

RESULTS=$TMP/results.tsv
# The median of a space-separated list of numbers, for the report's awk programs.
AWK_MEDIAN='
        function median(list,    v, n, i, j, t) {
            n = split(list, v, " ")
            for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
            return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        }
'
: >"$RESULTS"

measure() { # mode server path url server-pids…  (ROUND: the round number)
    local mode=$1 server=$2 path=$3 url=$4; shift 4
    local out="$TMP/wrk-$mode-$server-${path//\//}-$ROUND.txt"
    wait_idle
    if [ "$WARMUP" != 0 ]; then
        taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url" >/dev/null
    fi
    local hz t0 t1 s0 s1 b0 b1 w0 w1 c0 c1 d0 d1 load0
    hz=$(getconf CLK_TCK)
    load0=$(loadavg)
    t0=$(date +%s.%N); s0=$(cputime_of "$@"); b0=$(ticks_of $(family "$BACKEND_PID"))
    w0=$(children_ticks); c0=$(cpu_line "$SERVER_CPU"); d0=$(cpu_line "$CLIENT_CPU")
    taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" >"$out"
    t1=$(date +%s.%N); s1=$(cputime_of "$@"); b1=$(ticks_of $(family "$BACKEND_PID"))
    w1=$(children_ticks); c1=$(cpu_line "$SERVER_CPU"); d1=$(cpu_line "$CLIENT_CPU")

    local rps p99 requests non2xx errors
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    p99=$(awk '$1 == "99%" { print $2 }' "$out")
    requests=$(awk '/requests in/ { print $1 }' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    errors=$(awk -F': ' '/Socket errors:/ { print $2 }' "$out")
    [ -n "$rps" ] && [ -n "$p99" ] && [ -n "$requests" ] || die "could not parse wrk's output in $out: $(cat "$out")"
    # CPU over the measurement, in % of one core: the server, the backend (on /data), wrk, each
    # core's busy time, and what processes other than ours took on the two cores (another job's
    # load, kernel threads); and the server's CPU time per request, user and system, in µs.
    awk -v mode="$mode" -v server="$server" -v path="$path" -v rps="$rps" -v p99="$p99" \
        -v p99ms="$(to_ms "$p99")" -v non2xx="${non2xx:-0}" -v errors="${errors:-none}" \
        -v dt="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" -v hz="$hz" -v requests="$requests" \
        -v s0="$s0" -v s1="$s1" -v b="$((b1 - b0))" -v w="$((w1 - w0))" \
        -v c0="$c0" -v c1="$c1" -v d0="$d0" -v d1="$d1" -v load0="$load0" -v load1="$(loadavg)" -v round="$ROUND" '
        BEGIN {
            split(s0, a); split(s1, z); su = z[1] - a[1]; ss = z[2] - a[2]; s = su + ss
            split(c0, a); split(c1, z); core0 = (z[1] - a[1]); task0 = (z[2] - a[2])
            split(d0, a); split(d1, z); core1 = (z[1] - a[1]); task1 = (z[2] - a[2])
            k = 100 / (dt * hz)
            other = (task0 + task1 - s - b - w) * k; if (other < 0) other = 0
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t%d\n", \
                mode, server, path, rps, p99, p99ms, non2xx, errors, s * k, b * k, w * k, \
                core0 * k, core1 * k, other, load0, load1, requests, su / hz * 1e6 / requests, ss / hz * 1e6 / requests, round
        }' >"$TMP/last.tsv"
    say "bench:   $(printf 'round %s %-8s %-8s' "$ROUND" "$server" "$path") $rps req/s, p99 $p99, others $(cut -f14 "$TMP/last.tsv")% of a core"
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

# ---------------------------------------------------------------- 4. the run

mkdir -p "$TMP/policy"
sed "s/__BACKEND_PORT__/$BACKEND_PORT/" "$BENCH_DIR/policy/bench.policy" >"$TMP/policy/bench.policy"
"$RULEGATE" check "$TMP/policy" >/dev/null || die "the bench policy does not compile"

render "$BENCH_DIR/nginx-backend.conf" "$TMP/nginx-backend.conf"
start_nginx backend "$TMP/nginx-backend.conf" "$CLIENT_CPU"
BACKEND_PID=$LAST_PID
wait_ready "http://127.0.0.1:$BACKEND_PORT/data" '{"ok":true}'

wait_quiet
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
say "bench: measuring; load average $(loadavg); nproc $(nproc); ${DURATION} per measurement"

# the floor has no access log: it runs beside the logging-off configuration (else the last one)
FLOOR_MODE=
if [ "$FLOOR" = 1 ]; then
    FLOOR_MODE=$(echo $LOG_MODES | tr ' ' '\n' | grep -x off || echo $LOG_MODES | tr ' ' '\n' | tail -1)
fi

for mode in $LOG_MODES; do
    case $mode in
        on) ACCESS_LOG="$TMP/nginx-access.log rulegate_like buffer=32k flush=100ms" ;;  # buffered, as rulegate's is
        off) ACCESS_LOG=off ;;
        *) die "BENCH_LOGS: '$mode' is neither on nor off" ;;
    esac
    render "$BENCH_DIR/nginx-gateway.conf" "$TMP/nginx-gateway-$mode.conf"
    start_nginx nginx "$TMP/nginx-gateway-$mode.conf" "$SERVER_CPU"
    NGINX_PID=$LAST_PID
    start_rulegate "$mode"
    RULEGATE_PID=$LAST_PID
    for server in nginx rulegate; do
        port=$NGINX_PORT; [ $server = rulegate ] && port=$RULEGATE_PORT
        wait_ready "http://127.0.0.1:$port/health" '{"status":"ok"}'
        wait_ready "http://127.0.0.1:$port/data" '{"ok":true}'
    done
    if [ "$mode" = "$FLOOR_MODE" ]; then
        taskset -c "$SERVER_CPU" "$FLOOR_BIN" "127.0.0.1:$FLOOR_PORT" "$BACKEND_PORT" 2>"$TMP/floor.log" &
        PIDS+=($!)
        FLOOR_PID=$!
        wait_ready "http://127.0.0.1:$FLOOR_PORT/health" '{"status":"ok"}'
        wait_ready "http://127.0.0.1:$FLOOR_PORT/data" '{"ok":true}'
        wait_ready "http://127.0.0.1:$FLOOR_PORT/data2" '{"ok":true}'
    fi
    NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | wc -l)
    RULEGATE_THREADS=$(ls "/proc/$RULEGATE_PID/task" | wc -l)
    RULEGATE_WORKERS=$( (grep -lx tokio-rt-worker /proc/"$RULEGATE_PID"/task/*/comm 2>/dev/null || true) | wc -l)  # 0: a current-thread runtime
    say "bench: logging $mode: nginx $NGINX_WORKERS worker(s); rulegate $RULEGATE_THREADS threads, $RULEGATE_WORKERS tokio worker(s)"
    for path in /health /data; do
        # Rounds alternate the two servers, and which goes first, so that a slow drift of the
        # machine (another VM on the host, the CPU's clock) falls on both alike.
        for ROUND in $(seq "$ROUNDS"); do
            order="nginx rulegate"; [ $((ROUND % 2)) = 0 ] && order="rulegate nginx"
            for server in $order; do
                if [ "$server" = nginx ]; then
                    measure_clean "$mode" nginx "$path" "http://127.0.0.1:$NGINX_PORT$path" $(family "$NGINX_PID")
                else
                    measure_clean "$mode" rulegate "$path" "http://127.0.0.1:$RULEGATE_PORT$path" "$RULEGATE_PID"
                fi
            done
        done
    done
    if [ "$mode" = "$FLOOR_MODE" ]; then
        ROUND=1
        for path in /health /data /data2; do
            measure_clean "$mode" floor "$path" "http://127.0.0.1:$FLOOR_PORT$path" "$FLOOR_PID"
        done
        stop_pid "$FLOOR_PID"; forget_pid "$FLOOR_PID"
    fi
    if [ "$mode" = on ]; then
        say "bench: access lines written: nginx $(wc -l <"$TMP/nginx-access.log"), rulegate $(grep -c ' access: ' "$TMP/rulegate-on.log" || true)"
    fi
    stop_pid "$NGINX_PID"; forget_pid "$NGINX_PID"
    stop_pid "$RULEGATE_PID"; forget_pid "$RULEGATE_PID"
done

# ---------------------------------------------------------------- 5. the report

echo
echo "rulegate vs nginx — $START_DATE — nproc $(nproc) — $(uname -r)"
RUNTIME="$RULEGATE_WORKERS tokio worker(s)"; [ "$RULEGATE_WORKERS" = 0 ] && RUNTIME="tokio current-thread runtime"
echo "server under test on core $SERVER_CPU (nginx: 1 worker; rulegate: $RUNTIME);" \
    "wrk and the backend nginx on core $CLIENT_CPU"
echo "wrk -t$THREADS -c$CONNS -d$DURATION --latency, after a $WARMUP warm-up; $ROUNDS rounds per server and path," \
    "alternating; quiet machine: $QUIET"
echo "req/s and p99: the median of the rounds; rulegate/nginx: the median of each round's ratio (range in brackets)"
for mode in $LOG_MODES; do
    echo
    if [ "$mode" = on ]; then
        echo "access logging ON (the default configuration): one line per request to a file —" \
            "nginx access_log with rulegate's fields, rulegate's access line on stderr (info level)"
    else
        echo "access logging OFF: nginx access_log off, rulegate RULEGATE_LOG=warn"
    fi
    awk -F'\t' -v mode="$mode" -v omax="$OTHERS_MAX" "$AWK_MEDIAN"'
        $1 == mode {
            rps[$2, $3] = rps[$2, $3] " " $4; p99[$2, $3] = p99[$2, $3] " " $6
            by_round[$2, $3, $20] = $4; rounds[$3] = ($20 > rounds[$3]) ? $20 : rounds[$3]
            if ($14 > omax) flag[$2, $3] = "*"
        }
        END {
            printf "%-8s %12s %9s %14s %12s %23s %6s\n", "path", "nginx req/s", "nginx p99", \
                "rulegate req/s", "rulegate p99", "rulegate/nginx", "bar"
            n = split("/health /data", paths, " ")
            for (i = 1; i <= n; i++) {
                p = paths[i]; bar = (p == "/health") ? 1.0 : 0.8
                ratios = ""; lo = 1e9; hi = 0
                for (k = 1; k <= rounds[p]; k++) {
                    if (by_round["nginx", p, k] > 0 && by_round["rulegate", p, k] > 0) {
                        q = by_round["rulegate", p, k] / by_round["nginx", p, k]
                        ratios = ratios " " q; if (q < lo) lo = q; if (q > hi) hi = q
                    }
                }
                r = median(ratios)
                printf "%-8s %11.0f%1s %7.2fms %13.0f%1s %10.2fms %8.2f [%.2f–%.2f] %6s %s\n", p, \
                    median(rps["nginx", p]), flag["nginx", p], median(p99["nginx", p]), \
                    median(rps["rulegate", p]), flag["rulegate", p], median(p99["rulegate", p]), r, lo, hi, \
                    sprintf("≥%.1f", bar), (r >= bar) ? "pass" : "MISS"
                if (flag["nginx", p] flag["rulegate", p] ~ /\*/) disturbed = 1
            }
            if (disturbed) printf "* other processes used more than %d%% of a core during a measurement (see detail)\n", omax
        }' "$RESULTS"
done
if [ -n "$FLOOR_MODE" ]; then
    echo
    echo "the floor (bench/floor: rulegate's tokio + hyper stack, no policy, no log, no metrics), against" \
        "nginx with logging $FLOOR_MODE"
    # nginx measured in rounds: the floor is compared with the median of them
    awk -F'\t' -v mode="$FLOOR_MODE" -v omax="$OTHERS_MAX" "$AWK_MEDIAN"'
        $1 == mode { rps[$2, $3] = rps[$2, $3] " " $4; p99[$2, $3] = $5; flag[$2, $3] = ($14 > omax) ? "*" : " " }
        END {
            printf "%-8s %-52s %12s %9s %12s\n", "path", "floor", "req/s", "p99", "floor/nginx"
            what["/health"] = "static answer"
            what["/data"] = "hyper-util legacy Client (as rulegate)"
            what["/data2"] = "hand-rolled pool of hyper::client::conn::http1"
            n = split("/health /data /data2", paths, " ")
            for (i = 1; i <= n; i++) {
                p = paths[i]; q = (p == "/data2") ? "/data" : p
                printf "%-8s %-52s %11.0f%s %9s %12.2f\n", q, what[p], median(rps["floor", p]), flag["floor", p], \
                    p99["floor", p], median(rps["floor", p]) / median(rps["nginx", q])
            }
        }' "$RESULTS"
fi
echo
echo "detail: CPU in % of one core over each measurement; 'others' = what processes other than the"
echo "server, the backend and wrk used on the two cores (another job, kernel threads); server CPU time"
echo "per request in µs (user + system) — the cost, nearly independent of what else runs"
printf '%-4s %-9s %-8s %5s %9s %9s %6s %8s %8s %5s %6s %6s %7s %-11s %14s  %s\n' log server path round req/s p99 non2xx \
    server% backend% wrk% core0% core1% others% "saturated" "µs/req u+s" "load avg before → after"
awk -F'\t' '{
    sat = ($9 >= 90) ? (($13 >= 90) ? "both" : "server") : (($13 >= 90) ? "core " cc : "neither")
    printf "%-4s %-9s %-8s %5s %9.0f %9s %6s %8s %8s %5s %6s %6s %7s %-11s %14s  %s → %s%s\n", \
    $1, $2, $3, $20, $4, $5, $7, $9, $10, $11, $12, $13, $14, sat, sprintf("%.1f+%.1f", $18, $19), $15, $16, \
    ($8 == "none") ? "" : "  socket errors: " $8 }' cc="$CLIENT_CPU" "$RESULTS"
echo "saturated: which of the server (≥ 90% of its core) and core $CLIENT_CPU (wrk + backend, ≥ 90% busy) was"
echo "the limit; where core $CLIENT_CPU is, the server could have answered more than wrk asked of it"
