"""The runtime with a real bundle and backend: a transparent ONNX model through load_bundle/load_predictor.

``make_runtime_bundle`` (conftest, shared with the CLI and HIL tests): LV mass grows with the summed
QRS amplitude of the 12 leads and with weight, so real waveforms give plausible, checkable numbers.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import make_runtime_bundle
from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
from edge_runtime.bundle_spec import IntervalCalibration
from edge_runtime.config import ClinicConfig
from edge_runtime.formats import read_record
from edge_runtime.inference import available_backends
from edge_runtime.model_bundle import DEMO_BUNDLE_DIR, load_bundle, read_manifest
from edge_runtime.record import PatientContext
from edge_runtime.runtime.pipeline import Analyzer, analyze_file_record, interval_from_manifest
from evaluation.interval_check import interval_check


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    return make_runtime_bundle(tmp_path_factory.mktemp("bundle"))


def test_analyzer_loads_bundle_and_reports_calibrated_interval(bundle_dir):
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle_dir, backend="onnxruntime", precision="fp32")
    record = read_record(PTBXL_RECORD)
    best, windows = analyze_file_record(analyzer, record, record.patient)
    report = best.report
    assert len(windows) == 1 and report["estimate_status"] == "ok", report["flags"]
    assert report["model"]["id"] == "runtime-test-amplitude"
    manifest_sha = __import__("hashlib").sha256((bundle_dir / "manifest.json").read_bytes()).hexdigest()
    assert report["model"]["sha256"] == manifest_sha
    low, high = report["lvm_interval_g"]
    assert high - low == pytest.approx(2 * 31.5, abs=0.11) and report["lvm_interval_coverage"] == 0.9
    # The number is the formula applied to the beats the chain cut: check it independently.
    beats = best.analysis.beats[best.estimate.beat_rows]
    expected = 40 + 6 * np.ptp(beats, axis=2).sum(axis=1) + 0.8 * 76 + 20 * 1
    assert report["lvm_g"] == pytest.approx(float(np.median(expected)), abs=0.06)
    bsa = math.sqrt(177 * 76 / 3600)
    assert report["lvm_index_g_m2"] == pytest.approx(report["lvm_g"] / bsa, abs=0.06)
    assert report["lvh"] is (report["lvm_index_g_m2"] > 72)


def test_interval_falls_back_to_mae_and_says_so(bundle_dir):
    manifest = read_manifest(bundle_dir)
    assert interval_from_manifest(manifest) == (31.5, 0.9, "split-conformal")
    halfwidth, coverage, how = interval_from_manifest(dataclasses.replace(manifest, calibration=None))
    assert halfwidth == pytest.approx(2.06 * 15.0, abs=0.05) and coverage == 0.9 and how.startswith("approximate")
    other = IntervalCalibration("split-conformal", 0.8, 12.0, 100, "unit test")
    assert interval_from_manifest(dataclasses.replace(manifest, calibration=other))[:2] == (12.0, 0.8)
    assert interval_from_manifest(dataclasses.replace(manifest, calibration=None, metrics={})) == (None, None, "none")


def test_missing_sex_gives_named_no_estimate(bundle_dir):
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle_dir, backend="onnxruntime", precision="fp32")
    record = read_record(PTBXL_RECORD)
    best, _ = analyze_file_record(analyzer, record, PatientContext(age_years=28.0))
    assert best.report["estimate_status"] == "no_estimate" and best.report["lvm_g"] is None
    assert "sex_unknown" in [f["name"] for f in best.report["flags"]]


def test_both_backends_see_the_same_beats_and_agree_on_the_demo_bundle():
    if not (DEMO_BUNDLE_DIR / "manifest.json").exists():
        pytest.skip("the bundled demo model has not been built into edge_runtime/assets/model yet")
    if "litert" not in available_backends():
        pytest.skip("LiteRT is not installed (pip install 'elvmass[litert]')")
    formats = {model.format for model in load_bundle().models if model.precision == "fp32"}
    if formats != {"onnx", "tflite"}:
        pytest.skip(f"demo bundle has fp32 formats {sorted(formats)}, not both")
    record = read_record(CINC_LVH_RECORD)
    patient = PatientContext(77.0, "F", 160.0, 68.0)
    reports = {}
    for backend in ("onnxruntime", "litert"):
        analyzer = Analyzer(ClinicConfig(), backend=backend, precision="fp32")
        best, _ = analyze_file_record(analyzer, record, patient)
        reports[backend] = best
    onnx, litert = reports["onnxruntime"], reports["litert"]
    assert onnx.estimate.beat_rows == litert.estimate.beat_rows  # identical preprocessing
    np.testing.assert_array_equal(onnx.analysis.beats, litert.analysis.beats)
    assert litert.report["lvm_g"] == pytest.approx(onnx.report["lvm_g"], abs=0.5)


def test_windows_the_signal_core_refuses_become_named_no_estimates(bundle_dir):
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle_dir, precision="fp32")
    patient = PatientContext(60.0, "M", 180.0, 80.0)
    short = analyzer.analyze_12(np.zeros((12, 100), dtype=np.float32), 500.0, patient)  # 0.2 s < one beat window
    assert short.report["estimate_status"] == "no_estimate" and short.report["lvm_g"] is None
    assert "analysis_error" in {f["name"] for f in short.report["flags"]}
    broken = np.zeros((12, 5000), dtype=np.float32)
    broken[3, 100] = np.nan
    result = analyzer.analyze_12(broken, 500.0, patient)
    assert result.report["estimate_status"] == "no_estimate"
    assert "non_finite_samples" in {f["name"] for f in result.report["flags"]}


def test_interval_check_on_a_label_table(bundle_dir, tmp_path):
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle_dir, precision="fp32")
    patient = PatientContext(28.0, "M", 177.0, 76.0)
    predicted = analyze_file_record(analyzer, read_record(PTBXL_RECORD), patient)[0].estimate.lvm_g
    # Labels 10 g and 40 g away from what the model says: the 31.5 g interval covers one of the two.
    offsets = (10, -40, 1, 2, 3, 4, 5, 6, 7, 8)
    # Ten copies of one record under different names (a label table lists each ECG once).
    copies = []
    for i in range(len(offsets)):
        for source in Path(PTBXL_RECORD).parent.glob(Path(PTBXL_RECORD).stem + ".*"):
            (tmp_path / f"copy{i}{source.suffix}").write_bytes(source.read_bytes())
        header = tmp_path / f"copy{i}{Path(PTBXL_RECORD).suffix}"
        header.write_text(header.read_text().replace(Path(PTBXL_RECORD).stem, f"copy{i}"))
        copies.append(header)
    rows = [f"{copy},{predicted + k:.3f},28,M,177,76,s{i}" for i, (copy, k) in enumerate(zip(copies, offsets))]
    labels = tmp_path / "labels.csv"
    labels.write_text("record,lvm_g,age_years,sex,height_cm,weight_kg,subject_id\n" + "\n".join(rows) + "\n")
    check = interval_check(analyzer, labels, coverage=0.5)
    assert check.n_records == check.n_with_number == 10 and check.statuses == {"ok": 10}
    assert check.current_halfwidth_g == 31.5 and check.current_coverage == pytest.approx(0.9)
    assert check.conformal_halfwidth_g == pytest.approx(6.0, abs=0.01)  # rank ceil(11 * 0.5) = 6 of |1..8, 10, 40|
