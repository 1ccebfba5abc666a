#!/usr/bin/env bash
# Does a tag purge over many objects stall request serving? Fills edgecache with OBJECTS
# distinct 1 KiB objects tagged `bulk`, then measures the latency of HITs on an untagged URL
# (wrk, -c64, DURATION s) twice: once alone, once with `POST /purge {"tag": "bulk"}` sent a
# second into the run. Prints both wrk latency lines, the p99s and the purge's answer and time.
#
# usage: benches/purge/run.sh      (needs nginx, wrk and the peers' test files: benches/peers/setup.sh)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "$0")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
PEERS_DIR=$ROOT/target/peers
OBJECTS=${OBJECTS:-100000}
DURATION=${DURATION:-10}
EDGE=127.0.0.1:9012
ADMIN=127.0.0.1:9013
[ -f "$PEERS_DIR/data/files/1k.bin" ] || { echo "run benches/peers/setup.sh first" >&2; exit 1; }
mkdir -p "$PEERS_DIR/run"
SHM=$(mktemp -d /dev/shm/edgecache-purge.XXXXXX); chmod 755 "$SHM"; mkdir -p "$SHM/origin"
ln -sfn "$SHM" "$PEERS_DIR/run/shm"
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$SHM"; }
trap cleanup EXIT
nginx -p "$PEERS_DIR/" -c "$HERE/origin.nginx.conf" -e "$PEERS_DIR/run/purge-origin.error.log" &
PIDS+=($!)
(cd "$ROOT" && exec target/release/edgecache --listen "$EDGE" --origin http://127.0.0.1:9011 \
    --max-memory 1GiB --admin-listen "$ADMIN" >/dev/null 2>"$PEERS_DIR/run/purge-edge.err") &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://$EDGE/hot/1k.bin" && break; sleep 0.1; done
# The tagged objects: OBJECTS distinct query strings of one file.
cat > "$PEERS_DIR/run/fill.lua" <<LUA
local i = 0
request = function() i = i + 1; return wrk.format("GET", "/1k.bin?o=" .. i) end
LUA
wrk -t1 -c32 -d60s -s "$PEERS_DIR/run/fill.lua" "http://$EDGE" >/dev/null &
FILL=$!
for _ in $(seq 600); do
    n=$(curl -s "http://$ADMIN/stats" | sed 's/.*"entries":\([0-9]*\).*/\1/')
    [ "${n:-0}" -ge "$OBJECTS" ] && break
    sleep 0.1
done
kill $FILL 2>/dev/null || true; wait $FILL 2>/dev/null || true
echo "stored: $(curl -s "http://$ADMIN/stats")"
run() {  # LABEL [purge]
    local purger=
    if [ "${2:-}" = purge ]; then
        (sleep 1; curl -s -w ' in %{time_total} s' -XPOST "http://$ADMIN/purge" \
            -H 'content-type: application/json' -d '{"tag": "bulk"}' >"$PEERS_DIR/run/purge.out") &
        purger=$!
    fi
    wrk -t1 -c64 -d"${DURATION}s" --latency "http://$EDGE/hot/1k.bin" >"$PEERS_DIR/run/$1.wrk"
    [ -z "$purger" ] || wait "$purger"
    printf '%-14s %s   p99 %s\n' "$1" "$(grep 'Requests/sec' "$PEERS_DIR/run/$1.wrk")" \
        "$(awk '$1 == "99%" {print $2}' "$PEERS_DIR/run/$1.wrk")"
}
run alone
run during-purge purge
echo "purge answered: $(cat "$PEERS_DIR/run/purge.out")"
