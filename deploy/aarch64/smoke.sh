#!/usr/bin/env bash
# Emulated Raspberry Pi smoke test: install the offline kit into a Debian bookworm arm64 root file system (no
# network, no compiler, no torch), run the edge commands there under qemu (QEMU_CPU=cortex-a72), run the same
# commands on this x86 host, and compare the outputs within tolerance.
#
#   deploy/aarch64/smoke.sh [--out DIR]
#
# Root on Linux x86_64. Builds or reuses the cached root file system (build_rootfs.sh), builds the kit
# (../offline_kit.sh), installs it offline in the emulated device (in full when the pins or the kit recipe changed,
# else an offline update of the cached install) and an x86 reference venv from the same pins and wheel.
# Results: DIR/x86/, DIR/aarch64/ (per-step outputs + steps.tsv), DIR/compare.json, DIR/timings.tsv.
# Exit status 0 only when every step has the same status on both sides and the outputs agree.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
check_host || exit 1
[ -n "$out" ] || out="$(mktemp -d /tmp/elvmass-aarch64-smoke.XXXXXX)"
mkdir -p "$out"
: > "$out/timings.tsv"
timed() {  # timed NAME COMMAND...: runs the command, appends "NAME<TAB>seconds" to timings.tsv
    local name="$1" t0=$SECONDS; shift
    "$@"
    printf '%s\t%s\n' "$name" $((SECONDS - t0)) >> "$out/timings.tsv"
}
host_python="${PYTHON:-}"
if [ -z "$host_python" ]; then
    if [ -x "$ELVMASS_REPO_ROOT/.venv/bin/python" ]; then host_python="$ELVMASS_REPO_ROOT/.venv/bin/python"; else host_python=python3; fi
fi

build_rootfs() { rootfs="$("$ELVMASS_DEPLOY_DIR/aarch64/build_rootfs.sh" | tail -n 1)"; }
timed rootfs build_rootfs
build_kit() { PYTHON="$host_python" "$ELVMASS_DEPLOY_DIR/offline_kit.sh" --out "$out/kit" > /dev/null; }
timed offline_kit build_kit

