"""Baseline-wander removal for the beats the model sees: zero-phase high-pass, then a PR-point cubic spline.

Follows the AHA/ACCF/HRS 2007 recommendations for the standardization of the ECG (Kligfield et al.,
Circulation 2007;115:1306-1324): a diagnostic ECG keeps the low-frequency response down to 0.05 Hz, or
0.67 Hz when the filter is linear-phase (bidirectional, zero phase), because a causal high-pass above
0.05 Hz shifts and distorts the ST segment and T wave. Two steps, both without phase distortion:

1. ``zero_phase_highpass``: a Butterworth high-pass run forward and backward (``sosfiltfilt``) whose
   combined -3 dB corner is ``corner_hz`` (0.67 Hz by default), with 2 s of odd-reflected padding so a
   drifting window's edges do not ring.
2. ``spline_baseline``: per beat one isoelectric point, the flattest 20 ms of the PR segment (within
   80 ms before the QRS onset), taken as the beat's zero level in every lead; a natural cubic spline
   through those points (extended linearly beyond the first and last) is the residual baseline and is
   subtracted. This is the classic "cubic spline through PR knots" correction (Meyer & Keiser,
   Comput Biomed Res 1977;10:459-470), which leaves ST/T and QRS voltages relative to the PR level as
   they were.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, sosfiltfilt

from edge_runtime.signal_core.filters import cached_zi, sosfilt_rows
from edge_runtime.signal_core.limb_leads import every_lead

HIGHPASS_ORDER = 6
PAD_S = 2.0
KNOT_SEARCH_MS = 80.0  # the PR segment lies within this span before the QRS onset
KNOT_WIDTH_MS = 20.0
KNOT_GUARD_MS = 4.0  # stay clear of the onset itself
FALLBACK_ONSET_MS = 60.0  # when a beat's QRS onset was not found: R - 60 ms


@lru_cache(maxsize=16)
def _highpass_sos(fs: float, corner_hz: float) -> np.ndarray:
    # Forward-backward squares the magnitude: design so that |H(corner)|^2 = 1/sqrt(2) (-3 dB overall).
    design_hz = corner_hz * (math.sqrt(2.0) - 1.0) ** (1.0 / (2 * HIGHPASS_ORDER))
    return butter(HIGHPASS_ORDER, design_hz, btype="highpass", fs=fs, output="sos")


def zero_phase_highpass(signals: np.ndarray, fs: float, corner_hz: float) -> np.ndarray:
    """Zero-phase Butterworth high-pass, -3 dB at ``corner_hz`` after the forward and backward passes.

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n)
    fs : float
        Sampling rate, Hz.
    corner_hz : float
        Overall -3 dB corner (0.67 Hz: the AHA 2007 limit for linear-phase filters).

    Returns
    -------
    ndarray, float64, same shape
    """
    signals = np.asarray(signals, dtype=np.float64)
    if not 0.0 < corner_hz < fs / 2.0:
        raise ValueError(f"high-pass corner {corner_hz} Hz must lie between 0 and fs/2")
    pad = min(int(round(PAD_S * fs)), signals.shape[-1] - 1)
    sos = _highpass_sos(float(fs), float(corner_hz))
    if signals.ndim != 2 or pad < 1:
        return sosfiltfilt(sos.copy(), signals, axis=-1, padtype="odd", padlen=pad)
    return _filtfilt_rows(sos, signals, pad)


def _filtfilt_rows(sos: np.ndarray, signals: np.ndarray, pad: int) -> np.ndarray:
    """``sosfiltfilt(sos, signals, axis=-1, padtype="odd", padlen=pad)`` for 2-D float64 rows, bit for bit:
    the same odd extension, initial states and passes, with the filter's ``zi`` computed once per design
    and no copies beyond one buffer per pass (scipy recomputes ``sosfilt_zi`` and copies at every step)."""
    n = signals.shape[1]
    extended = np.empty((signals.shape[0], n + 2 * pad))
    extended[:, pad:pad + n] = signals
    # scipy's odd_ext: 2 * x[0] - x[pad:0:-1] before, 2 * x[-1] - x[-2:-(pad + 2):-1] after
    np.subtract(2 * signals[:, :1], signals[:, pad:0:-1], out=extended[:, :pad])
    np.subtract(2 * signals[:, -1:], signals[:, -2:-(pad + 2):-1], out=extended[:, pad + n:])
    zi = cached_zi(sos)[:, None, :]
    forward, _ = sosfilt_rows(sos, extended, zi * extended[:, :1])
    backward = forward[:, ::-1].copy()
    backward, _ = sosfilt_rows(sos, backward, zi * backward[:, :1])
    return backward[:, ::-1][:, pad:pad + n]


def isoelectric_knots(signals: np.ndarray, qrs_onsets: np.ndarray, r_peaks: np.ndarray,
                      fs: float) -> tuple[np.ndarray, np.ndarray]:
    """One isoelectric point per beat: the flattest 20 ms within 80 ms before the QRS onset.

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n)
    qrs_onsets : ndarray of int
        QRS onset per beat (-1 when not found: ``r_peak - 60 ms`` is used).
    r_peaks : ndarray of int
    fs : float

    Returns
    -------
    times : ndarray of float, shape (k,)
        Knot centres (samples), increasing.
    values : ndarray, shape (n_leads, k)
        Mean of each lead over the knot's 20 ms.
    """
    n = signals.shape[1]
    width = max(2, int(round(KNOT_WIDTH_MS * fs / 1000.0)))
    search = int(round(KNOT_SEARCH_MS * fs / 1000.0))
    guard = int(round(KNOT_GUARD_MS * fs / 1000.0))
    onsets = np.where(np.asarray(qrs_onsets) >= 0, qrs_onsets,
                      np.asarray(r_peaks) - int(round(FALLBACK_ONSET_MS * fs / 1000.0)))
    # Flatness in all leads at once: the spatial slope (sum of squared first differences).
    slope = np.zeros(n)
    steps = np.diff(signals, axis=1)
    slope[1:] = np.einsum("ln,ln->n", steps, steps)
    cumulative = np.concatenate([[0.0], np.cumsum(slope)])
    # Per beat, the knot window ends at ``stop`` at the latest and starts at ``stop - search`` at the
    # earliest (not before the signal): all beats at once, positions before the signal never chosen.
    stops = np.asarray(onsets, dtype=np.int64) - guard
    starts = np.maximum(0, stops - search)
    usable = stops - starts >= width
    stops, starts = stops[usable], starts[usable]
    if stops.size == 0:
        return np.zeros(0), np.zeros((signals.shape[0], 0))
    positions = (stops - search)[:, None] + np.arange(search - width + 1)[None, :]
    inside = np.maximum(positions, 0)
    sums = np.where(positions >= starts[:, None], cumulative[inside + width] - cumulative[inside], np.inf)
    firsts = positions[np.arange(stops.size), np.argmin(sums, axis=1)]
    times = firsts + (width - 1) / 2.0
    # Each knot's mean as a 2-D row reduction, the same summation numpy did per (leads, width) slice
    # (a 3-D reduction over the last axis adds in another order from 8 samples on).
    windows = signals[:, firsts[:, None] + np.arange(width)[None, :]]  # (leads, beats, width)
    values = windows.reshape(-1, width).mean(axis=1).reshape(signals.shape[0], stops.size)
    order = np.argsort(times)
    times_arr = times[order]
    values_arr = values[:, order]
    keep = np.concatenate([[True], np.diff(times_arr) > 0])  # two beats cannot share a knot
    return times_arr[keep], values_arr[:, keep]


def spline_baseline(n: int, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Baseline through the knots, shape (n_leads, n): natural cubic spline, linear beyond the ends.

    One knot gives a constant, none gives zeros.
    """
    n_leads = values.shape[0]
    if times.size == 0:
        return np.zeros((n_leads, n))
    if times.size == 1:
        return np.repeat(values, n, axis=1)
    grid = np.arange(n, dtype=np.float64)
    if times.size == 2:
        slope = (values[:, 1] - values[:, 0]) / (times[1] - times[0])
        return values[:, :1] + slope[:, None] * (grid - times[0])[None, :]
    spline = CubicSpline(times, values, axis=1, bc_type="natural")
    baseline = spline(np.clip(grid, times[0], times[-1]))
    # Beyond the end knots, continue along the end tangent (a cubic would swing away).
    before, after = grid < times[0], grid > times[-1]
    if before.any():
        baseline[:, before] += spline(times[0], 1)[:, None] * (grid[before] - times[0])[None, :]
    if after.any():
        baseline[:, after] += spline(times[-1], 1)[:, None] * (grid[after] - times[-1])[None, :]
    return baseline


def remove_baseline(signals: np.ndarray, qrs_onsets: np.ndarray, r_peaks: np.ndarray, fs: float,
                    linear: Callable = every_lead) -> np.ndarray:
    """``signals`` minus the PR-knot spline baseline (see module docstring); float32.

    The spline is linear in the knot values: ``linear`` (``limb_leads.filter_independent`` on a device
    window) may build it for the independent leads only; the knots are chosen on every lead either way.
    """
    times, values = isoelectric_knots(signals, qrs_onsets, r_peaks, fs)
    baseline = linear(lambda rows: spline_baseline(signals.shape[1], times, rows), values)
    return (signals - baseline).astype(np.float32)
