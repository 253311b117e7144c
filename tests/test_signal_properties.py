"""Property tests: whatever the input, a clear ValueError or a structurally sound analysis."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.preprocess import analyze_leads, analyze_window
from edge_runtime.signal_core.beats import ALIGN_MAX_SHIFT_MS
from edge_runtime.signal_core.detect import detect_r_peaks


def check_structure(analysis, n_leads: int) -> None:
    n = analysis.conditioned.shape[1]
    assert analysis.conditioned.shape[0] == n_leads and np.all(np.isfinite(analysis.conditioned))
    r = analysis.r_peaks
    assert np.all(np.diff(r) > 0) and np.all((r >= 0) & (r < n))
    assert analysis.beats.shape[0] == len(analysis.beat_r_peaks)
    # beats are cut at detected R peaks, each aligned on the median QRS by at most ALIGN_MAX_SHIFT_MS
    if len(analysis.beat_r_peaks):
        nearest = np.min(np.abs(analysis.beat_r_peaks[:, None] - r[None, :]), axis=1)
        assert np.all(nearest <= int(round(ALIGN_MAX_SHIFT_MS / 1000.0 * analysis.fs)))
    found = (analysis.qrs_onset >= 0) & (analysis.qrs_offset >= 0)
    assert np.all(analysis.qrs_onset[found] < r[found]) and np.all(r[found] < analysis.qrs_offset[found])
    assert (analysis.middle_beat is None) == (analysis.beats.shape[0] == 0)
    if not analysis.usable:
        assert analysis.flags or analysis.middle_beat is None
    for flag in analysis.flags:
        assert flag.name and flag.reason


signal_kinds = st.sampled_from(["noise", "constant", "spikes", "sine", "steps"])


def make_signal(kind: str, n_leads: int, n: int, fs: float, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    if kind == "noise":
        return scale * rng.normal(size=(n_leads, n))
    if kind == "constant":
        return np.full((n_leads, n), scale)
    if kind == "spikes":
        x = np.zeros((n_leads, n))
        x[:, rng.integers(0, n, size=max(1, n // 100))] = scale
        return x
    if kind == "sine":
        return scale * np.sin(2 * np.pi * rng.uniform(0.1, 90) * t)[None, :].repeat(n_leads, axis=0)
    steps = np.cumsum(rng.normal(size=(n_leads, n)) * (rng.random((n_leads, n)) < 0.01), axis=1)
    return scale * steps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=signal_kinds, n_seconds=st.floats(0.85, 6.0), fs=st.sampled_from([200.0, 257.0, 360.0, 500.0, 1000.0]),
       scale=st.sampled_from([0.0, 1e-3, 1.0, 50.0]), seed=st.integers(0, 2**16))
def test_analyze_window_never_fails_deep_inside(kind, n_seconds, fs, scale, seed):
    n = int(n_seconds * fs)
    signals = make_signal(kind, 12, n, fs, scale, seed)
    try:
        analysis = analyze_window(signals, fs)
    except ValueError as error:
        assert "shorter than one beat window" in str(error)
        return
    check_structure(analysis, 12)


@settings(max_examples=25, deadline=None)
@given(n_leads=st.integers(1, 3), kind=signal_kinds, seed=st.integers(0, 2**16))
def test_few_leads_and_bare_detector(n_leads, kind, seed):
    signals = make_signal(kind, n_leads, 2000, 500.0, 1.0, seed)
    check_structure(analyze_leads(signals, 500.0, ("I", "II", "V1")[:n_leads]), n_leads)
    peaks = detect_r_peaks(signals, 500.0)
    assert np.all(np.diff(peaks) > 0) and np.all((peaks >= 0) & (peaks < 2000))
