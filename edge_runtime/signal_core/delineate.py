"""QRS onset/offset from the multi-lead spatial velocity; frontal axes, PR and QT from the median beat.

QRS boundaries (method ``"spatial-velocity"``): the spatial velocity ``sv[n] = sqrt(sum_l
(c_l[n+1] - c_l[n-1])^2)`` is high during ventricular depolarization in at least some lead.
Per beat, the threshold is ``quiet + QRS_FRACTION * (peak - quiet)`` (peak: largest sv within
60 ms of R; quiet: its 10th percentile over the whole window). The onset is the end of the last run of
``QUIET_RUN_MS`` below threshold before R, the offset the start of the first such run after R
(a run, so the short velocity dip at the R apex is not taken for the end of the QRS) that is
also back within ``OFFSET_DEVIATION`` of the QRS's spatial excursion from the onset level (the
flat bottom of a broad S wave is slow but not over); if none settles within the search window
(discordant ST-T of LBBB or paced beats), the first quiet run.

Axes (degrees, -180..180] use the *net area* of the wave in leads I and aVF of the median beat,
relative to the PR-segment level: ``atan2(area_aVF, area_I)``. P window: 220 ms to 20 ms before the
QRS onset; T window: 40 ms after the QRS offset to 60 % of the RR interval (at most 450 ms).
PR and QT use the spatial magnitude of the median beat: P onset / T end where it falls to
``WAVE_EDGE_FRACTION`` of the way from the window's lowest level up to the wave's maximum,
searching outward from that maximum (approximate: no P wave in AF, flat T waves).
"""

from __future__ import annotations

import math

import numpy as np

QRS_FRACTION = 0.08
OFFSET_DEVIATION = 0.3
WAVE_EDGE_FRACTION = 0.15
T_END_FRACTION = 0.05
QUIET_RUN_MS = 10.0
ONSET_SEARCH_MS = 150.0
OFFSET_SEARCH_MS = 200.0
PEAK_SEARCH_MS = 60.0
LEAD_I, LEAD_AVF = 0, 5  # rows in the standard 12-lead order


def spatial_velocity(conditioned: np.ndarray) -> np.ndarray:
    """``sqrt(sum over leads of the central difference squared)``, shape (n,), mV/sample."""
    diff = np.empty_like(conditioned)
    np.subtract(conditioned[:, 2:], conditioned[:, :-2], out=diff[:, 1:-1])  # straight into place, no temporary
    diff[:, 0] = conditioned[:, 1] - conditioned[:, 0] if conditioned.shape[1] > 1 else 0.0
    diff[:, -1] = conditioned[:, -1] - conditioned[:, -2] if conditioned.shape[1] > 1 else 0.0
    return np.sqrt(np.einsum("ln,ln->n", diff, diff))


