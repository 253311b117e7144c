"""The fast paths of the signal chain (issue 14, runtime speed) give the reference implementation's numbers.

Each fast helper is checked bit for bit against the plain numpy/scipy call it replaces, and the whole chain
(``analyze_window`` / ``analyze_leads`` and the window estimate) is run twice: as shipped, and with every
helper swapped back to its reference. Beats, R peaks, QRS boundaries, parameters, flags and the model's
per-beat estimates must be identical (not merely close) on the bundled records and, where present, on the
shared real records.
"""

from __future__ import annotations


import numpy as np
import pytest
from scipy.signal import sosfilt, sosfilt_zi, sosfiltfilt

import edge_runtime.preprocess as preprocess
import edge_runtime.runtime.estimate as estimate
import edge_runtime.signal_core.baseline as baseline
import edge_runtime.signal_core.beats as beats_module
import edge_runtime.signal_core.filters as filters
from edge_runtime.assets import CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD, PHILIPS_XML_RECORD, PTBXL_RECORD
from edge_runtime.formats import read_record
from edge_runtime.preprocess import PreprocessConfig, analyze_leads, analyze_window
from edge_runtime.record import STANDARD_LEADS
from edge_runtime.resample import resample_signals
from edge_runtime.runtime.estimate import clean_beats
from edge_runtime.signal_core.baseline import _highpass_sos, zero_phase_highpass
from edge_runtime.signal_core.beats import coarse_candidates
from edge_runtime.signal_core.filters import condition, design_conditioner, design_smoothing, smooth, sosfilt_rows
from edge_runtime.signal_core.median import median_along


def _reference_median(values, axis, dtype=None):
    return np.median(values if dtype is None else np.asarray(values, dtype=dtype), axis=axis)


def _reference_sosfilt_rows(sos, rows, zi):
    return sosfilt(np.array(sos), rows, axis=-1, zi=zi)


def _reference_filtfilt_rows(sos, signals, pad):
    return sosfiltfilt(np.array(sos), signals, axis=-1, padtype="odd", padlen=pad)


def _reference_candidates(signals, detected, offsets, span):
    index = detected[:, None, None] + offsets[None, :, None] + span[None, None, :]
    return signals[:, index].astype(np.float32)


def _reference_knots(signals, qrs_onsets, r_peaks, fs):
    """isoelectric_knots as first written: one beat at a time."""
    n = signals.shape[1]
    width = max(2, int(round(baseline.KNOT_WIDTH_MS * fs / 1000.0)))
    search = int(round(baseline.KNOT_SEARCH_MS * fs / 1000.0))
    guard = int(round(baseline.KNOT_GUARD_MS * fs / 1000.0))
    onsets = np.where(np.asarray(qrs_onsets) >= 0, qrs_onsets,
                      np.asarray(r_peaks) - int(round(baseline.FALLBACK_ONSET_MS * fs / 1000.0)))
    slope = np.zeros(n)
    slope[1:] = np.einsum("ln,ln->n", np.diff(signals, axis=1), np.diff(signals, axis=1))
    cumulative = np.concatenate([[0.0], np.cumsum(slope)])
    times, values = [], []
    for onset in onsets:
        stop = int(onset) - guard
        start = max(0, stop - search)
        if stop - start < width:
            continue
        sums = cumulative[start + width:stop + 1] - cumulative[start:stop - width + 1]
        first = start + int(np.argmin(sums))
        times.append(first + (width - 1) / 2.0)
        values.append(signals[:, first:first + width].mean(axis=1))
    if not times:
        return np.zeros(0), np.zeros((signals.shape[0], 0))
    order = np.argsort(times)
    times_arr = np.asarray(times)[order]
    values_arr = np.stack(values, axis=1)[:, order]
    keep = np.concatenate([[True], np.diff(times_arr) > 0])
    return times_arr[keep], values_arr[:, keep]


@pytest.fixture
def reference_chain(monkeypatch):
    """Swap every fast helper of the chain for the plain call it replaces."""
    for module in (preprocess, beats_module, estimate):
        monkeypatch.setattr(module, "median_along", _reference_median)
    monkeypatch.setattr(filters, "sosfilt_rows", _reference_sosfilt_rows)
    monkeypatch.setattr(filters, "cached_zi", sosfilt_zi)
    monkeypatch.setattr(baseline, "_filtfilt_rows", _reference_filtfilt_rows)
    monkeypatch.setattr(beats_module, "coarse_candidates", _reference_candidates)
    monkeypatch.setattr(baseline, "isoelectric_knots", _reference_knots)


# --- the helpers, one by one ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1, 7), (2, 9), (3, 5), (14, 12, 40), (13, 300), (12, 14, 51), (6,)])
def test_median_along_equals_numpy_median(shape, dtype):
    values = (np.random.default_rng(sum(shape)).normal(0.0, 50.0, shape)).astype(dtype)
    for axis in range(values.ndim):
        fast, reference = median_along(values, axis), np.median(values, axis=axis)
        assert fast.dtype == reference.dtype and fast.shape == reference.shape
        np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize("shape", [(14, 4800), (13, 4800), (1, 9), (6,)])