# Stage the kit and the exercise scripts inside the root file system; removed again on exit.
exec 9>"$ELVMASS_CACHE_DIR/aarch64-rootfs.lock"
flock 9   # the rootfs is shared: one smoke run (or build) at a time on this machine
stage="$rootfs/opt/elvmass-smoke"
cleanup() {
    release_mounts "$rootfs"
    rm -rf --one-file-system "$stage" "$rootfs/etc/elvmass" "$rootfs/etc/systemd/system/elvmass.service" \
        "$rootfs/etc/udev/rules.d/99-elvmass.rules" "$rootfs/etc/logrotate.d/elvmass"
    if grep -q '^elvmass:' "$rootfs/etc/passwd"; then chroot "$rootfs" userdel elvmass 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT   # run the EXIT trap on a signal too
cleanup
mkdir -p "$stage"
cp -a "$out/kit" "$stage/kit"
cp "$ELVMASS_DEPLOY_DIR/aarch64/exercise.sh" "$ELVMASS_DEPLOY_DIR/aarch64/model_outputs.py" "$stage/"

# Offline install on the device, in a fresh network namespace so pip cannot reach any index even if it tried.
# A full install (install.sh from the kit) runs whenever the pins or the kit recipe change, in particular on the
# first run on a machine; it takes minutes under emulation. Otherwise the cached device install gets this run's
# elvmass wheel from the kit, and the kit's pins are resolved against it, both offline.
device_prefix=/opt/elvmass-device
device_key="$(rootfs_key)-$(sha256sum "$ELVMASS_DEPLOY_DIR/offline_kit.sh" | cut -c1-12)"
device_marker="$rootfs$device_prefix/.elvmass-installed"
if [ "$(cat "$device_marker" 2>/dev/null)" != "$device_key" ]; then
    log "aarch64: full offline install from the kit (no network; minutes under emulation)"
    rm -rf --one-file-system "${rootfs:?}$device_prefix"
    CHROOT_UNSHARE_NET=1 timed aarch64_install_full chroot_run "$rootfs" \
        "sh /opt/elvmass-smoke/kit/install.sh $device_prefix" \
        || die "offline install failed inside the emulated root file system"
    echo "$device_key" > "$device_marker"
    echo full > "$out/device_install.txt"
else
    log "aarch64: cached device install (key $device_key): elvmass wheel + pin check from the kit, offline"
    CHROOT_UNSHARE_NET=1 timed aarch64_install_update chroot_run "$rootfs" \
        "set -e; cd /opt/elvmass-smoke/kit && sha256sum -c --quiet SHA256SUMS
         pip=$device_prefix/venv/bin/pip; flags='--no-index --find-links /opt/elvmass-smoke/kit/wheels -q'
         \$pip install \$flags --no-deps --force-reinstall wheels/elvmass-*.whl
         \$pip install \$flags -r requirements.txt" \
        || die "offline update from the kit failed inside the emulated root file system"
    echo cached > "$out/device_install.txt"
fi
offline_check="$(chroot_run "$rootfs" 'for c in cc gcc clang; do command -v $c >/dev/null && { echo compiler-present: $c; exit; }; done; echo no-compiler')"
log "aarch64: $offline_check"
[ "$offline_check" = no-compiler ] || die "the emulated device has a compiler: the kit must not rely on one"

log "aarch64: service mode files (user, /etc/elvmass/elvmass.toml checked by the runtime's config reader)"
CHROOT_UNSHARE_NET=1 timed aarch64_service chroot_run "$rootfs" \
    "sh /opt/elvmass-smoke/kit/service/install_service.sh --prefix $device_prefix \
     && id elvmass && test -f /etc/systemd/system/elvmass.service && test -f /etc/udev/rules.d/99-elvmass.rules" >&2 \
    || die "service mode installation failed inside the emulated root file system"

log "aarch64: exercising the edge commands under emulation (QEMU_CPU=$QEMU_CPU)"
arm_status=0
timed aarch64_exercise chroot_run "$rootfs" \
    "ELVMASS_EMULATE_SPEED=1 bash /opt/elvmass-smoke/exercise.sh $device_prefix/venv/bin /opt/elvmass-smoke/out" || arm_status=$?
rm -rf "$out/aarch64"
cp -a "$stage/out" "$out/aarch64"

# The x86 reference gets the same pins and the same project wheel (x86 wheels of the pinned versions, from PyPI).
log "x86: reference environment from the same pins and wheel"
# The pinned dependencies are cached like the root file system (same key); the project wheel is reinstalled each run.
x86_venv="$ELVMASS_CACHE_DIR/x86-venv-$(rootfs_key)"
make_x86_env() {
    if [ ! -e "$x86_venv/.elvmass-complete" ]; then
        rm -rf "$x86_venv" "$ELVMASS_CACHE_DIR"/x86-venv-*
        "$host_python" -m venv "$x86_venv"
        "$x86_venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: -r "$EDGE_REQUIREMENTS" >&2
        touch "$x86_venv/.elvmass-complete"
    fi
    "$x86_venv/bin/pip" install -q --disable-pip-version-check --no-deps --force-reinstall \
        "$out/kit/wheels/$(cd "$out/kit/wheels" && ls elvmass-*.whl)" >&2
}
timed x86_install make_x86_env
log "x86: the same commands on this host"
x86_status=0
timed x86_exercise bash "$ELVMASS_DEPLOY_DIR/aarch64/exercise.sh" "$x86_venv/bin" "$out/x86" || x86_status=$?

log "comparing (exercise exit status: x86 $x86_status, aarch64 $arm_status)"
compare_status=0
"$host_python" "$ELVMASS_DEPLOY_DIR/aarch64/compare_outputs.py" "$out/x86" "$out/aarch64" --json "$out/compare.json" \
    || compare_status=$?
log "timings (s): $(tr '\t\n' '= ' < "$out/timings.tsv")"
echo "$out"
exit $compare_status
