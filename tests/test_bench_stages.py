"""``elvmass bench --stages``: every stage of the run loop is timed and nests inside its parent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_stage_breakdown_times_every_stage_of_the_run_loop():
    # a child process: the breakdown wraps module functions for good
    child = subprocess.run([sys.executable, "-m", "elvmass", "bench", "--stages", "--seconds", "20", "--json"],
                           capture_output=True, text=True, cwd=REPO, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert child.returncode == 0, child.stderr[-2000:]
    result = json.loads(child.stdout)
    stages = dict(result["stages"])
    assert result["windows"] == 2 and result["decode_ms_per_s"] > 0
    for label, ms in stages.items():
        assert ms > 0, label
    whole = stages["session.analyze (per window, all below)"]
    chain = stages["  analyze_12 (signal chain + estimate + report)"]
    assert whole >= chain >= stages["    baseline correction (all below)"] >= stages["      zero-phase high-pass"]
    assert stages["    estimate (all below)"] >= stages["      model (one call per window)"]
