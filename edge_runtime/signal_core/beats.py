"""Synchronized single-beat extraction: one fixed window around each R peak, all leads together."""

from __future__ import annotations

import numpy as np


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
