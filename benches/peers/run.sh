#!/usr/bin/env bash
# edgecache against its peers, on one machine, all on 127.0.0.1:
#
#   origin     nginx serving the test files, Cache-Control: public, max-age=3600   :9001
#   nginx      nginx proxy_cache (cache on tmpfs, upstream keepalive)               :9101
#   varnish    Varnish, malloc storage, built-in VCL + X-Cache                      :9102
#   edgecache  target/release/edgecache --origin http://127.0.0.1:9001 --max-memory 1GiB [EDGE_ARGS]  :9103
#   ceiling    benches/peers/ceiling: axum + moka serving the files preloaded,     :9104
#              no cache logic (the stack's own limit for a HIT)
#   base       with BASE_BIN=path: another edgecache build, same flags (an A/B of   :9105
#              two commits in one run, e.g. a worktree of the base commit's build)
#
# It builds edgecache and the ceiling, starts everything, warms every cache and checks that a
# second pass is all HITs that never reach the origin, then loads each target with wrk in
# interleaved rounds (per round, per size, every target once), optionally MISS rounds, and
# prints medians and edgecache's per-round ratios to the ceiling, nginx and Varnish. It stops
# what it started (by PID) however it ends. Scratch and results go to target/peers/.
#
# usage: benches/peers/run.sh                 (see benches/peers/README.md for the knobs)
set -euo pipefail
# nginx and varnishd live in /usr/sbin, which is not on a normal user's PATH on Debian.
export PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "$0")" && pwd -P)      # benches/peers
ROOT=$(cd "$HERE/../.." && pwd -P)          # the repository
PEERS_DIR=${PEERS_DIR:-$ROOT/target/peers}  # scratch: data, run, results, ceiling build
DATA="$PEERS_DIR/data/files"
RUN="$PEERS_DIR/run"                        # this run's logs, pid files, wrk output
RESULTS="$PEERS_DIR/results"

# ---- knobs -----------------------------------------------------------------------------------
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}              # seconds per HIT run
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}                 # wrk threads: one leaves the other core to the server
SIZES=${SIZES:-"1k 256k"}             # any of 1k 16k 256k 1m
MISS=${MISS:-1}                       # 0: HIT rounds only
MISS_SIZES=${MISS_SIZES:-"1k"}
MISS_DURATION=${MISS_DURATION:-5}
WARMUP=${WARMUP:-2}                   # unrecorded wrk seconds per target before round 1
PAUSE=${PAUSE:-1}                     # seconds between runs, for the machine to settle
EDGE_ARGS=${EDGE_ARGS:-}              # extra edgecache flags, e.g. "--config loops.toml"
# The cache budget, as large as Varnish's storage (nginx's max_size is 4g): with the default
# 256 MiB, MISS rounds fill edgecache's store to eviction while the peers never evict.
EDGE_MEMORY=${EDGE_MEMORY:-1GiB}
EDGE_LOG=${EDGE_LOG:-/dev/null}       # where edgecache's stdout (its access log) goes
NO_BUILD=${NO_BUILD:-0}               # 1: use the binaries already built
BASE_BIN=${BASE_BIN:-}                # another edgecache binary to measure beside this one
VARNISH_STORAGE=${VARNISH_STORAGE:-malloc,1G}
SHM_BASE=${SHM_BASE:-/dev/shm}        # tmpfs for nginx's cache and Varnish's work dir

# Fixed, so that results from different runs name the same things; all loopback.
declare -A PORT=([origin]=9001 [nginx]=9101 [varnish]=9102 [edgecache]=9103 [ceiling]=9104 [base]=9105)
# The header each target sets on a cache HIT (lower case, compared case-insensitively).
declare -A HIT_HEADER=(
    [nginx]='x-cache-status: hit' [varnish]='x-cache: hit'
    [edgecache]='x-cache: hit' [ceiling]='x-cache: hit' [base]='x-cache: hit'
)
declare -A SIZE_BYTES=([1k]=1024 [16k]=16384 [256k]=262144 [1m]=1048576)
# The order within a round. The ceiling and edgecache run back to back, so their ratio,
# the one that matters most, compares two runs as close in time as possible.
TARGETS=(nginx varnish ceiling edgecache)
if [ -n "$BASE_BIN" ]; then
    TARGETS+=(base)   # right after edgecache: an A/B as close in time as the ceiling's
fi

EDGE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/edgecache"
CEILING_TARGET="$PEERS_DIR/ceiling-target"
CEILING_BIN="$CEILING_TARGET/release/peers-ceiling"

