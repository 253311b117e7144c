"""Report dict keys, the terminal summary, and the printable PNG (matplotlib only when asked)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from edge_runtime.config import ClinicConfig
from edge_runtime.record import PatientContext
from edge_runtime.runtime.estimate import Estimate, Flag, ModelInfo
from edge_runtime.runtime.report import build_report, render_report, summary_lines

MODEL = ModelInfo("demo-1", "cd" * 32, interval_halfwidth_g=30.0, interval_coverage=0.9)
KEYS = {"lvm_g", "lvm_interval_g", "lvm_index_g_m2", "lvh", "flags", "n_beats", "model", "estimate_status"}


def _ok_estimate() -> Estimate:
    return Estimate("ok", lvm_g=181.26, lvm_interval_g=(151.26, 211.26), lvm_spread_g=6.0,
                    per_beat_lvm_g=[180.0, 181.3, 182.0], lvm_index_g_m2=98.1, lvh=True, lvh_threshold_g_m2=72.0,
                    n_beats=3, flags=[Flag("imputed_p_axis", "unknown")], imputed=["p_axis"])


def test_report_has_the_issue_keys_and_is_json():
    report = build_report(_ok_estimate(), PatientContext(60.0, "M", 180.0, 80.0, "P1"), MODEL, ClinicConfig(),
                          {"qrs_ms": 96.04}, source="x.hea", backend="onnxruntime", precision="int8")
    assert KEYS <= set(report)
    assert report["lvm_g"] == 181.3 and report["lvm_interval_g"] == [151.3, 211.3] and report["lvh"] is True
    assert report["model"] == {"id": "demo-1", "sha256": "cd" * 32, "backend": "onnxruntime", "precision": "int8"}
    assert [(f["name"], f["reason"], f["consequence"]) for f in report["flags"]] == [("imputed_p_axis", "unknown", "informational")]
    assert report["flags"][0]["operator_text"] == "P axis could not be measured: the model used a typical value."
    assert "not clinically validated" in report["disclaimer"]
    json.dumps(report)
    text = "\n".join(summary_lines(report))
    assert "181 g" in text and "LVH" in text and "not clinically validated" in text


def test_no_estimate_report_has_no_number():
    estimate = Estimate("no_estimate", flags=[Flag("lead_off", "V3 off")])
    report = build_report(estimate, PatientContext(), MODEL, ClinicConfig())
    assert report["lvm_g"] is None and report["lvh"] is None and report["lvm_interval_g"] is None
    text = "\n".join(summary_lines(report))
    # plain words for the operator (the registry's text), never the code name or the developer reason
    assert "NO ESTIMATE" in summary_lines(report)[0] and "An electrode is off or loose" in text
    assert "lead_off" not in text and "V3 off" not in text


def test_render_png(tmp_path):
    pytest.importorskip("matplotlib")
    t = np.arange(5000) / 500.0
    signals = np.stack([np.sin(2 * np.pi * 1.2 * t) * (0.5 + 0.1 * k) for k in range(12)]).astype(np.float32)
    beats = np.random.default_rng(0).normal(0, 0.1, (5, 12, 400)).astype(np.float32)
    report = build_report(_ok_estimate(), PatientContext(60.0, "M", 180.0, 80.0, "P1"), MODEL, ClinicConfig())
    path = render_report(report, signals, 500.0, tmp_path / "report.png", beats=beats)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    pdf = render_report(report, signals, 500.0, tmp_path / "report.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_report_module_does_not_import_matplotlib():
    code = ("import sys, edge_runtime.runtime.report, edge_runtime.runtime.store, edge_runtime.runtime.estimate\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_approximate_interval_is_labelled():
    model = ModelInfo("demo-1", "cd" * 32, 41.2, 0.9, interval_method="approximate (from cv_mae_g, Gaussian residuals assumed)")
    report = build_report(_ok_estimate(), PatientContext(60.0, "M", 180.0, 80.0), model, ClinicConfig())
    assert report["lvm_interval_method"].startswith("approximate")
    assert "approximate interval" in "\n".join(summary_lines(report))
    calibrated = build_report(_ok_estimate(), PatientContext(60.0, "M", 180.0, 80.0), MODEL, ClinicConfig())
    assert calibrated["lvm_interval_method"] == "split-conformal"
    assert "approximate" not in "\n".join(summary_lines(calibrated))
