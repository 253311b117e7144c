"""Numeric measures behind ``elvmass hil-check``: no I/O, one function per measure."""

from __future__ import annotations

import numpy as np


def lower_envelope_rate(samples: np.ndarray, times: np.ndarray) -> tuple[float, np.ndarray]:
    """Sample rate from frame arrivals, robust to late reads: frames arrive late, never early.

    The earliest-arriving frame (least lateness against a first straight-line fit) in the first and
    in the last quarter of the session define the line; lateness is measured above it.
    """
    slope, intercept = np.polyfit(samples, times, 1)
    residual = times - (slope * samples + intercept)
    quarter = max(1, samples.size // 4)
    a = int(np.argmin(residual[:quarter]))
    b = samples.size - quarter + int(np.argmin(residual[-quarter:]))
    slope = (times[b] - times[a]) / (samples[b] - samples[a])
    lateness = times - (times[a] + slope * (samples - samples[a]))
    return 1.0 / slope, lateness - min(0.0, float(lateness.min()))


def square_wave(index: np.ndarray, x: np.ndarray, fs: float) -> tuple[float, float] | None:
    """``(amplitude_mv, frequency_hz)`` of a square wave sampled at counter values ``index``.

    Amplitude: half the difference of the two levels. Frequency: from the edges seen between
    adjacent samples; edges lost in gaps make some spacings whole multiples of the half period,
    so each spacing is divided by its multiple of the shortest one.
    """
    if x.size < 4:
        return None
    middle = (float(np.max(x)) + float(np.min(x))) / 2
    high = x > middle
    changes = np.flatnonzero((high[1:] != high[:-1]) & (np.diff(index) == 1)) + 1
    if changes.size < 3 or high.all() or not high.any():
        return None
    edges = index[changes].astype(np.float64)
    spacing = np.diff(edges)
    multiples = np.maximum(1, np.round(spacing / spacing.min()))
    half_period_samples = (edges[-1] - edges[0]) / multiples.sum()
    amplitude = (float(np.median(x[high])) - float(np.median(x[~high]))) / 2
    return amplitude, fs / (2 * half_period_samples)


def best_lag(segment: np.ndarray, reference: np.ndarray) -> int:
    """Shift of the (looped) reference that best lines up with the decoded segment, all leads together."""
    n = reference.shape[1]
    length = segment.shape[1]
    score = np.zeros(n)
    for decoded_lead, reference_lead in zip(segment, reference):
        x = decoded_lead - decoded_lead.mean()
        r = np.concatenate([reference_lead, reference_lead]) - reference_lead.mean()
        size = 1 << int(np.ceil(np.log2(2 * n + length)))
        spectrum = np.fft.rfft(r, size) * np.conj(np.fft.rfft(x, size))
        score += np.fft.irfft(spectrum, size)[:n]
    return int(np.argmax(score))


def correlation_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``, shape (len(a), len(b))."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    norms = np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    return (a @ b.T) / np.maximum(norms, 1e-12)