say() { echo "peers: $*" >&2; }
die() { echo "peers: ERROR: $*" >&2; exit 1; }

# ---- preflight: everything that can be checked before anything starts ---------------------
for k in ROUNDS DURATION CONNS THREADS MISS_DURATION WARMUP PAUSE; do
    [[ ${!k} =~ ^[0-9]+$ ]] || die "$k must be a whole number, not '${!k}'"
done
if [ "$ROUNDS" -lt 1 ] || [ "$DURATION" -lt 1 ]; then die "ROUNDS and DURATION must be at least 1"; fi
[ "$MISS" = 0 ] || [ "$MISS" = 1 ] || die "MISS must be 0 or 1, not '$MISS'"
read -ra SIZE_LIST <<<"$SIZES"
read -ra MISS_SIZE_LIST <<<"$MISS_SIZES"
read -ra EDGE_EXTRA <<<"$EDGE_ARGS"
[ "${#SIZE_LIST[@]}" -gt 0 ] || die "SIZES is empty"
for s in "${SIZE_LIST[@]}" "${MISS_SIZE_LIST[@]}"; do
    [ -n "${SIZE_BYTES[$s]:-}" ] || die "unknown size '$s' (known: 1k 16k 256k 1m)"
done

# Tools or test files missing: setup.sh installs/generates them (it needs root for apt-get).
need_setup=0
for bin in nginx varnishd wrk curl ss python3 timeout getconf; do
    command -v "$bin" >/dev/null 2>&1 || need_setup=1
done
for s in 1k 16k 256k 1m; do [ -f "$DATA/$s.bin" ] || need_setup=1; done
if [ "$need_setup" = 1 ]; then
    say "tools or test files missing: running benches/peers/setup.sh"
    PEERS_DIR="$PEERS_DIR" "$HERE/setup.sh" || die "setup.sh failed; see its output above"
fi
for bin in nginx varnishd wrk curl ss python3 timeout getconf; do
    command -v "$bin" >/dev/null 2>&1 || die "missing '$bin' (benches/peers/setup.sh installs it)"
