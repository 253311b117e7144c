"""Start-up warm-up of the run loop: one synthetic window through the whole analysis before the stream.

The first window a fresh process analyzes costs about three times a later one (measured 30 vs 10 ms
on the development machine): the filter designs are computed and cached, numpy's buffers are first
allocated and page-faulted, the model backend sets up its kernels and memory. A streaming device pays
that once at start-up (``elvmass run``, the station) instead of in the first 10 s window; the result
of the warm-up window is discarded. Nothing it computes depends on the data: the numbers of every
later window are the same with or without it (test).
"""

from __future__ import annotations

import numpy as np

from edge_runtime.record import PatientContext

# Per lead (standard order) amplitudes of the synthetic P, QRS and T waves, mV: a plausible normal ECG.
_QRS_MV = np.array([0.8, 1.2, 0.4, -1.0, 0.2, 0.8, -0.8, 0.3, 0.9, 1.5, 1.3, 1.0])
_WARM_UP_PATIENT = PatientContext(60.0, "M", 175.0, 75.0)


def synthetic_window(fs: float = 500.0, seconds: float = 10.0, rr_s: float = 0.8) -> np.ndarray:
    """A (12, n) float32 window of Gaussian P-QRS-T complexes every ``rr_s`` seconds plus faint noise."""
    t = np.arange(int(round(seconds * fs))) / fs
    wave = np.zeros_like(t)
    for r in np.arange(0.4, seconds, rr_s):
        wave += np.exp(-0.5 * ((t - r) / 0.012) ** 2)  # QRS
        wave += 0.12 * np.exp(-0.5 * ((t - r + 0.16) / 0.02) ** 2)  # P
        wave += 0.25 * np.exp(-0.5 * ((t - r - 0.28) / 0.045) ** 2)  # T
    noise = np.random.default_rng(0).normal(0.0, 0.01, (len(_QRS_MV), t.size))
    return (_QRS_MV[:, None] * wave[None, :] + noise).astype(np.float32)


def warm_up(analyzer, fs: float = 500.0) -> None:
    """Run ``analyzer.analyze_12`` once on :func:`synthetic_window` and discard the result.

    Parameters
    ----------
    analyzer : edge_runtime.runtime.pipeline.Analyzer
    fs : float
        The stream's rate (the filter designs are cached per rate).
    """
    analyzer.analyze_12(synthetic_window(fs), fs, _WARM_UP_PATIENT)
