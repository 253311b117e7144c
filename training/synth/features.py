"""ECG measurements for the floor baselines and the real-vs-synthetic comparison.

Everything upstream of the median beat (conditioning, R peaks, QRS boundaries, PR/QT/axes) is
:func:`edge_runtime.preprocess.analyze_record`; this module only reads amplitudes off its beats,
so synthetic and real records are measured by the same code.
"""

from __future__ import annotations

import math

import numpy as np

from edge_runtime.record import STANDARD_LEADS, EcgRecord

FEATURE_NAMES: tuple[str, ...] = (
    *(f"r_{lead}_mv" for lead in STANDARD_LEADS), "s_V1_mv", "s_V3_mv",
    "sokolow_lyon_mv", "cornell_mv", "qrs_ms", "r_axis", "t_axis", "pr_ms", "qt_ms", "heart_rate_bpm",
    "t_V5_mv", "noise_uv", "usable",
)
_LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}


def median_beat_amplitudes(beats: np.ndarray, onset: int, offset: int, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """R (max above baseline), S (depth below baseline) and T-peak (signed) per lead of the median beat.

    ``onset``/``offset`` are QRS boundaries inside the beat window; the baseline is the mean of the
    20 ms before QRS onset (the PR segment). Also returns the median beat.
    """
    template = np.median(beats, axis=0)
    lo = max(0, onset - int(round(0.020 * fs)))
    baseline = template[:, lo:onset + 1].mean(axis=1)
    qrs = template[:, onset:offset + 1] - baseline[:, None]
    r_amp = np.clip(qrs.max(axis=1), 0.0, None)
    s_amp = np.clip(-qrs.min(axis=1), 0.0, None)
    # T wave: largest |deflection| 80-360 ms after QRS offset
    t_lo, t_hi = offset + int(0.080 * fs), min(template.shape[1], offset + int(0.360 * fs))
    t_seg = template[:, t_lo:t_hi] - baseline[:, None]
    t_amp = t_seg[np.arange(t_seg.shape[0]), np.argmax(np.abs(t_seg), axis=1)] if t_hi > t_lo else np.full(12, np.nan)
    return r_amp, s_amp, t_amp, template


def measure_record(record: EcgRecord, config=None) -> dict[str, float]:
    """Voltages, intervals, axis, rate and beat-to-beat noise of one record (NaN where unknown).

    Returns a dict over :data:`FEATURE_NAMES`; ``usable`` is 1.0 when the signal core found a
    usable window (no excluding quality flag).
    """
    from edge_runtime.preprocess import PreprocessConfig, analyze_record

    config = config or PreprocessConfig()
    out = {name: math.nan for name in FEATURE_NAMES}
    analysis = analyze_record(record, config)
    for key in ("qrs_ms", "r_axis", "t_axis", "pr_ms", "qt_ms", "heart_rate_bpm"):
        out[key] = float(analysis.parameters.get(key, math.nan))
    out["usable"] = float(analysis.usable)
    if analysis.beats.shape[0] == 0:
        return out
    r_index = config.beat_r_index
    # each beat row's detection (its QRS boundaries), placed relative to the R the beat was cut at
    pairs = list(zip(analysis.beat_peak_rows, analysis.beat_r_peaks))
    onsets = [analysis.qrs_onset[j] - p + r_index for j, p in pairs if analysis.qrs_onset[j] >= 0]
    offsets = [analysis.qrs_offset[j] - p + r_index for j, p in pairs if analysis.qrs_offset[j] >= 0]
    onsets = [o for o in onsets if o >= 0]
    offsets = [o for o in offsets if o >= 0]
    if not onsets or not offsets:
        return out
    onset, offset = int(np.median(onsets)), int(np.median(offsets))
    if not 0 < onset < r_index < offset < analysis.beats.shape[2] - 1:
        return out
    r_amp, s_amp, t_amp, template = median_beat_amplitudes(analysis.beats, onset, offset, analysis.fs)
    for lead, i in _LEAD.items():
        out[f"r_{lead}_mv"] = float(r_amp[i])
    out["s_V1_mv"], out["s_V3_mv"] = float(s_amp[_LEAD["V1"]]), float(s_amp[_LEAD["V3"]])
    out["sokolow_lyon_mv"] = float(s_amp[_LEAD["V1"]] + max(r_amp[_LEAD["V5"]], r_amp[_LEAD["V6"]]))
    out["cornell_mv"] = float(r_amp[_LEAD["aVL"]] + s_amp[_LEAD["V3"]])
    out["t_V5_mv"] = float(t_amp[_LEAD["V5"]])
    if analysis.beats.shape[0] >= 3:
        residual = analysis.beats - template[None]
        out["noise_uv"] = float(1000.0 * np.median(np.sqrt(np.mean(residual ** 2, axis=(0, 2)))))
    return out
