"""Emulated Raspberry Pi (Debian bookworm arm64 under qemu, cortex-a72): offline install and the edge commands.

Runs deploy/aarch64/smoke.sh: builds or reuses the cached root file system, builds the offline kit, installs it
with no network, runs the same commands in the emulated device and on this host, and compares the outputs.
Needs root on Linux x86_64 (CI); skipped with the reason otherwise, or when ELVMASS_SKIP_AARCH64=1.
From scratch (no cached root file system) this takes 8-35 minutes; with the cache, one to four.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess

import pytest

from conftest import REPO_ROOT

SMOKE = REPO_ROOT / "deploy" / "aarch64" / "smoke.sh"
BUILD_ROOTFS = REPO_ROOT / "deploy" / "aarch64" / "build_rootfs.sh"
CANNOT_HOST = 3  # build_rootfs.sh --check: this machine cannot run the emulated target
# A cold run (no cached root file system) must fit: 8 min 10 s measured on an unloaded machine; on 2 shared cores
# at load 7-10 the root file system alone took 1402 s, the offline install up to 351 s and the exercise ~220 s
# (~33 min, docs/deployment.md). One hour leaves 1.8x that.
SMOKE_TIMEOUT_S = 3600


def emulation_unavailable_reason() -> str | None:
    """Why this machine cannot run the emulated smoke test, or None when it can (installs tools if needed)."""
    if os.environ.get("ELVMASS_SKIP_AARCH64") == "1":
        return "ELVMASS_SKIP_AARCH64=1"
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"needs Linux x86_64, this is {platform.system()} {platform.machine()}"
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, binfmt_misc registration)"
    check = subprocess.run(["bash", str(BUILD_ROOTFS), "--check"], capture_output=True, text=True, timeout=900)
    if check.returncode == CANNOT_HOST:
        return "cannot run aarch64 emulation here: " + check.stderr.strip().splitlines()[-1]
    assert check.returncode == 0, f"build_rootfs.sh --check failed unexpectedly:\n{check.stderr}"
    return None


@pytest.mark.slow
def test_emulated_raspberry_pi_matches_x86(tmp_path):
    reason = emulation_unavailable_reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "smoke"
    process = subprocess.Popen(["bash", str(SMOKE), "--out", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=SMOKE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM, not SIGKILL: smoke.sh then unmounts /proc and /dev from the chroot on its way out.
        os.killpg(process.pid, signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
        pytest.fail(f"smoke.sh ran over {SMOKE_TIMEOUT_S} s\n{stderr[-6000:]}")
    log = f"stdout:\n{stdout[-4000:]}\nstderr:\n{stderr[-6000:]}"
    assert process.returncode == 0, log
    comparison = json.loads((out / "compare.json").read_text())
    assert comparison["ok"], log
    steps = {row["step"]: row for row in comparison["steps"]}
    # The device really is aarch64, runs the pinned stack, and has nothing heavy installed.
    device = comparison["platform"]["aarch64"]
    assert device["machine"] == "aarch64" and device["python"].startswith("3.11."), device
    assert device["heavy_packages"] == [], device
    assert device["versions"]["ai-edge-litert"] is not None
    assert steps["info"]["aarch64"] == "ok"
    # Every step ran on the device, the model steps included: a skipped step is a failure (compare_outputs.py
    # already fails on it; this says which).
    for row in comparison["steps"]:
        assert row["aarch64"] == "ok", row
    for step in ("model_outputs", "analyze_onnxruntime_int8", "analyze_litert_int8", "run_loop"):
        assert step in steps, f"model step {step} missing from the comparison"
    timings = dict(line.split("\t") for line in (out / "timings.tsv").read_text().splitlines())
    print(f"aarch64 smoke: seconds per stage {timings}")
