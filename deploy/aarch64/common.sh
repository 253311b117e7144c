# Shared helpers for the emulated aarch64 (Raspberry Pi 4 stand-in) scripts. Source it; do not run it.
# shellcheck shell=bash

ELVMASS_DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ELVMASS_REPO_ROOT="$(cd "$ELVMASS_DEPLOY_DIR/.." && pwd)"
ELVMASS_CACHE_DIR="${ELVMASS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/elvmass}"
EDGE_REQUIREMENTS="$ELVMASS_DEPLOY_DIR/aarch64/requirements-edge.txt"
# Raspberry Pi 4 core; read by qemu-user from the environment of the process it emulates.
export QEMU_CPU="${QEMU_CPU:-cortex-a72}"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# What goes into the root file system. Bump ROOTFS_RECIPE_VERSION when the build steps change what it contains.
DEBIAN_SUITE=bookworm
DEBIAN_VARIANT=minbase
# python3-venv brings ensurepip's bundled pip wheel: the device needs no network and no compiler.
DEBIAN_PACKAGES=python3,python3-venv
ROOTFS_RECIPE_VERSION=1

# Key of the cached root file system: the recipe and the pinned requirements (not comments in the scripts).
rootfs_key() {
    { echo "$DEBIAN_SUITE arm64 $DEBIAN_VARIANT $DEBIAN_PACKAGES v$ROOTFS_RECIPE_VERSION"; cat "$EDGE_REQUIREMENTS"; } \
        | sha256sum | cut -c1-16
}

# Exit status 0 when this machine can (after installing apt packages) run the emulated target.
# Prints the reason to stderr otherwise.
check_host() {
    [ "$(uname -s)" = Linux ] || { log "needs Linux (this is $(uname -s))"; return 1; }
    case "$(uname -m)" in
        x86_64 | aarch64) ;;
        *) log "needs an x86_64 (emulating) or aarch64 (native) host, this is $(uname -m)"; return 1 ;;
    esac
    [ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot, binfmt_misc)"; return 1; }
    return 0
}

# Install debootstrap / qemu-user-static / binfmt-support when missing (CI runs on a fresh machine as root).
ensure_host_tools() {
    local missing=()
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ "$(uname -m)" = x86_64 ]; then
        command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
        command -v update-binfmts >/dev/null || missing+=(binfmt-support)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Register qemu-aarch64 with binfmt_misc (kernel-wide) so aarch64 ELF files run transparently.
ensure_binfmt() {
    [ "$(uname -m)" = aarch64 ] && return 0
    local bm=/proc/sys/fs/binfmt_misc
    if [ ! -e "$bm/register" ]; then
        mount -t binfmt_misc binfmt_misc "$bm" || die "cannot mount binfmt_misc (container without privileges?)"
    fi
    if [ ! -e "$bm/qemu-aarch64" ]; then
        update-binfmts --enable qemu-aarch64 >&2 || update-binfmts --import qemu-aarch64 >&2 || true
    fi
    [ -e "$bm/qemu-aarch64" ] || die "qemu-aarch64 is not registered with binfmt_misc"
    # F (fix binary): the kernel opens the interpreter at registration, so it works inside a chroot
    # that has no qemu binary of its own.
    grep -q '^flags:.*F' "$bm/qemu-aarch64" || die "qemu-aarch64 binfmt entry lacks the F flag: $(grep flags "$bm/qemu-aarch64")"
}

# Run a command inside the root file system with /proc, /dev and /dev/pts mounted.
# /sys is deliberately NOT mounted: some runtimes crash reading the host's CPU topology under emulation.
# Usage: chroot_run ROOTFS COMMAND...   (the command runs under bash -c with a clean environment)
# CHROOT_UNSHARE_NET=1 runs it in a fresh network namespace: no network at all, as on an offline clinic device.
chroot_run() {
    local rootfs="$1"; shift
    local mounted=()
    _chroot_umount() {
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    }
    mkdir -p "$rootfs/proc" "$rootfs/dev"
    mount -t proc proc "$rootfs/proc" && mounted+=("$rootfs/proc")
    mount --bind /dev "$rootfs/dev" && mounted+=("$rootfs/dev")
    mount --bind /dev/pts "$rootfs/dev/pts" && mounted+=("$rootfs/dev/pts")
    local status=0 isolate=()
    [ "${CHROOT_UNSHARE_NET:-0}" = 1 ] && isolate=(unshare --net)
    "${isolate[@]}" chroot "$rootfs" /usr/bin/env -i \
        HOME=/root LANG=C.UTF-8 TERM=dumb QEMU_CPU="$QEMU_CPU" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 ${PIP_NO_COMPILE:+PIP_NO_COMPILE=$PIP_NO_COMPILE} \
        /bin/bash -c "$*" || status=$?
    _chroot_umount
    return $status
}

# Unmount whatever a killed chroot_run left mounted under ROOTFS (deepest first).
release_mounts() {
    local rootfs="$1" target
    awk -v p="$rootfs/" 'index($2 "/", p) == 1 { print $2 }' /proc/mounts | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done
}
