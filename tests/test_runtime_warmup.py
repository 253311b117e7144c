"""The run loop's start-up warm-up (edge_runtime.runtime.warmup): it exercises the whole chain, changes no number."""

from __future__ import annotations

import numpy as np

from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.config import ClinicConfig
from edge_runtime.formats import read_record
from edge_runtime.record import PatientContext
from edge_runtime.runtime.pipeline import Analyzer
from edge_runtime.runtime.warmup import synthetic_window, warm_up


def test_synthetic_window_runs_the_model_on_clean_beats():
    window = synthetic_window()
    assert window.shape == (12, 5000) and window.dtype == np.float32
    report = Analyzer(ClinicConfig()).analyze_12(window, 500.0, PatientContext(60.0, "M", 175.0, 75.0)).report
    assert report["lvm_g"] is not None and report["n_beats"] >= 10, report["flags"]


def test_a_warmed_up_analyzer_gives_the_same_report():
    signals = read_record(CINC_LVH_RECORD).to_standard_12().signals_mv
    patient = PatientContext(77.0, "F", 160.0, 68.0)
    cold = Analyzer(ClinicConfig()).analyze_12(signals, 500.0, patient)
    warmed = Analyzer(ClinicConfig())
    warm_up(warmed)
    warm = warmed.analyze_12(signals, 500.0, patient)
    np.testing.assert_array_equal(warm.analysis.beats, cold.analysis.beats)
    for key in ("lvm_g", "per_beat_lvm_g", "n_beats", "flags", "estimate_status", "parameters", "lvm_interval_g"):
        assert warm.report.get(key) == cold.report.get(key), key
