#!/usr/bin/env bash
# Does max_memory hold under a flood? Starts an nginx origin (origin.nginx.conf) and, for each
# case, a fresh edgecache; floods it for DURATION s, then reports its peak RSS (VmHWM) above
# the idle process (VmRSS before the flood), against max_memory and the target
# peak <= 1.1 x max_memory + 40 MiB. Cases:
#   flood SIZE at MEM   distinct keys of SIZE objects (wrk -t1 -c32), every request a stored MISS
#   vary at MEM         1024 URLs of 16 KiB asked with ever new X-V values (Vary: X-V)
#   slow at MEM         SLOW clients that ask for a 16 MiB no-store answer and read nothing
#   varnish 16k at MEM  Varnish malloc,MEM on the same 16 KiB flood (if varnishd is installed)
# Each case runs ROUNDS times; the table has every run and the median of the ratios.
#
# usage: benches/flood/run.sh           (nginx, wrk, python3; a release build: cargo build --release)
#   MEMS="64MiB 256MiB" SIZES="1k 16k 256k" DURATION=20 SLOW=2000 ROUNDS=1 CASES="flood vary slow varnish"
#   BIN=path/to/edgecache             (default target/release/edgecache)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
WORK=${WORK:-$ROOT/target/flood}
BIN=${BIN:-$ROOT/target/release/edgecache}
MEMS=${MEMS:-"64MiB 256MiB"}
SIZES=${SIZES:-"1k 16k 256k"}
DURATION=${DURATION:-20}
SLOW=${SLOW:-2000}
HOLD=${HOLD:-20}
ROUNDS=${ROUNDS:-1}
CASES=${CASES:-"flood vary slow varnish"}
EDGE=127.0.0.1:9022
ADMIN=127.0.0.1:9023
VARNISH=127.0.0.1:9024
ulimit -n 65536 2>/dev/null || ulimit -n 16384 || true
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first" >&2; exit 1; }
mkdir -p "$WORK/data" "$WORK/run/tmp"
for s in 1k:1024 16k:16384 256k:262144 16m:16777216; do
    f="$WORK/data/${s%%:*}.bin"
    [ -f "$f" ] || head -c "${s##*:}" /dev/urandom >"$f"
done
PIDS=()
cleanup() { [ ${#PIDS[@]} -eq 0 ] || kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT
nginx -p "$WORK/" -c "$HERE/origin.nginx.conf" -e "$WORK/run/origin.error.log" &
PIDS+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:9021/1k.bin && break; sleep 0.1; done

kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
mib_of() {  # 64MiB -> 64, 1GiB -> 1024
    case $1 in *GiB) echo $(( ${1%GiB} * 1024 ));; *MiB) echo "${1%MiB}";; esac
}
start_edge() {  # MEM
    "$BIN" --listen "$EDGE" --origin http://127.0.0.1:9021 --max-memory "$1" \
        --admin-listen "$ADMIN" >/dev/null 2>"$WORK/run/edge.err" &
    EDGE_PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null "http://$EDGE/healthz" && break; sleep 0.1; done
    sleep 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
record() {  # CASE MEM IDLE_KIB PEAK_KIB NOTE
    local mem; mem=$(mib_of "$2")
    awk -v c="$1" -v m="$mem" -v i="$3" -v p="$4" -v n="$5" 'BEGIN {
        above = (p - i) / 1024; peak = p / 1024;
        printf "%s\t%d\t%.1f\t%.1f\t%.2f\t%s\t%s\n", c, m, i / 1024, peak, above / m,
            (peak <= 1.1 * m + 40 ? "yes" : "NO"), n }' | tee -a "$RESULTS"
}
flood() {  # PID URL PATH [vary]
    wrk -t1 -c32 -d"${DURATION}s" -s "$HERE/flood.lua" "$2" -- "$3" "r$RANDOM$RANDOM" ${4:-} \
        >"$WORK/run/wrk.out" 2>&1
    awk '/Requests\/sec/ {printf "%d req/s", $2}' "$WORK/run/wrk.out"
}
printf 'case\tmax_memory MiB\tidle MiB\tpeak MiB\t(peak-idle)/max_memory\t<= 1.1x+40MiB\tnote\n' | tee -a "$RESULTS"
for round in $(seq "$ROUNDS"); do
  for mem in $MEMS; do
    if [[ " $CASES " == *" flood "* ]]; then
      for size in $SIZES; do
        start_edge "$mem"; idle=$(kib "$EDGE_PID" VmRSS)
        note=$(flood "$EDGE_PID" "http://$EDGE" "/$size.bin")
        used=$(curl -s "http://$ADMIN/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["entries"], d["bytes"] >> 20)')
        record "flood $size" "$mem" "$idle" "$(kib "$EDGE_PID" VmHWM)" "$note; stored ${used% *} objects, ${used#* } MiB"
        stop "$EDGE_PID"
      done
    fi
    if [[ " $CASES " == *" vary "* ]]; then
      start_edge "$mem"; idle=$(kib "$EDGE_PID" VmRSS)
      note=$(flood "$EDGE_PID" "http://$EDGE" "/16k.bin" vary)
      record "vary 16k" "$mem" "$idle" "$(kib "$EDGE_PID" VmHWM)" "$note"
      stop "$EDGE_PID"
    fi
    if [[ " $CASES " == *" slow "* ]]; then
      start_edge "$mem"; idle=$(kib "$EDGE_PID" VmRSS)
      note=$(python3 "$HERE/slow_readers.py" 127.0.0.1 "${EDGE##*:}" /nostore/16m.bin "$SLOW" "$HOLD")
      record "slow x$SLOW" "$mem" "$idle" "$(kib "$EDGE_PID" VmHWM)" "$note"
      stop "$EDGE_PID"
    fi
    if [[ " $CASES " == *" varnish "* ]] && command -v varnishd >/dev/null; then
      rm -rf "$WORK/run/varnish"
      sed 's/9001/9021/' "$ROOT/benches/peers/conf/varnish.vcl" >"$WORK/run/varnish.vcl"
      varnishd -F -a "$VARNISH" -T none -f "$WORK/run/varnish.vcl" -s "malloc,$(mib_of "$mem")m" \
          -n "$WORK/run/varnish" >"$WORK/run/varnish.log" 2>&1 &
      VPID=$!
      for _ in $(seq 100); do curl -s -o /dev/null "http://$VARNISH/1k.bin" && break; sleep 0.1; done
      sleep 1
      child=$(pgrep -P "$VPID" | head -1)
      idle=$(kib "$child" VmRSS)
      note=$(flood "$child" "http://$VARNISH" "/16k.bin")
      record "varnish 16k" "$mem" "$idle" "$(kib "$child" VmHWM)" "$note"
      stop "$VPID"
    fi
  done
done
echo "median of (peak-idle)/max_memory per case:"
python3 - "$RESULTS" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]).read().splitlines()[1:]:
    f = line.split("\t")
    runs[(f[0], int(f[1]))].append(float(f[4]))
for (case, mem), v in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    print(f"  {case:14} @ {mem:4} MiB  {statistics.median(v):.2f}  (runs: {', '.join(f'{x:.2f}' for x in v)})")
PY
