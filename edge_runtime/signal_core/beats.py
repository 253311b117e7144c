"""Synchronized single-beat extraction: one fixed window around each R peak, all leads together."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

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
    # np.take gathers (leads, beats, samples) C-ordered, so the reordering copy moves whole sample runs
    # (``conditioned[:, index]`` would put the leads innermost); the same values in the same C-ordered result.
    beats = np.take(conditioned, index, axis=1).transpose(1, 0, 2)
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
    return np.ascontiguousarray(_candidate_windows(signals, detected, offsets, span))


def _candidate_windows(signals: np.ndarray, detected: np.ndarray, offsets: np.ndarray,
                       span: np.ndarray) -> np.ndarray:
    """``coarse_candidates`` without its final copy: where the steps agree, a read-only sliding-window view
    of the gathered stretches (the same values; samples and offsets both step one element), else the copy."""
    steps = np.concatenate([np.diff(offsets), np.diff(span)])
    if offsets.size == 0 or span.size == 0 or steps.size == 0 or np.any(steps != steps[0]):
        index = detected[:, None, None] + offsets[None, :, None] + span[None, None, :]
        return np.ascontiguousarray(signals[:, index], dtype=np.float32)  # no common step: the plain way
    stretch = offsets[0] + span[0] + steps[0] * np.arange(offsets.size + span.size - 1)
    # np.take gives the stretches C-contiguous (fancy indexing ``signals[:, index]`` puts the leads innermost),
    # so each window is one contiguous run of the block.
    block = np.ascontiguousarray(np.take(signals, detected[:, None] + stretch[None, :], axis=1), dtype=np.float32)
    lead_stride, beat_stride, sample_stride = block.strides
    return as_strided(block, (block.shape[0], block.shape[1], offsets.size, span.size),
                      (lead_stride, beat_stride, sample_stride, sample_stride), writeable=False)


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
    # The windows as a view, not the 1.5 MB contiguous copy: each (lead, beat, offset) is still one contiguous
    # run of samples, so the einsums below walk the same inner loops in the same order (same bits; held by
    # tests/test_chain_same_outputs.py) while reading the small block instead.
    candidates = _candidate_windows(signals, detected, offsets, span)
    energy = np.einsum("lbok,lbok->bo", candidates, candidates)
    chosen = np.full(inside.size, offsets.size // 2)  # start at the detected positions (offset 0)
    for _ in range(2):
        # (leads, span); the first pass reads one offset for every beat, a plain view instead of a gather
        at_chosen = candidates[:, :, chosen[0], :] if np.all(chosen == chosen[0]) else candidates[:, beats, chosen, :]
        template = median_along(at_chosen, axis=1)
        # |candidate - template|^2 without the difference array (the template's own energy is a constant)
        cost = energy - 2.0 * np.einsum("lbok,lk->bo", candidates, template)
        previous, chosen = chosen, np.argmin(cost, axis=1)
        if np.array_equal(chosen, previous):
            # A pass that moves no beat leaves the template, and so the next pass, exactly as they were: the
            # usual window (the detector's fiducials already match) skips the second pass's identical work.
            break
    # Fine: the neighbouring single-sample offsets, full span, against the final template at full resolution.
    coarse = detected + offsets[chosen]
    fine_span = np.arange(-half, half + 1)
    # np.take gathers C-ordered (several times faster than signals[:, index], which puts the leads innermost);
    # the median does not depend on the layout.
    full_template = median_along(np.take(signals, coarse[:, None] + fine_span[None, :], axis=1), axis=1)
    steps = np.array([-1, 0, 1])
    lo, hi = detected - shift, detected + shift
    trial = np.clip(coarse[:, None] + steps[None, :], lo[:, None], hi[:, None])  # (beats, 3)
    windows = np.take(signals, trial[:, :, None] + fine_span[None, None, :], axis=1)  # (leads, beats, 3, span)
    # The squared difference in the memory layout numpy gives ``signals[:, index] - template`` (beats, steps,
    # leads, span from outer to inner): the einsum's summation order, and so its bits, depend on that layout.
    squared = np.empty((inside.size, steps.size, signals.shape[0], fine_span.size),
                       dtype=np.result_type(windows, full_template)).transpose(2, 0, 1, 3)
    np.subtract(windows, full_template[:, None, None, :], out=squared)
    np.multiply(squared, squared, out=squared)
    fine_cost = np.einsum("lbsk->bs", squared)
    aligned[inside] = trial[beats, np.argmin(fine_cost, axis=1)]
    return aligned
