#!/usr/bin/env bash
# Instructions per 1 KiB MISS (callgrind), as BENCHMARKS.md measures it: the edge under
# valgrind with an 8 MiB budget (so the store evicts), wrk -t1 -c16 with every request a new
# key, a WARMUP s warm-up, then the counters zeroed, WINDOW s of load, a dump: Ir / requests.
# usage: benches/flood/callgrind_miss.sh [BIN]   (the origin of run.sh must not be running)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
WORK=${WORK:-$ROOT/target/flood}
BIN=${1:-$ROOT/target/release/edgecache}
WARMUP=${WARMUP:-5}
WINDOW=${WINDOW:-15}
mkdir -p "$WORK/data" "$WORK/run/tmp" "$WORK/cg"
[ -f "$WORK/data/1k.bin" ] || head -c 1024 /dev/urandom >"$WORK/data/1k.bin"
PIDS=()
cleanup() { [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT
nginx -p "$WORK/" -c "$HERE/origin.nginx.conf" -e "$WORK/run/origin.error.log" &
PIDS+=($!)
OUT="$WORK/cg/cg.$(date +%s)"
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" --listen 127.0.0.1:9025 \
    --origin http://127.0.0.1:9021 --max-memory 8MiB --admin-listen 127.0.0.1:9026 \
    >/dev/null 2>"$WORK/run/cg.err" &
VG=$!
PIDS+=($VG)
for _ in $(seq 300); do curl -s -o /dev/null http://127.0.0.1:9025/healthz && break; sleep 0.2; done
wrk -t1 -c16 -d"${WARMUP}s" -s "$HERE/flood.lua" http://127.0.0.1:9025 -- /1k.bin "w$RANDOM" >/dev/null
callgrind_control -z "$VG" >/dev/null
wrk -t1 -c16 -d"${WINDOW}s" -s "$HERE/flood.lua" http://127.0.0.1:9025 -- /1k.bin "m$RANDOM" >"$WORK/run/cg.wrk"
callgrind_control -d "$VG" >/dev/null
sleep 1
n=$(awk '/requests in/ {print $1}' "$WORK/run/cg.wrk")
dump=$(ls -t "$OUT"* | head -1)
ir=$(awk '/^summary:/ {print $2} /^totals:/ {print $2}' "$dump" | head -1)
echo "$(basename "$BIN"): $n MISSes, $ir Ir, $((ir / n)) Ir per MISS ($dump)"