done
if [ "$NO_BUILD" != 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "missing 'cargo' (or set NO_BUILD=1 with the binaries built)"
fi

# Every port must be free: a server already there would be measured in place of ours (or
# ours would fail to bind, later and less clearly).
for t in origin "${TARGETS[@]}"; do
    held=$(ss -ltnpH "sport = :${PORT[$t]}")
    [ -z "$held" ] || die "port ${PORT[$t]} ($t) is already in use: $held"
done

# ---- build, before anything runs: a compile during a run would be measured too -------------
if [ "$NO_BUILD" = 1 ]; then
    say "NO_BUILD=1: using the binaries as built"
else
    say "building edgecache (cargo build --release; waits if another cargo holds the lock)"
    (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    say "building the ceiling"
    cargo build --release --manifest-path "$HERE/ceiling/Cargo.toml" --target-dir "$CEILING_TARGET" \
        || die "the ceiling's build failed"
fi
[ -x "$EDGE_BIN" ] || die "$EDGE_BIN not found (run without NO_BUILD=1)"
[ -x "$CEILING_BIN" ] || die "$CEILING_BIN not found (run without NO_BUILD=1)"
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN" ] || die "BASE_BIN=$BASE_BIN is not an executable"

# ---- process bookkeeping: stop exactly what we started ---------------------------------------
STARTED=()     # "name:pid" of every server started here
SHM_DIR=""
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null; }
cleanup() {
    local rc=$? entry pid
    trap - EXIT INT TERM
    # TERM all first, so they shut down in parallel (edgecache drains for up to 10 s)
    for entry in "${STARTED[@]}"; do kill -TERM "${entry#*:}" 2>/dev/null || true; done
    for entry in "${STARTED[@]}"; do
        pid=${entry#*:}
        for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            say "${entry%%:*} (pid $pid) ignored TERM for 15 s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$SHM_DIR" ]; then rm -rf "$SHM_DIR"; fi
    rm -f "$RUN/shm"
    [ "${#STARTED[@]}" -eq 0 ] || say "stopped the ${#STARTED[@]} server(s) started here"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$RUN"
mkdir -p "$RUN" "$RESULTS"
# nginx's temp and cache directories and Varnish's work dir, on tmpfs: nothing here should be
# measured waiting on a disk. run/shm is a link to it, so the nginx confs can name it relatively.
if [ -d "$SHM_BASE" ] && [ -w "$SHM_BASE" ]; then
    SHM_DIR=$(mktemp -d "$SHM_BASE/edgecache-peers.XXXXXX")
else
    say "WARNING: $SHM_BASE is not a writable directory: nginx's cache goes to disk"
    SHM_DIR=$(mktemp -d "$RUN/shm-dir.XXXXXX")
fi
chmod 755 "$SHM_DIR"            # nginx workers run as an unprivileged user
mkdir -p "$SHM_DIR/origin" "$SHM_DIR/nginx"
ln -sfn "$SHM_DIR" "$RUN/shm"

log_tail() { tail -n 5 "$1" 2>/dev/null | sed 's/^/    /'; }

# Waits until PORT is listening, and fails at once if the process died (with its log).
wait_listening() {  # NAME PID PORT LOG
    local tries
    for tries in $(seq 200); do
        [ -z "$(ss -ltnH "sport = :$3")" ] || return 0
        alive "$2" || die "$1 exited at start; $4 says:"$'\n'"$(log_tail "$4")"
        sleep 0.1
    done
    die "$1 is not listening on 127.0.0.1:$3 after $((tries / 10)) s; $4 says:"$'\n'"$(log_tail "$4")"
}

start_nginx() {  # NAME CONF  (nginx -p makes every relative path in CONF relative to PEERS_DIR)
    local log="$RUN/$1.error.log"
    nginx -t -q -p "$PEERS_DIR/" -c "$HERE/conf/$2" -e "$log" \
        || die "nginx -t rejected conf/$2:"$'\n'"$(log_tail "$log")"
    nginx -p "$PEERS_DIR/" -c "$HERE/conf/$2" -e "$log" >"$RUN/$1.out" 2>&1 &
    STARTED+=("$1:$!")
    wait_listening "$1" "$!" "${PORT[$1]}" "$log"
}

# ---- start -----------------------------------------------------------------------------------
start_nginx origin origin.nginx.conf
start_nginx nginx cache.nginx.conf

# -F: stay in the foreground, so $! is the manager's PID. -T none: no management CLI socket
# (nothing here uses varnishadm). -n: its work dir, on tmpfs as Varnish recommends.
varnishd -F -a "127.0.0.1:${PORT[varnish]}" -T none -f "$HERE/conf/varnish.vcl" \
    -s "$VARNISH_STORAGE" -n "$SHM_DIR/varnish" >"$RUN/varnish.log" 2>&1 &
STARTED+=("varnish:$!")
wait_listening varnish "$!" "${PORT[varnish]}" "$RUN/varnish.log"

"$CEILING_BIN" "127.0.0.1:${PORT[ceiling]}" "$DATA" >"$RUN/ceiling.log" 2>&1 &
STARTED+=("ceiling:$!")
wait_listening ceiling "$!" "${PORT[ceiling]}" "$RUN/ceiling.log"

# edgecache runs from the repository root, so relative paths in EDGE_ARGS (--config loops.toml)
# mean what they would on the command line there. stdout carries its access log (a line per
# request, formatted and written: part of what a HIT costs); stderr gets start-up errors.
# EDGECACHE_* and RUST_LOG from the caller's environment are dropped, so that EDGE_ARGS is the
# one way to change edgecache's configuration and the header below tells the whole story.
(cd "$ROOT" && unset "${!EDGECACHE_@}" RUST_LOG && exec "$EDGE_BIN" --listen "127.0.0.1:${PORT[edgecache]}" \
    --origin "http://127.0.0.1:${PORT[origin]}" --max-memory "$EDGE_MEMORY" "${EDGE_EXTRA[@]}" \
    >"$EDGE_LOG" 2>"$RUN/edgecache.err") &
STARTED+=("edgecache:$!")
wait_listening edgecache "$!" "${PORT[edgecache]}" "$RUN/edgecache.err"

if [ -n "$BASE_BIN" ]; then
    (cd "$ROOT" && unset "${!EDGECACHE_@}" RUST_LOG && exec "$BASE_BIN" --listen "127.0.0.1:${PORT[base]}" \
        --origin "http://127.0.0.1:${PORT[origin]}" --max-memory "$EDGE_MEMORY" "${EDGE_EXTRA[@]}" \
        >"$EDGE_LOG" 2>"$RUN/base.err") &
    STARTED+=("base:$!")
    wait_listening base "$!" "${PORT[base]}" "$RUN/base.err"
fi

# The PIDs whose CPU is charged to each target: every process holding its listening socket
# (nginx's master and workers; Varnish's manager and child).
port_pids() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | tr '\n' ' '; }
declare -A TPIDS
for t in origin "${TARGETS[@]}"; do
    TPIDS[$t]=$(port_pids "${PORT[$t]}")
    [ -n "${TPIDS[$t]}" ] || die "cannot see which processes listen on ${PORT[$t]} ($t)"
done

# Loopback only: nothing started here may listen on any other address.
for t in origin "${TARGETS[@]}"; do
    for pid in ${TPIDS[$t]}; do
        off=$(ss -ltnpH | grep "pid=$pid," | awk '$4 !~ /^(127\.|\[::1\]:)/' || true)
        [ -z "$off" ] || die "$t listens off loopback: $off"
    done
done

ticks() {  # PID... -> utime + stime of all their threads, in clock ticks
    local pid sum=0 t
    for pid in "$@"; do
        # fields after "PID (comm) ": 12 and 13 are utime and stime (stat fields 14, 15)
        t=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
machine_busy_ticks() {  # every CPU's non-idle time so far (user nice system irq softirq steal)
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
# The origin's request counter (nginx stub_status: the third line is "accepts handled
# requests"). Each read is itself one request, which callers subtract.
origin_requests() {
    curl -fsS --max-time 2 "http://127.0.0.1:${PORT[origin]}/__requests" | awk 'NR == 3 { print $3 }'
}

TS=$(date +%Y%m%d-%H%M%S)
RAW="$RESULTS/$TS-raw.txt"
SUMMARY="$RESULTS/$TS-summary.txt"
CLK_TCK=$(getconf CLK_TCK)

# ---- what was measured, on what ----------------------------------------------------------------
{
    echo "# benches/peers run $TS"
    echo "# host: $(uname -srm), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB"
    echo "# $(nginx -v 2>&1) | $(varnishd -V 2>&1 | head -1) | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    echo "# edgecache: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' + uncommitted changes in src/ or Cargo.*'), args: --listen 127.0.0.1:${PORT[edgecache]} --origin http://127.0.0.1:${PORT[origin]} --max-memory ${EDGE_MEMORY} ${EDGE_ARGS} (stdout to $EDGE_LOG)"
    [ -z "$BASE_BIN" ] || echo "# base: $BASE_BIN ($(stat -c %y "$BASE_BIN" | cut -d. -f1)), same args, on 127.0.0.1:${PORT[base]}"
    echo "# wrk -t$THREADS -c$CONNS, HIT ${DURATION}s x $ROUNDS round(s) of sizes: $SIZES; MISS: $([ "$MISS" = 1 ] && echo "${MISS_DURATION}s, sizes: $MISS_SIZES" || echo off)"
    echo "# targets (pids): $(for t in origin "${TARGETS[@]}"; do printf '%s=:%s(%s) ' "$t" "${PORT[$t]}" "${TPIDS[$t]% }"; done)"
    echo "# varnish -s $VARNISH_STORAGE; tmpfs: $SHM_DIR; wrk and the servers share the $(nproc) CPUs"
} | tee "$SUMMARY" >&2
cp "$SUMMARY" "$RAW"     # the raw file starts with the same header (# lines are skipped)

# ---- warm, then prove that the HIT runs will measure HITs --------------------------------------
say "warming: one GET per target and size, then a checked pass"
for t in "${TARGETS[@]}"; do
    for s in "${SIZE_LIST[@]}"; do
        curl -fsS -o /dev/null --max-time 10 "http://127.0.0.1:${PORT[$t]}/$s.bin" \
            || die "$t: GET /$s.bin failed"
    done
done
sleep 0.5   # let anything a fill does after the last byte (storing it) finish
for t in "${TARGETS[@]}"; do
    before=$(origin_requests)
    for s in "${SIZE_LIST[@]}"; do
        got=$(curl -sS -o /dev/null -D "$RUN/warm.headers" -w '%{http_code} %{size_download}' \
            --max-time 10 "http://127.0.0.1:${PORT[$t]}/$s.bin" || true)
        [ "$got" = "200 ${SIZE_BYTES[$s]}" ] \
            || die "$t: /$s.bin answered '$got' after warming, expected '200 ${SIZE_BYTES[$s]}'"
        tr -d '\r' <"$RUN/warm.headers" | grep -qix "${HIT_HEADER[$t]}" \
            || die "$t: /$s.bin is not a HIT after warming (no '${HIT_HEADER[$t]}'):"$'\n'"$(sed 's/^/    /' "$RUN/warm.headers")"
    done
    leaked=$(( $(origin_requests) - before - 1 ))
    [ "$leaked" -eq 0 ] || die "$t sent $leaked request(s) to the origin on the warm pass: not caching"
done
echo "# warm: every target answers every size with its HIT header, and a warm pass sent 0 requests to the origin" \
    | tee -a "$SUMMARY" >&2

# ---- one measured run ------------------------------------------------------------------------
run_one() {  # MODE ROUND TARGET SIZE SECONDS
    local mode=$1 round=$2 t=$3 s=$4 secs=$5
    local url="http://127.0.0.1:${PORT[$t]}/$s.bin" script="$HERE/lua/result.lua" extra=()
    local o0 o1 c0 c1 oc0 oc1 m0 m1 result
    if [ "$mode" = miss ]; then
        script="$HERE/lua/miss.lua"
        extra=(-- "$TS-r$round-$t")   # a query-string prefix no earlier run used
    fi
    # shellcheck disable=SC2086  # the PID lists are meant to split into words
    { o0=$(origin_requests); c0=$(ticks ${TPIDS[$t]}); oc0=$(ticks ${TPIDS[origin]}); m0=$(machine_busy_ticks); }
    # bash's `time` reports the CPU of wrk (reaped by timeout, so counted as ours)
    local TIMEFORMAT='%U %S'
    { time timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s \
        -s "$script" "$url" "${extra[@]}" >"$RUN/wrk.out" 2>"$RUN/wrk.err" || true; } 2>"$RUN/wrk.time"
    # shellcheck disable=SC2086
    { m1=$(machine_busy_ticks); c1=$(ticks ${TPIDS[$t]}); oc1=$(ticks ${TPIDS[origin]}); o1=$(origin_requests); }
    result=$(sed -n 's/^WRK_RESULT //p' "$RUN/wrk.out")
    if [ -z "$result" ]; then
        say "WARNING: wrk gave no result for $mode $t $s:"$'\n'"$(log_tail "$RUN/wrk.err")"
        return 0
    fi
    echo "mode=$mode round=$round target=$t size=$s $result origin_reqs=$((o1 - o0 - 1))" \
        "srv_ticks=$((c1 - c0)) origin_ticks=$((oc1 - oc0)) machine_ticks=$((m1 - m0)) clk_tck=$CLK_TCK" \
        "wrk_cpu_s=$(awk '{ printf "%.2f", $1 + $2 }' "$RUN/wrk.time")" >>"$RAW"
    python3 "$HERE/summarize.py" --last "$RAW" >&2
    for pid in ${TPIDS[$t]}; do
        alive "$pid" || die "$t (pid $pid) died during the run"
    done
    sleep "$PAUSE"
}

# Unrecorded: gets every server's threads, connections and allocator into their steady state
# before round 1, so the first target of round 1 is not the only one measured cold.
if [ "$WARMUP" -gt 0 ]; then
    say "warm-up: ${WARMUP}s of wrk per target (not recorded)"
    for t in "${TARGETS[@]}"; do
        timeout $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" \
            "http://127.0.0.1:${PORT[$t]}/${SIZE_LIST[0]}.bin" >/dev/null 2>&1 || true
    done
fi

# HIT rounds. Targets alternate within each round, so a slow minute of the machine hits all of
# them alike, and the per-round ratios cancel it.
for r in $(seq "$ROUNDS"); do
    say "HIT round $r/$ROUNDS"
    for s in "${SIZE_LIST[@]}"; do
        for t in "${TARGETS[@]}"; do run_one hit "$r" "$t" "$s" "$DURATION"; done
    done
done

# MISS rounds come last: each fills the caches with thousands of new objects, which would
# change the HIT rounds' caches (and their memory) if they came first. The ceiling has no
# origin, so no MISS path.
if [ "$MISS" = 1 ] && [ "${#MISS_SIZE_LIST[@]}" -gt 0 ]; then
    for r in $(seq "$ROUNDS"); do
        say "MISS round $r/$ROUNDS"
        for s in "${MISS_SIZE_LIST[@]}"; do
            for t in "${TARGETS[@]}"; do
                [ "$t" = ceiling ] || run_one miss "$r" "$t" "$s" "$MISS_DURATION"
            done
        done
    done
fi

# ---- summary -----------------------------------------------------------------------------------
echo >>"$SUMMARY"
python3 "$HERE/summarize.py" "$RAW" | tee -a "$SUMMARY"
say "raw: $RAW"
say "summary: $SUMMARY"
