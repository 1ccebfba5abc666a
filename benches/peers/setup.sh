#!/usr/bin/env bash
# One-time set-up for benches/peers/run.sh:
#   1. installs the peers and the load generator (Debian packages nginx, varnish, wrk) if any
#      is missing, without letting their packaged services start;
#   2. writes the origin's test files (1k, 16k, 256k, 1m of random bytes) to
#      target/peers/data/files/, which is scratch (target/ is gitignored).
# Safe to run again: it installs nothing that is already there and rewrites only files whose
# size is wrong. SKIP_APT=1 only (re)generates the files.
set -euo pipefail
# nginx and varnishd live in /usr/sbin, which is not on a normal user's PATH on Debian.
export PATH="$PATH:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "$0")/../.." && pwd -P)
PEERS_DIR=${PEERS_DIR:-$ROOT/target/peers}
DATA="$PEERS_DIR/data/files"

say() { echo "setup: $*"; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# The binaries run.sh needs, and the Debian package that ships each one.
declare -A PACKAGE_OF=(
    [nginx]=nginx [varnishd]=varnish [wrk]=wrk [curl]=curl [ss]=iproute2
    [python3]=python3 [timeout]=coreutils [getconf]=libc-bin
)

missing_packages() {
    local bin
    for bin in "${!PACKAGE_OF[@]}"; do
        command -v "$bin" >/dev/null 2>&1 || echo "${PACKAGE_OF[$bin]}"
    done | sort -u
}

# ---- 1. packages -----------------------------------------------------------------------------
mapfile -t NEED < <(missing_packages)
if [ "${SKIP_APT:-0}" = 1 ]; then
    [ "${#NEED[@]}" -eq 0 ] || say "SKIP_APT=1, but these are missing: ${NEED[*]}"
elif [ "${#NEED[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${NEED[*]} and no apt-get: install them by hand"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "installing ${NEED[*]} needs root (or sudo)"
        SUDO=(sudo)
    fi
    # Debian starts a service as soon as its package is installed: nginx would take :80 and
    # varnish :6081, with the distribution's configs, and keep running. invoke-rc.d asks
    # /usr/sbin/policy-rc.d first, and exit code 101 means "action forbidden", so nothing
    # starts. Whatever policy-rc.d was there before is put back afterwards.
    POLICY=/usr/sbin/policy-rc.d
    BACKUP=""
    restore_policy() {
        if [ -n "$BACKUP" ]; then
            "${SUDO[@]}" mv -f "$BACKUP" "$POLICY"
        else
            "${SUDO[@]}" rm -f "$POLICY"
        fi
    }
    if [ -e "$POLICY" ]; then
        BACKUP=$("${SUDO[@]}" mktemp "$POLICY.peers-backup.XXXXXX")
        "${SUDO[@]}" cp -p "$POLICY" "$BACKUP"
    fi
    trap restore_policy EXIT
    printf '#!/bin/sh\n# written by benches/peers/setup.sh for the length of an install\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"

    say "installing ${NEED[*]} (services will not be started)"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -q
    # --no-install-recommends: only what the binaries need (varnish still pulls in a C
    # compiler, which it needs to compile VCL).
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${NEED[@]}"
    restore_policy
    trap - EXIT
fi
mapfile -t STILL < <(missing_packages)
[ "${#STILL[@]}" -eq 0 ] || die "still missing (not installed, or not on PATH=$PATH): ${STILL[*]}"

# ---- 2. test files ---------------------------------------------------------------------------
# Random bytes, so nothing on the path can win by compressing them. The origin's nginx workers
# run as "nobody", so the files and every directory above them must be world-readable.
mkdir -p "$DATA"
chmod 755 "$PEERS_DIR" "$PEERS_DIR/data" "$DATA"
write_file() {  # NAME BYTES
    local f="$DATA/$1.bin"
    if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" != "$2" ]; then
        head -c "$2" /dev/urandom >"$f.tmp"
        mv "$f.tmp" "$f"
    fi
    chmod 644 "$f"
}
write_file 1k 1024
write_file 16k 16384
write_file 256k 262144
write_file 1m 1048576

say "files in $DATA: $(cd "$DATA" && echo *.bin)"
say "done: $(nginx -v 2>&1) | $(varnishd -V 2>&1 | head -1) | $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