def test_median_along_in_a_wider_dtype_equals_numpy_on_the_widened_values(shape):
    values = np.random.default_rng(sum(shape)).normal(0.0, 0.3, shape).astype(np.float32)
    if values.ndim == 2:
        values[0, 5] = np.nan
    fast, reference = median_along(values, 0, dtype=np.float64), np.median(values.astype(np.float64), axis=0)
    assert fast.dtype == reference.dtype == np.float64
    np.testing.assert_array_equal(fast, reference)


def test_median_along_gives_nan_where_numpy_does():
    values = np.random.default_rng(1).normal(size=(6, 3, 4))
    values[2, 1, 3] = np.nan
    values[0, 0, 0] = np.inf
    np.testing.assert_array_equal(median_along(values, 0), np.median(values, axis=0))


@pytest.mark.parametrize("in_place_loop", [True, False])
def test_sosfilt_rows_equals_scipy_sosfilt(monkeypatch, in_place_loop):
    if not in_place_loop:  # a scipy without the private loop: the public function, same numbers
        monkeypatch.setattr(filters, "_sosfilt_in_place", None)
    sos = design_conditioner(500.0, 0.5, 40.0, 50.0)
    rows = np.cumsum(np.random.default_rng(2).normal(size=(12, 3000)), axis=1)
    zi = sosfilt_zi(sos)[:, None, :] * rows[None, :, 0, None]
    expected, expected_zf = sosfilt(sos.copy(), rows, axis=-1, zi=zi)
    zi_before = zi.copy()
    out, zf = sosfilt_rows(sos, rows.copy(), zi)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(zf, expected_zf)
    np.testing.assert_array_equal(zi, zi_before)  # the initial state is not written to
    # carried on, as the streaming conditioner does: the second chunk continues the first
    second = np.cumsum(np.random.default_rng(8).normal(size=(12, 500)), axis=1)
    expected_second, _ = sosfilt(sos.copy(), second, axis=-1, zi=expected_zf)
    zf_before = zf.copy()
    out_second, _ = sosfilt_rows(sos, second.copy(), zf)
    np.testing.assert_array_equal(out_second, expected_second)
    np.testing.assert_array_equal(zf, zf_before)


@pytest.mark.parametrize("fs, n", [(500.0, 5000), (250.0, 2500), (1000.0, 10000), (500.0, 700), (500.0, 2)])
def test_zero_phase_highpass_equals_scipy_sosfiltfilt(fs, n):
    rng = np.random.default_rng(int(fs) + n)
    signals = (np.cumsum(rng.normal(size=(12, n)), axis=1) + 0.5 * np.sin(np.arange(n) / fs)).astype(np.float32)
    pad = min(int(round(2.0 * fs)), n - 1)
    expected = sosfiltfilt(_highpass_sos(fs, 0.67).copy(), signals.astype(np.float64), axis=-1, padtype="odd",
                           padlen=pad)
    np.testing.assert_array_equal(zero_phase_highpass(signals, fs, 0.67), expected)


def test_smooth_and_condition_equal_scipy_sosfilt_from_the_cold_start():
    signals = np.cumsum(np.random.default_rng(3).normal(size=(12, 5000)), axis=1).astype(np.float32)
    x = signals.astype(np.float64)
    for notch in (50.0, 60.0, None):
        sos = design_smoothing(500.0, 40.0, notch)
        expected, _ = sosfilt(sos.copy(), x, axis=-1, zi=sosfilt_zi(sos)[:, None, :] * x[None, :, 0, None])
        np.testing.assert_array_equal(smooth(signals, 500.0, 40.0, notch), expected)
        sos = design_conditioner(500.0, 0.5, 40.0, notch)
        expected, _ = sosfilt(sos.copy(), x, axis=-1, zi=sosfilt_zi(sos)[:, None, :] * x[None, :, 0, None])
        np.testing.assert_array_equal(condition(signals, 500.0, 0.5, 40.0, notch), expected.astype(np.float32))


def test_coarse_candidates_equal_the_plain_gather():
    signals = np.random.default_rng(4).normal(size=(12, 5000))
    detected = np.array([300, 1000, 2503, 4000])
    for offsets, span in ((np.arange(-40, 41, 2), np.arange(-50, 51, 2)), (np.arange(-9, 10, 3), np.arange(-12, 13, 3)),
                          (np.array([0]), np.arange(-50, 51, 2)), (np.array([-4, 0, 5]), np.arange(-6, 7, 2))):
        fast = coarse_candidates(signals, detected, offsets, span)
        assert fast.flags.c_contiguous and fast.dtype == np.float32
        np.testing.assert_array_equal(fast, _reference_candidates(signals, detected, offsets, span))


