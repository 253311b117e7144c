"""Pacing (issue 16): pacemaker spikes of a >= 500 Hz front-end are found at the front-end's own rate, and a paced
window reads "paced", not "wide QRS". Spikes are synthetic (evaluation/pacing_sim.py) on real records."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
from edge_runtime.preprocess import PreprocessConfig, analyze_window
from edge_runtime.runtime.pipeline import Analyzer
from evaluation.pacing_check import at_rate, paced_outcomes, unpaced_outcomes
from evaluation.pacing_sim import add_pacing_spikes, lead_weights
from evaluation.real_records import load_windows, record_paths


def _paced(window, fs: float, width_ms: float, amplitude_mv: float, seed: int = 0) -> np.ndarray:
    signals = at_rate(window, fs)
    clean = analyze_window(signals, fs)
    r_raw = np.round((clean.r_peaks / clean.fs - PreprocessConfig().delay_s) * fs).astype(np.int64)
    return add_pacing_spikes(signals, fs, r_raw, width_ms, amplitude_mv, lead_weights(np.random.default_rng(seed)))


def test_box_integrated_spike_keeps_its_area():
    signals = np.zeros((12, 1000))
    weights = np.ones(12)
    one = add_pacing_spikes(signals, 500.0, np.array([500]), 1.0, 2.0, weights)
    assert np.isclose(one.sum(axis=1)[0] / 500.0 * 1000.0, 2.0 * 1.0)  # mV x ms
    assert np.count_nonzero(one[0]) <= 2 and one[0].max() <= 1.0 + 1e-12


@pytest.mark.parametrize("fs", [500.0, 1000.0])
def test_paced_bundled_records_say_paced_and_get_no_estimate(fs):
    analyzer = Analyzer()
    for window in load_windows([PTBXL_RECORD, CINC_LVH_RECORD]):
        result = analyzer.analyze_12(_paced(window, fs, 1.0, 2.0), fs, window.patient)
        names = [f.name for f in result.estimate.flags]
        assert "pacing" in names and "wide_qrs" not in names, names
        assert result.report["lvm_g"] is None
        assert any("Pacemaker" in f.operator_text for f in result.estimate.flags)


def test_small_short_spikes_at_1000_hz_are_seen_at_the_front_end_rate():
    # 0.5 ms, 1 mV: one 0.5 mV sample at 1000 Hz; resampled to 500 Hz first it would be half as tall.
    for window in load_windows([PTBXL_RECORD, CINC_LVH_RECORD]):
        assert "pacing" in analyze_window(_paced(window, 1000.0, 0.5, 1.0), 1000.0).flag_names


@pytest.mark.shared
def test_paced_wide_qrs_record_says_paced_not_wide_qrs():
    window = load_windows([shared_path("cinc2021", "E07509.hea")])[0]  # right bundle-branch block, QRS 140 ms
    assert "wide_qrs" in analyze_window(window.signals_mv, window.fs).flag_names
    names = analyze_window(_paced(window, 500.0, 1.0, 2.0), 500.0).flag_names
    assert "pacing" in names and "wide_qrs" not in names, names


@pytest.mark.shared
def test_pacing_on_every_real_12_lead_record(shared_data):
    # The floors of docs/signal.md (elvmass bench-pacing): no false pacing flag on the records as recorded,
    # >= 50 of 54 windows flagged for 1 ms / 1 mV spikes at 500 Hz and for 0.5 ms / 1 mV spikes at 1000 Hz.
    windows = load_windows(record_paths(shared_data))
    assert len(windows) == 54
    for fs in (500.0, 1000.0):
        assert unpaced_outcomes(windows, fs)["pacing"] == 0
    assert paced_outcomes(windows, 500.0, 1.0, 1.0)["pacing"] >= 50
    assert paced_outcomes(windows, 1000.0, 0.5, 1.0)["pacing"] >= 50
    assert paced_outcomes(windows, 500.0, 2.0, 2.0)["pacing"] >= 53
