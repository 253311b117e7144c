"""Baseline wander (issue 16): zero-phase high-pass + PR-spline baseline, and the metamorphic wander check.

Thresholds are the ones docs/signal.md states (printed by ``elvmass bench-baseline``).
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
from edge_runtime.preprocess import PreprocessConfig, analyze_window
from edge_runtime.runtime.pipeline import Analyzer
from edge_runtime.signal_core.baseline import remove_baseline, spline_baseline, zero_phase_highpass
from evaluation.real_records import load_windows, record_paths
from evaluation.wander_check import lead_wander, run_check, summarize

MEDIAN_DELTA_MAX_G = 1.0


def test_zero_phase_highpass_has_its_corner_and_no_delay():
    fs = 500.0
    t = np.arange(int(20 * fs)) / fs
    for freq, low, high in ((0.67, 0.68, 0.74), (0.15, 0.0, 0.001), (2.0, 0.99, 1.001)):
        out = zero_phase_highpass(np.sin(2 * np.pi * freq * t)[None], fs, 0.67)[0]
        middle = slice(int(6 * fs), int(14 * fs))
        gain = np.std(out[middle]) / np.std(np.sin(2 * np.pi * freq * t)[middle])
        assert low <= gain <= high, (freq, gain)
    # zero phase: a 2 Hz sine comes out where it went in (a causal filter would shift it)
    sine = np.sin(2 * np.pi * 2.0 * t)
    out = zero_phase_highpass(sine[None], fs, 0.67)[0]
    assert np.max(np.abs(out[2500:7500] - sine[2500:7500])) < 0.01


def test_spline_baseline_passes_through_its_knots_and_extends_linearly():
    times = np.array([100.0, 600.0, 1100.0, 1600.0])
    values = np.array([[0.0, 0.3, -0.2, 0.1]])
    base = spline_baseline(2000, times, values)
    np.testing.assert_allclose(base[0, times.astype(int)], values[0], atol=1e-9)
    assert np.allclose(np.diff(base[0, :100], 2), 0.0, atol=1e-12)  # linear before the first knot
    assert np.allclose(np.diff(base[0, 1601:], 2), 0.0, atol=1e-12)
    assert spline_baseline(10, np.zeros(0), np.zeros((2, 0))).shape == (2, 10)


def test_baseline_correction_keeps_st_level_and_qrs_voltage():
    # A clean real record with a slow ramp and a 0.3 Hz wave added: the corrected median beat is the clean one.
    clean = analyze_window(_bundled(PTBXL_RECORD), 500.0)
    n = clean.conditioned.shape[1]
    t = np.arange(n) / 500.0
    drift = 0.4 * np.sin(2 * np.pi * 0.3 * t) + 0.05 * t
    drifted = analyze_window(_bundled(PTBXL_RECORD) + drift[None], 500.0)
    a, b = np.median(clean.beats, axis=0), np.median(drifted.beats, axis=0)
    assert np.max(np.abs(np.ptp(a, axis=1) - np.ptp(b, axis=1))) < 0.05  # QRS voltage, mV
    st = slice(150 + 40, 150 + 80)  # 80-160 ms after R
    assert np.max(np.abs(a[:, st].mean(axis=1) - b[:, st].mean(axis=1))) < 0.05  # ST level, mV


def test_remove_baseline_on_a_flat_signal_is_identity():
    flat = np.zeros((3, 2000))
    assert np.array_equal(remove_baseline(flat, np.array([400, 900]), np.array([450, 950]), 500.0), flat)


def _bundled(path) -> np.ndarray:
    from edge_runtime.formats import read_record

    return read_record(path).to_standard_12().signals_mv.astype(np.float64)


def _windows_of(paths):
    return load_windows(list(paths))


def test_wander_does_not_move_the_bundled_models_estimate_on_the_bundled_records():
    # Runs without ../shared/data: the two bundled real 12-lead records, wander at 0.15, 0.3, 0.5 Hz.
    windows = _windows_of([PTBXL_RECORD, CINC_LVH_RECORD])
    rows, _ = run_check(Analyzer(), windows, PreprocessConfig().baseline_highpass_hz)
    summary = summarize(rows)
    assert summary["records_with_estimate"] == 2
    assert summary["records_losing_estimate"] == []
    assert summary["median_abs_delta_g"] <= MEDIAN_DELTA_MAX_G, rows


def test_wander_generator_is_a_consistent_12_lead_signal():
    wander = lead_wander(5000, 500.0, 0.3, 0.5, np.random.default_rng(0))
    np.testing.assert_allclose(wander[2], wander[1] - wander[0], atol=1e-12)  # III = II - I
    np.testing.assert_allclose(wander[3] + wander[4] + wander[5], 0.0, atol=1e-12)  # aVR + aVL + aVF = 0
    assert np.allclose(np.max(np.abs(wander[[0, 1, 6, 11]]), axis=1), 0.5, atol=0.01)


@pytest.mark.shared
def test_wander_on_every_real_12_lead_record(shared_data):
    # The metamorphic check of docs/signal.md (elvmass bench-baseline, seed 0).
    windows = load_windows(record_paths(shared_data))
    assert len(windows) == 54
    analyzer = Analyzer()
    after, _ = run_check(analyzer, windows, PreprocessConfig().baseline_highpass_hz)
    summary = summarize(after)
    assert summary["records_with_estimate"] >= 40
    assert summary["median_abs_delta_g"] <= MEDIAN_DELTA_MAX_G
    assert len(summary["records_losing_estimate"]) <= 0, summary["records_losing_estimate"]
    before, _ = run_check(analyzer, windows, None)
    assert len(summarize(before)["records_losing_estimate"]) >= 30  # what the causal high-pass alone did
