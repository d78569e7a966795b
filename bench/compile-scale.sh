#!/usr/bin/env bash
# Parse + compile time and peak memory of `rulegate check` at growing route counts: the cost
# must grow linearly (100k routes within 12x of 10k). Policies come from bench/gen-routes.py.
#
#   bench/compile-scale.sh [SERVICES]     SERVICES per policy set (default 1: the worst case,
#                                         every route in one service)
#
# Prints, per size: wall seconds, user+system CPU seconds, peak RSS (MiB). Needs GNU time.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
SERVICES=${1:-1}
command -v /usr/bin/time >/dev/null || { echo "compile-scale.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --bin rulegate >&2)
RULEGATE=${CARGO_TARGET_DIR:-$ROOT/target}/release/rulegate

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rulegate-scale.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

printf '%8s %8s %8s %10s\n' routes wall_s cpu_s peak_MiB
for n in 10000 20000 40000 80000 100000; do
    python3 "$BENCH_DIR/gen-routes.py" "$n" "$TMP/p$n" "$SERVICES"
    /usr/bin/time -f '%e %U %S %M' -o "$TMP/time" "$RULEGATE" check "$TMP/p$n" >/dev/null
    read -r wall user sys rss <"$TMP/time"
    printf '%8d %8s %8.2f %10d\n' "$n" "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))"
    rm -rf "$TMP/p$n"
done
