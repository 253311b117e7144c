"""Filtering the 8 independent leads and deriving III, aVR, aVL, aVF afterwards (device windows)."""

from __future__ import annotations

import numpy as np
import pytest

import edge_runtime.preprocess as preprocess
from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
from edge_runtime.config import ClinicConfig
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.preprocess import PreprocessConfig, analyze_window
from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, PatientContext
from edge_runtime.runtime.pipeline import Analyzer
from edge_runtime.runtime.window import twelve_from_independent
from edge_runtime.signal_core.baseline import spline_baseline, zero_phase_highpass
from edge_runtime.signal_core.filters import condition, smooth
from edge_runtime.signal_core.limb_leads import derived_exactly, filter_independent


def _device_window(path, wander_mv: float = 0.0, seed: int = 0) -> np.ndarray:
    """What the runtime analyzes: the record's 8 independent leads (float32), limb leads derived as the
    window buffer derives them; optionally with respiration wander and noise on every electrode."""
    record = read_wfdb(path).to_standard_12()
    independent = np.stack([record.signals_mv[STANDARD_LEADS.index(n)] for n in INDEPENDENT_LEADS])[:, :5000]
    if wander_mv:
        t = np.arange(independent.shape[1]) / 500.0
        rng = np.random.default_rng(seed)
        independent = independent + wander_mv * np.sin(2 * np.pi * 0.3 * t) + rng.normal(0, 0.02, independent.shape)
    return twelve_from_independent(independent.astype(np.float32))


WINDOWS = [(CINC_LVH_RECORD, 0.0), (PTBXL_RECORD, 0.0), (CINC_LVH_RECORD, 0.5), (PTBXL_RECORD, 0.5)]


def test_only_exactly_derived_windows_take_the_shortcut():
    window = _device_window(CINC_LVH_RECORD)
    assert derived_exactly(window, STANDARD_LEADS)
    assert not derived_exactly(window, tuple(reversed(STANDARD_LEADS)))
    rounded = window.copy()
    rounded[3, 100] += np.float32(0.001)  # one sample of aVR off by 1 uV: a recorded file, not a device window
    assert not derived_exactly(rounded, STANDARD_LEADS)


@pytest.mark.parametrize("name", ["conditioning", "zero-phase high-pass + smoothing", "spline"])
def test_each_linear_stage_matches_filtering_every_lead(name):
    window = _device_window(CINC_LVH_RECORD, wander_mv=0.5)
    stages = {
        "conditioning": lambda rows: condition(rows, 500.0, 0.5, 40.0, 50.0),
        "zero-phase high-pass + smoothing": lambda rows: smooth(zero_phase_highpass(rows, 500.0, 0.67), 500.0,
                                                                40.0, 50.0),
        "spline": lambda rows: spline_baseline(5000, np.array([40.0, 900.0, 2500.0, 4100.0]), rows[:, ::1250]),
    }
    every_lead = stages[name](window)
    shortcut = filter_independent(stages[name], window)
    assert shortcut.dtype == every_lead.dtype and shortcut.shape == every_lead.shape
    np.testing.assert_allclose(shortcut, every_lead, rtol=0, atol=2e-5)


@pytest.mark.parametrize("path, wander_mv", WINDOWS)
def test_device_window_analysis_matches_the_lead_by_lead_chain(path, wander_mv, monkeypatch):
    window = _device_window(path, wander_mv)
    config = PreprocessConfig()
    shortcut = analyze_window(window, 500.0, config)
    monkeypatch.setattr(preprocess, "derived_exactly", lambda signals, names: False)
    every_lead = analyze_window(window, 500.0, config)
    np.testing.assert_array_equal(shortcut.r_peaks, every_lead.r_peaks)
    np.testing.assert_array_equal(shortcut.qrs_onset, every_lead.qrs_onset)
    np.testing.assert_array_equal(shortcut.qrs_offset, every_lead.qrs_offset)
    np.testing.assert_array_equal(shortcut.beat_r_peaks, every_lead.beat_r_peaks)
    np.testing.assert_allclose(shortcut.beats, every_lead.beats, rtol=0, atol=2e-5)
    for key, value in every_lead.parameters.items():
        assert shortcut.parameters[key] == pytest.approx(value, rel=1e-4, abs=1e-3, nan_ok=True), key
    assert [f.name for f in shortcut.flags] == [f.name for f in every_lead.flags]


def test_the_estimate_is_the_same_either_way(monkeypatch):
    analyzer = Analyzer(ClinicConfig())
    patient = PatientContext(60.0, "M", 175.0, 80.0, "LIMB")
    window = _device_window(CINC_LVH_RECORD)
    shortcut = analyzer.analyze_12(window, 500.0, patient).report
    monkeypatch.setattr(preprocess, "derived_exactly", lambda signals, names: False)
    every_lead = analyzer.analyze_12(window, 500.0, patient).report
    assert shortcut["lvm_g"] is not None
    assert shortcut["lvm_g"] == pytest.approx(every_lead["lvm_g"], abs=0.05)
    assert shortcut["n_beats"] == every_lead["n_beats"]