def test_isoelectric_knots_equal_the_beat_by_beat_search():
    rng = np.random.default_rng(7)
    signals = np.cumsum(rng.normal(size=(12, 5000)), axis=1)
    r_peaks = np.array([5, 30, 60, 400, 1200, 1201, 2500, 3700, 4990])
    onsets = np.array([-1, 10, -1, 370, 1170, 1171, -1, 3660, 4960])  # -1: R - 60 ms; early ones truncated/skipped
    for fs in (500.0, 250.0, 1000.0):
        times, values = baseline.isoelectric_knots(signals, onsets, r_peaks, fs)
        ref_times, ref_values = _reference_knots(signals, onsets, r_peaks, fs)
        np.testing.assert_array_equal(times, ref_times)
        np.testing.assert_array_equal(values, ref_values)
    empty = baseline.isoelectric_knots(signals, np.array([3, -1]), np.array([8, 20]), 500.0)
    assert empty[0].shape == (0,) and empty[1].shape == (12, 0)


# --- the whole chain ------------------------------------------------------------------------------------

def _chain(signals, fs, lead_names, config):
    if tuple(lead_names) == STANDARD_LEADS:
        analysis = analyze_window(signals, fs, config)
    else:
        analysis = analyze_leads(signals, fs, tuple(lead_names), config)
    arrays = {name: value for name, value in vars(analysis).items() if isinstance(value, np.ndarray)}
    return arrays, analysis.parameters, [(flag.name, flag.reason) for flag in analysis.flags], clean_beats(analysis.beats)


def _assert_same_chain(windows, monkeypatch_fixture_request):
    configs = (PreprocessConfig(), PreprocessConfig(notch_hz=60.0), PreprocessConfig(baseline_highpass_hz=None))
    fast = [_chain(*window, config) for window in windows for config in configs]
    monkeypatch_fixture_request.getfixturevalue("reference_chain")
    reference = [_chain(*window, config) for window in windows for config in configs]
    for (arrays, parameters, flags, clean), (ref_arrays, ref_parameters, ref_flags, ref_clean) in zip(fast, reference):
        assert arrays.keys() == ref_arrays.keys()
        for name in arrays:
            assert arrays[name].dtype == ref_arrays[name].dtype, name
            np.testing.assert_array_equal(arrays[name], ref_arrays[name], err_msg=name)
        np.testing.assert_equal(parameters, ref_parameters)
        assert flags == ref_flags
        np.testing.assert_array_equal(clean, ref_clean)


def _bundled_windows():
    windows = []
    for path in (CINC_LVH_RECORD, PTBXL_RECORD, LUDB_ANNOTATED_RECORD, PHILIPS_XML_RECORD):
        record = read_record(path).to_standard_12()
        windows.append((record.signals_mv[:, :int(10 * record.fs)], record.fs, STANDARD_LEADS))
    signals, fs = windows[0][0], windows[0][1]
    t = np.arange(signals.shape[1]) / fs
    wander = signals + 0.5 * np.sin(2 * np.pi * 0.3 * t) + np.random.default_rng(6).normal(0.0, 0.05, signals.shape)
    windows.append((wander, fs, STANDARD_LEADS))
    windows.append((resample_signals(signals, fs, 1000.0), 1000.0, STANDARD_LEADS))  # resampled on the way in
    windows.append((signals[:2], fs, ("I", "II")))  # a 2-lead window (analyze_leads)
    return windows


def test_chain_is_bit_identical_to_the_reference_on_bundled_records(request):
    _assert_same_chain(_bundled_windows(), request)


@pytest.mark.shared
def test_chain_is_bit_identical_to_the_reference_on_shared_records(shared_data, request):
    windows = []
    for path in sorted((shared_data / "cinc2021").glob("*.hea"))[::5] + sorted((shared_data / "ptbdb").glob("*.hea")):
        record = read_record(path).to_standard_12()
        windows.append((record.signals_mv[:, :int(10 * record.fs)], record.fs, STANDARD_LEADS))
    for path in sorted((shared_data / "mitdb").glob("*.hea"))[:4] + sorted((shared_data / "cpsc2021").glob("*.hea"))[:2]:
        record = read_record(path)
        windows.append((record.signals_mv[:, :int(10 * record.fs)], record.fs, tuple(record.lead_names)))
    assert len(windows) >= 10
    _assert_same_chain(windows, request)


def test_model_estimates_are_identical_to_the_reference(request):
    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer

    analyzer = Analyzer(ClinicConfig())
    patient = PatientContext(60.0, "M", 175.0, 80.0)
    windows = _bundled_windows()[:5]
    fast = [analyzer.analyze_12(signals, fs, patient).report for signals, fs, _ in windows]
    request.getfixturevalue("reference_chain")
    reference = [analyzer.analyze_12(signals, fs, patient).report for signals, fs, _ in windows]
    assert sum(report["lvm_g"] is not None for report in fast) >= 3
    for report, ref in zip(fast, reference):
        for key in ("lvm_g", "per_beat_lvm_g", "n_beats", "flags", "estimate_status", "parameters"):
            assert report.get(key) == ref.get(key), key