def qrs_boundaries(conditioned: np.ndarray, r_peaks: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """QRS onset and offset for each R peak (indices into ``conditioned``; -1 when not found).

    Parameters
    ----------
    conditioned : ndarray, shape (n_leads, n)
    r_peaks : ndarray of int
    fs : float

    Returns
    -------
    onset, offset : ndarray of int64, one per R peak
    """
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    onset = np.full(r_peaks.size, -1, dtype=np.int64)
    offset = np.full(r_peaks.size, -1, dtype=np.int64)
    if r_peaks.size == 0:
        return onset, offset
    conditioned = np.asarray(conditioned, dtype=np.float32)
    sv = spatial_velocity(conditioned)
    pre = int(round(ONSET_SEARCH_MS * fs / 1000))
    post = int(round(OFFSET_SEARCH_MS * fs / 1000))
    peak_half = int(round(PEAK_SEARCH_MS * fs / 1000))
    run = max(2, int(round(QUIET_RUN_MS * fs / 1000)))
    n = sv.size
    index = r_peaks[:, None] + np.arange(-pre, post + 1)[None, :]
    inside = bool(r_peaks.min() - pre >= 0 and r_peaks.max() + post < n)
    if inside:
        windows = sv[index]  # every window inside the signal: no padding to mark, the same values
    else:
        valid = (index >= 0) & (index < n)
        windows = np.where(valid, sv[np.clip(index, 0, n - 1)], np.nan)
    centre = windows[:, pre - peak_half:pre + peak_half + 1]
    peak = np.nanmax(np.where(np.isnan(centre), -np.inf, centre), axis=1)
    # One quiet level for the window (10th percentile of sv: isoelectric segments); cheap and robust.
    quiet_level = np.full(r_peaks.size, np.partition(sv, sv.size // 10)[sv.size // 10])
    threshold = quiet_level + QRS_FRACTION * (peak - quiet_level)
    below = windows < threshold[:, None]  # NaN (outside signal) counts as not quiet
    # quiet_run[j]: samples j .. j+run-1 all below threshold
    csum = _leading_zero_cumsum(below)
    quiet_run = (csum[:, run:] - csum[:, :-run]) == run
    width = quiet_run.shape[1]
    cols = np.arange(width)[None, :]
    before = quiet_run & (cols + run - 1 < pre)
    has_before = before.any(axis=1)
    last_before = width - 1 - np.argmax(before[:, ::-1], axis=1)
    onset[has_before] = (r_peaks - pre + last_before + run - 1)[has_before]
    # The flat bottom of a broad S wave (bundle-branch block) is slow but far from the baseline:
    # the offset must also be back near the level at QRS onset (spatial distance, every lead).
    base_index = np.where(has_before, onset, r_peaks - pre)
    tail = index[:, pre - peak_half:]  # from just before R to the end of the offset search
    if not inside:  # (inside the signal the indices need no clipping: onsets lie within their windows)
        base_index, tail = np.clip(base_index, 0, n - 1), np.clip(tail, 0, n - 1)
    base = conditioned[:, base_index]  # (leads, beats)
    samples = conditioned[:, tail]  # (leads, beats, L')
    from_base = samples - base[:, :, None]
    deviation = np.einsum("lbj,lbj->bj", from_base, from_base)
    reach = deviation[:, :2 * peak_half + 1].max(axis=1)
    near = np.zeros(windows.shape, dtype=bool)
    near[:, pre - peak_half:] = deviation <= OFFSET_DEVIATION ** 2 * reach[:, None]  # squared distances
    csum_near = _leading_zero_cumsum(near)
    settled = quiet_run & ((csum_near[:, run:] - csum_near[:, :-run]) == run)
    # ... unless it never settles within the search (discordant ST-T of LBBB / paced beats):
    # then the first quiet run after R is the offset.
    after = np.where(settled[:, pre + 1:].any(axis=1)[:, None], settled, quiet_run) & (cols > pre)
    has_after = after.any(axis=1)
    first_after = np.argmax(after, axis=1)
    offset[has_after] = (r_peaks - pre + first_after)[has_after]
    return onset, offset


def _leading_zero_cumsum(flags: np.ndarray) -> np.ndarray:
    """Row-wise running count of ``flags`` (int32) after a leading 0 column: the cumulative sums written
    straight into place, instead of an int32 copy, its cumsum and a concatenation (the same integers)."""
    csum = np.empty((flags.shape[0], flags.shape[1] + 1), dtype=np.int32)
    csum[:, 0] = 0
    np.cumsum(flags, axis=1, dtype=np.int32, out=csum[:, 1:])
    return csum


def _baseline(template: np.ndarray, onset: int, fs: float) -> np.ndarray:
    lo = max(0, onset - int(round(0.020 * fs)))
    return template[:, lo:onset + 1].mean(axis=1)


def _axis(area_i: float, area_avf: float) -> float:
    if not (math.isfinite(area_i) and math.isfinite(area_avf)) or (area_i == 0 and area_avf == 0):
        return float("nan")
    return float(np.degrees(np.arctan2(area_avf, area_i)))


def beat_parameters(template: np.ndarray, r_index: int, onset: int, offset: int, fs: float,
                    rr_s: float, lead_names: tuple[str, ...]) -> dict[str, float]:
    """Axes, PR and QT of one median beat.

    Parameters
    ----------
    template : ndarray, shape (n_leads, L)
        Median beat (conditioned, mV).
    r_index, onset, offset : int
        R peak and QRS boundaries as indices into ``template``.
    fs : float
    rr_s : float
        Median RR interval, s (NaN when unknown).
    lead_names : tuple of str
        Names of the rows; axes need ``I`` and ``aVF``.

    Returns
    -------
    dict with ``p_axis``, ``r_axis``, ``t_axis`` (degrees), ``pr_ms``, ``qt_ms`` (NaN when unknown).
    """
    nan = float("nan")
    out = {"p_axis": nan, "r_axis": nan, "t_axis": nan, "pr_ms": nan, "qt_ms": nan}
    length = template.shape[1]
    if not 0 < onset < r_index < offset < length - 1:
        return out
    baseline = _baseline(template, onset, fs)
    centred = template - baseline[:, None]
    ms = fs / 1000.0
    p_lo, p_hi = max(0, onset - int(220 * ms)), onset - int(20 * ms)
    t_end_limit = 450.0 if not math.isfinite(rr_s) else min(450.0, 600.0 * rr_s)
    t_lo = offset + int(40 * ms)
    t_hi = min(length, r_index + int(t_end_limit * ms))
    magnitude = np.sqrt(np.einsum("ln,ln->n", centred, centred))
    has_axes = "I" in lead_names and "aVF" in lead_names
    i_row = lead_names.index("I") if has_axes else -1
    f_row = lead_names.index("aVF") if has_axes else -1

    def area(lo: int, hi: int) -> tuple[float, float]:
        if hi - lo < 2 or not has_axes:
            return nan, nan
        return float(centred[i_row, lo:hi].sum()), float(centred[f_row, lo:hi].sum())

    out["r_axis"] = _axis(*area(onset, offset + 1))
    if p_hi - p_lo > 2:
        out["p_axis"] = _axis(*area(p_lo, p_hi))
        p_peak = p_lo + int(np.argmax(magnitude[p_lo:p_hi]))
        floor = float(magnitude[p_lo:p_peak + 1].min())
        level = floor + WAVE_EDGE_FRACTION * (magnitude[p_peak] - floor)
        quiet = np.flatnonzero(magnitude[p_lo:p_peak + 1] < level)
        if quiet.size and magnitude[p_peak] > floor:
            out["pr_ms"] = (onset - (p_lo + int(quiet[-1]))) / ms
    if t_hi - t_lo > 2:
        out["t_axis"] = _axis(*area(t_lo, t_hi))
        t_peak = t_lo + int(np.argmax(magnitude[t_lo:t_hi]))
        floor = float(magnitude[t_peak:t_hi].min())
        level = floor + T_END_FRACTION * (magnitude[t_peak] - floor)
        quiet = np.flatnonzero(magnitude[t_peak:t_hi] < level)
        if quiet.size and magnitude[t_peak] > floor:
            out["qt_ms"] = (t_peak + int(quiet[0]) - onset) / ms
    return out
