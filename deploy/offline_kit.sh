#!/usr/bin/env bash
# Build an offline install kit for a Raspberry Pi-class device (Debian bookworm arm64, CPython 3.11).
#
#   deploy/offline_kit.sh [--out DIR] [--bundle MODEL_BUNDLE_DIR] [--tar]
#
# The kit holds: wheels/ (the pinned edge dependencies, the operator station's included, as aarch64 wheels + the
# elvmass wheel, whose package data carries the bundled demo model and the station's pages), bundle/ (only with
# --bundle: a site's own model bundle), service/ (systemd unit, udev rule, clinic config, logrotate, kiosk launcher,
# install_service.sh), requirements.txt, install.sh and SHA256SUMS.
# On the device, with no network:
#
#   sh KIT/install.sh [/opt/elvmass]     # = python3 -m venv + pip install --no-index --find-links KIT/wheels --no-compile
#   sh KIT/service/install_service.sh    # optional: service mode (root)
#
# Runs on any Linux host with Python and PyPI access; it downloads wheels, it never compiles.
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$deploy_dir/.." && pwd)"
requirements="$deploy_dir/aarch64/requirements-edge.txt"
out="$repo_root/dist/elvmass-offline-aarch64"
bundle=""
make_tar=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --bundle) bundle="$2"; shift 2 ;;
        --tar) make_tar=1; shift ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "offline_kit.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$repo_root/.venv/bin/python" ]; then PYTHON="$repo_root/.venv/bin/python"; else PYTHON=python3; fi
fi
if [ -n "$bundle" ] && [ ! -f "$bundle/manifest.json" ]; then
    echo "offline_kit.sh: --bundle $bundle has no manifest.json (not a model bundle directory)" >&2
    exit 2
fi

# Raspberry Pi OS 64-bit (bookworm) has glibc 2.36: accept every manylinux tag up to that (pip does not
# expand an explicit --platform to older glibc versions by itself).
platforms=(--platform manylinux2014_aarch64 --platform linux_aarch64)
for glibc in 17 24 26 27 28 31 34 35 36; do platforms+=(--platform "manylinux_2_${glibc}_aarch64"); done

rm -rf "$out"
mkdir -p "$out/wheels"
echo "offline kit -> $out" >&2

# 1. The project wheel, built from a clean copy of the source tree (tracked + new, not ignored files) so no
#    build/ or egg-info lands in the checkout and no local virtual environment leaks into the wheel.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
if git -C "$repo_root" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$repo_root" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$src"
else
    tar -C "$repo_root" --exclude=.venv --exclude='.venv-*' --exclude=dist --exclude=build -cf - . | tar -xf - -C "$src"
fi
# (setuptools' deprecation chatter goes to a log; it is shown only when the build fails)
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$out/wheels" "$src" > "$src.log" 2>&1 \
    || { cat "$src.log" >&2; echo "offline_kit.sh: building the elvmass wheel failed" >&2; exit 1; }
rm -f "$src.log"
project_wheel="$(cd "$out/wheels" && ls elvmass-*.whl)"
version="$(echo "$project_wheel" | cut -d- -f2)"

# 2. The pinned edge dependencies as aarch64 CPython 3.11 wheels (binary only: the device has no compiler).
"$PYTHON" -m pip download -q --only-binary=:all: "${platforms[@]}" \
    --implementation cp --python-version 3.11 --abi cp311 \
    -r "$requirements" -d "$out/wheels" >&2

# 3. Guard rails: nothing heavy, nothing that is not a wheel.
if ls "$out/wheels" | grep -Eiq '^(torch|tensorflow|tf_keras|matplotlib|pandas)[-_]'; then
    echo "offline_kit.sh: a heavy training-side package slipped into the edge kit:" >&2
    ls "$out/wheels" >&2
    exit 1
fi
if ls "$out/wheels" | grep -qv '\.whl$'; then
    echo "offline_kit.sh: non-wheel files in the kit (would need a compiler on the device)" >&2
    exit 1
fi

# 4. Optional site model bundle, copied verbatim (its manifest carries the SHA-256 of every file).
if [ -n "$bundle" ]; then
    cp -a "$bundle" "$out/bundle"
fi

# 5. Service mode files (installed on the device by service/install_service.sh).
mkdir -p "$out/service"
cp "$deploy_dir/install_service.sh" "$deploy_dir/elvmass.toml" "$deploy_dir/systemd/elvmass.service" \
    "$deploy_dir/udev/99-elvmass.rules" "$out/service/"
cp "$deploy_dir/logrotate/elvmass" "$out/service/logrotate-elvmass"
cp "$deploy_dir/kiosk/elvmass-kiosk.sh" "$deploy_dir/kiosk/elvmass-kiosk.desktop" "$out/service/"

grep -v '^\s*#' "$requirements" | grep -v '^\s*$' > "$out/requirements.txt"
echo "elvmass==$version" >> "$out/requirements.txt"

cat > "$out/install.sh" <<'INSTALL'
#!/bin/sh
# Offline install of elvmass on the device: no network, no compiler.
#   sh install.sh [PREFIX]      (default /opt/elvmass; the virtual environment goes to PREFIX/venv)
set -eu
kit="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:-/opt/elvmass}"
(cd "$kit" && sha256sum -c --quiet SHA256SUMS) || { echo "install.sh: kit is corrupt (SHA256SUMS mismatch)" >&2; exit 1; }
python3 -m venv "$prefix/venv"
# --no-compile: pip would write bytecode for every module of every package (scipy's test suites included, ~50 MB);
# only what the device imports is compiled below. setuptools (in every Python 3.11 venv) builds from source,
# which a wheels-only kit never does; pip stays for offline updates.
"$prefix/venv/bin/pip" install --no-index --find-links "$kit/wheels" --disable-pip-version-check -q --no-compile \
    -r "$kit/requirements.txt"
"$prefix/venv/bin/pip" uninstall -y -q setuptools 2>/dev/null || true
# Bytecode of the modules the device runs, written here because the service user cannot write into the venv.
PYTHONDONTWRITEBYTECODE= "$prefix/venv/bin/python" - <<'PY'
import importlib

from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.formats import read_record
from edge_runtime.inference import available_backends, load_predictor
from edge_runtime.preprocess import analyze_record

analyze_record(read_record(CINC_LVH_RECORD))
for backend in available_backends():
    load_predictor(backend=backend)
for name in ("edge_runtime.commands.run", "edge_runtime.commands.demo", "edge_runtime.commands.station",
             "edge_runtime.runtime.pipeline", "edge_runtime.runtime.session", "edge_runtime.runtime.sources",
             "edge_runtime.runtime.report", "firmware_bridge.transport", "edge_runtime.station.app", "uvicorn"):
    try:
        importlib.import_module(name)
    except ImportError:  # an extra this install does not have (the report's matplotlib)
        pass
PY
if [ -d "$kit/bundle" ]; then
    rm -rf "$prefix/bundle"
    cp -R "$kit/bundle" "$prefix/bundle"
    echo "model bundle installed at $prefix/bundle (set bundle_path in /etc/elvmass/elvmass.toml)"
fi
echo "installed: $("$prefix/venv/bin/elvmass" --version)"
INSTALL
chmod +x "$out/install.sh"

(cd "$out" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "kit: $(ls "$out/wheels" | wc -l) wheels, $(du -sh "$out" | cut -f1), elvmass $version" >&2
if [ "$make_tar" = 1 ]; then
    tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
    echo "archive: $out.tar.gz" >&2
fi
echo "$out"
