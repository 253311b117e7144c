"""Synthetic pacemaker spikes on real ECGs, as a front-end sampling at ``fs`` would record them.

A pacing pulse is a rectangle ``width_ms`` long (0.5-2 ms for modern pacemakers) and ``amplitude_mv`` high on the
body surface, projected onto the leads by a fixed random dipole direction (I, II and V1-V6 independent weights
in [-1, 1], III and the augmented leads by Einthoven/Goldberger). The front-end integrates each sample period
(an ideal box anti-alias filter), so a pulse shorter than one period lands in one or two samples with its area
kept: at 500 Hz a 1 ms, 2 mV pulse is a 1 mV one-sample spike. Pulses fire ``lead_ms`` before each R peak
(ventricular pacing: the spike precedes the paced QRS).
"""

from __future__ import annotations

import numpy as np

from edge_runtime.record import derive_limb_leads


def lead_weights(rng: np.random.Generator) -> np.ndarray:
    """Projection of one pacing dipole on the 12 standard leads (largest weight 1)."""
    i, ii, *chest = rng.uniform(-1.0, 1.0, size=8)
    limb = derive_limb_leads(np.array([i]), np.array([ii]))
    weights = np.array([i, ii, limb["III"][0], limb["aVR"][0], limb["aVL"][0], limb["aVF"][0], *chest])
    return weights / np.max(np.abs(weights))


def add_pacing_spikes(signals: np.ndarray, fs: float, r_peaks: np.ndarray, width_ms: float, amplitude_mv: float,
                      weights: np.ndarray, lead_ms: float = 80.0) -> np.ndarray:
    """``signals`` (12, n) at ``fs`` with one box-integrated pacing pulse ``lead_ms`` before each R peak."""
    out = np.array(signals, dtype=np.float64, copy=True)
    period_ms = 1000.0 / fs
    for r in np.asarray(r_peaks):
        start_ms = r * period_ms - lead_ms
        stop_ms = start_ms + width_ms
        first, last = int(np.floor(start_ms / period_ms)), int(np.floor(stop_ms / period_ms))
        for k in range(first, last + 1):
            if not 0 <= k < out.shape[1]:
                continue
            overlap = min(stop_ms, (k + 1) * period_ms) - max(start_ms, k * period_ms)
            out[:, k] += weights * amplitude_mv * max(overlap, 0.0) / period_ms
    return out
