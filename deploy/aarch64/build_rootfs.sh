#!/usr/bin/env bash
# Build (or reuse) a Debian bookworm arm64 root file system that stands in for Raspberry Pi OS 64-bit.
#
#   deploy/aarch64/build_rootfs.sh            prints the root file system's path as the last stdout line
#   deploy/aarch64/build_rootfs.sh --check    only installs the host tools and registers binfmt_misc; exit 3 (with
#                                             the reason on stderr) when this machine cannot run the emulated target
#
# From scratch: installs debootstrap/qemu-user-static/binfmt-support when missing, registers qemu-aarch64 with
# binfmt_misc, debootstraps bookworm arm64 (minbase + python3.11 + venv), then stores the result under
# ${ELVMASS_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/elvmass}/aarch64-rootfs-<key>, where <key> hashes the recipe
# (common.sh) and requirements-edge.txt, so later runs on the same machine reuse it. Needs root on Linux x86_64 (or aarch64).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${1:-}" = --check ]; then
    # Subshells: a failed step must give "cannot here" (3), not a bare exit.
    check_host || exit 3
    (ensure_host_tools) || { log "cannot install debootstrap/qemu-user-static/binfmt-support"; exit 3; }
    (ensure_binfmt) || exit 3
    log "host ok: $(uname -m), debootstrap $(dpkg-query -W -f '${Version}' debootstrap 2>/dev/null), qemu-aarch64 registered"
    exit 0
fi
check_host || exit 1
mkdir -p "$ELVMASS_CACHE_DIR"
key="$(rootfs_key)"
rootfs="$ELVMASS_CACHE_DIR/aarch64-rootfs-$key"

# Refuse to delete anything that still has something mounted inside (a bound /dev would take the host's with it).
has_mounts() { awk -v p="$1/" 'index($2 "/", p) == 1 { found = 1 } END { exit !found }' /proc/mounts; }
safe_remove() {
    if has_mounts "$1"; then log "not removing $1: something is still mounted inside"; return 0; fi
    rm -rf --one-file-system "$1"
}

ensure_host_tools
ensure_binfmt

exec 9>"$ELVMASS_CACHE_DIR/aarch64-rootfs.lock"
flock 9   # one builder at a time on this machine

if [ -e "$rootfs/.elvmass-complete" ]; then
    log "reusing cached root file system $rootfs"
    echo "$rootfs"
    exit 0
fi

started=$(date +%s)
staging="$rootfs.partial"
safe_remove "$staging"
log "debootstrap $DEBIAN_SUITE arm64 into $staging (minutes: the second stage runs under emulation)"
nice -n 10 debootstrap --arch=arm64 --variant="$DEBIAN_VARIANT" --include="$DEBIAN_PACKAGES" \
    "$DEBIAN_SUITE" "$staging" "$DEBIAN_MIRROR" >&2
has_mounts "$staging" && die "debootstrap left mounts inside $staging"

# The smoke test installs from an offline wheelhouse; the CA bundle is only for anyone who uses pip online in it.
cp /etc/ssl/certs/ca-certificates.crt "$staging/etc/ssl/certs/ca-certificates.crt" 2>/dev/null \
    || { mkdir -p "$staging/etc/ssl/certs" && cp /etc/ssl/certs/ca-certificates.crt "$staging/etc/ssl/certs/"; } || true
rm -rf "$staging/var/cache/apt/archives/"*.deb "$staging/var/lib/apt/lists/"*

# Prove the emulated interpreter runs before the result is trusted.
machine="$(chroot_run "$staging" 'python3 -c "import platform; print(platform.machine(), platform.python_version())"')"
log "emulated python: $machine"
case "$machine" in aarch64\ 3.11.*) ;; *) die "unexpected interpreter in the root file system: $machine" ;; esac

date -u +%Y-%m-%dT%H:%M:%SZ > "$staging/.elvmass-complete"
mv "$staging" "$rootfs"
# Older keys are stale (other requirements or builder): drop them so the cache does not grow without bound.
for old in "$ELVMASS_CACHE_DIR"/aarch64-rootfs-*; do
    [ -d "$old" ] && [ "$old" != "$rootfs" ] && safe_remove "$old"
done
log "built $rootfs in $(( $(date +%s) - started )) s ($(du -sh --one-file-system "$rootfs" | cut -f1))"
echo "$rootfs"
