#!/usr/bin/env bash
# Instructions per request of an edgecache binary, counted by callgrind over a fixed window of
# load: repeatable whatever else the machine is doing (BENCHMARKS.md, "Instruction counts").
#
#   benches/peers/callgrind.sh [BIN] [hit|miss] [1k|16k|256k|1m]
#
# BIN defaults to target/release/edgecache. Needs nginx (the origin, on :9001), wrk and valgrind;
# run benches/peers/run.sh once first (it makes the test files). Prints `Ir/request N`;
# KEEP=file keeps the profile for callgrind_annotate.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
BIN=${1:-$ROOT/target/release/edgecache}
MODE=${2:-hit}
SIZE=${3:-1k}
PORT=${PORT:-9113}
PEERS_DIR=${PEERS_DIR:-$ROOT/target/peers}
WARM=${WARM:-5}
WINDOW=${WINDOW:-15}
OUT=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$OUT"; }
trap cleanup EXIT

[ -d "$PEERS_DIR/data/files" ] || { echo "callgrind: run benches/peers/run.sh once first (test files)" >&2; exit 1; }
if ! curl -fso /dev/null "http://127.0.0.1:9001/$SIZE.bin"; then
    # The origin as run.sh starts it: paths relative to the scratch directory.
    mkdir -p "$PEERS_DIR/run" "$OUT/shm/origin"
    ln -sfn "$OUT/shm" "$PEERS_DIR/run/shm"
    nginx -p "$PEERS_DIR/" -c "$HERE/conf/origin.nginx.conf" -e "$OUT/origin-error.log" &
    pids+=($!)
    for _ in $(seq 1 50); do curl -fso /dev/null "http://127.0.0.1:9001/$SIZE.bin" && break; sleep 0.1; done
fi
args=(--listen "127.0.0.1:$PORT" --origin http://127.0.0.1:9001 --admin-listen "127.0.0.1:0")
script=()
if [ "$MODE" = miss ]; then
    args+=(--max-memory 8MiB)
    script=(-s "$HERE/lua/miss.lua")
fi
valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" "${args[@]}" > /dev/null 2> "$OUT/valgrind.log" &
pids+=($!)
for _ in $(seq 1 200); do curl -fso /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
url="http://127.0.0.1:$PORT/$SIZE.bin"
wrk -t1 -c16 -d"${WARM}s" "${script[@]}" "$url" > /dev/null
callgrind_control -z "${pids[-1]}" > /dev/null
wrk -t1 -c16 -d"${WINDOW}s" "${script[@]}" "$url" > "$OUT/wrk.txt"
callgrind_control -d "${pids[-1]}" > /dev/null
sleep 1
requests=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
ir=$(ls -t "$OUT"/cg.out* | head -1 | xargs grep -h '^summary:' | awk '{print $2}' | head -1)
[ -n "$ir" ] || ir=$(ls -t "$OUT"/cg.out* | head -1 | xargs grep -h '^totals:' | awk '{print $2}')
[ -z "${KEEP:-}" ] || cp "$(ls -t "$OUT"/cg.out* | head -1)" "$KEEP"
echo "mode=$MODE size=$SIZE requests=$requests Ir=$ir Ir/request $((ir / requests))"
