"""Synchronized single-beat extraction: one fixed window around each R peak, all leads together."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_runtime.signal_core.median import median_along


def beat_window(fs: float, beat_pre_ms: float, beat_post_ms: float) -> tuple[int, int]:
    """Samples before and after the R peak: the window is ``[R - pre, R + post)``."""
    return int(round(beat_pre_ms * fs / 1000.0)), int(round(beat_post_ms * fs / 1000.0))


def extract_beats(conditioned: np.ndarray, r_peaks: np.ndarray, fs: float, beat_pre_ms: float,
                  beat_post_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut the same window ``[R - beat_pre_ms, R + beat_post_ms)`` out of every lead for each R peak.

    Parameters
    ----------
    conditioned : ndarray, shape (n_leads, n)
    r_peaks : ndarray of int
        R-peak indices into ``conditioned``.
    fs : float
        Sampling rate, Hz.
    beat_pre_ms, beat_post_ms : float
        Window before and after the R peak, ms.

    Returns
    -------
    beats : ndarray, shape (n_beats, n_leads, pre + post), float32
    beat_r_peaks : ndarray of int64
        The R peak of each row. Windows that would cross the signal's edge are dropped (never padded).
    """
    pre, post = beat_window(fs, beat_pre_ms, beat_post_ms)
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    inside = r_peaks[(r_peaks - pre >= 0) & (r_peaks + post <= conditioned.shape[1])]
    if inside.size == 0:
        return np.zeros((0, conditioned.shape[0], pre + post), dtype=np.float32), inside
    index = inside[:, None] + np.arange(-pre, post)[None, :]
    beats = conditioned[:, index].transpose(1, 0, 2)
    return np.ascontiguousarray(beats, dtype=np.float32), inside


def middle_beat_index(beat_r_peaks: np.ndarray, n_samples: int) -> int | None:
    """Row of the beat whose R peak is nearest the window centre (the paper's single beat)."""
    if len(beat_r_peaks) == 0:
        return None
    return int(np.argmin(np.abs(np.asarray(beat_r_peaks) - (n_samples - 1) / 2.0)))


def coarse_candidates(signals: np.ndarray, detected: np.ndarray, offsets: np.ndarray, span: np.ndarray) -> np.ndarray:
    """``signals[:, detected[:, None, None] + offsets[None, :, None] + span[None, None, :]]`` as float32, C order.

    ``offsets`` and ``span`` step by the same number of samples, so one beat's candidates are the sliding
    windows over one strided stretch: the stretches are gathered (small) and expanded, instead of a 4-D
    fancy index over the whole array (5x the time). Same values, same contiguous layout.

    Returns
    -------
    ndarray, float32, shape (n_leads, n_beats, n_offsets, n_span)
    """
    steps = np.concatenate([np.diff(offsets), np.diff(span)])
    if offsets.size == 0 or span.size == 0 or steps.size == 0 or np.any(steps != steps[0]):
        index = detected[:, None, None] + offsets[None, :, None] + span[None, None, :]
        return np.ascontiguousarray(signals[:, index], dtype=np.float32)  # no common step: the plain way
    stretch = offsets[0] + span[0] + steps[0] * np.arange(offsets.size + span.size - 1)
    block = signals[:, detected[:, None] + stretch[None, :]].astype(np.float32, copy=False)
    return np.ascontiguousarray(sliding_window_view(block, span.size, axis=2))


ALIGN_MAX_SHIFT_MS = 80.0
ALIGN_QRS_HALF_MS = 100.0


def align_r_peaks(signals: np.ndarray, r_peaks: np.ndarray, fs: float, max_shift_ms: float = ALIGN_MAX_SHIFT_MS,
                  qrs_half_ms: float = ALIGN_QRS_HALF_MS) -> np.ndarray:
    """R peaks moved (by at most ``max_shift_ms``) so each beat's QRS best matches the window's median QRS.

    The detector's fiducial is the spatial-magnitude maximum of one beat, which can jump between two
    similar waves (R and R', R and S of a wide QRS) from beat to beat; beat averaging aligns the beats on
    their whole QRS instead: least squares over all leads within ``qrs_half_ms`` of R against the median
    of the beats at their detected positions (robust to a minority of misplaced fiducials), two passes.
    Run on the baseline-corrected signal, so a wandering baseline does not pull the match.

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n)
    r_peaks : ndarray of int
    fs : float
    max_shift_ms, qrs_half_ms : float

    Returns
    -------
    ndarray of int64, same length as ``r_peaks`` (beats too near the edges keep their position)
    """
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    shift = int(round(max_shift_ms * fs / 1000.0))
    half = int(round(qrs_half_ms * fs / 1000.0))
    margin = shift + half
    inside = np.flatnonzero((r_peaks - margin >= 0) & (r_peaks + margin < signals.shape[1]))
    if inside.size < 3:
        return r_peaks
    detected = r_peaks[inside]
    aligned = r_peaks.copy()
    beats = np.arange(inside.size)
    # Coarse: every 2nd offset and every 2nd sample of the span (the signal is band-limited to 40 Hz).
    offsets = np.arange(-shift, shift + 1, 2)
    span = np.arange(-half, half + 1, 2)
    candidates = coarse_candidates(signals, detected, offsets, span)
    energy = np.einsum("lbok,lbok->bo", candidates, candidates)
    chosen = np.full(inside.size, offsets.size // 2)  # start at the detected positions (offset 0)
    for _ in range(2):
        template = median_along(candidates[:, beats, chosen, :], axis=1)  # (leads, span)
        # |candidate - template|^2 without the difference array (the template's own energy is a constant)
        cost = energy - 2.0 * np.einsum("lbok,lk->bo", candidates, template)
        chosen = np.argmin(cost, axis=1)
    # Fine: the neighbouring single-sample offsets, full span, against the final template at full resolution.
    coarse = detected + offsets[chosen]
    fine_span = np.arange(-half, half + 1)
    full_template = median_along(signals[:, coarse[:, None] + fine_span[None, :]], axis=1)
    steps = np.array([-1, 0, 1])
    lo, hi = r_peaks[inside] - shift, r_peaks[inside] + shift
    trial = np.clip(coarse[:, None] + steps[None, :], lo[:, None], hi[:, None])  # (beats, 3)
    windows = signals[:, trial[:, :, None] + fine_span[None, None, :]]  # (leads, beats, 3, span)
    fine_cost = np.einsum("lbsk->bs", (windows - full_template[:, None, None, :]) ** 2)
    aligned[inside] = trial[beats, np.argmin(fine_cost, axis=1)]
    return aligned
