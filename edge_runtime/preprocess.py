"""The preprocessing chain shared by the device and training: raw window -> beats + parameters + flags.

``analyze_window`` resamples to ``config.fs``, conditions from a deterministic cold start (exactly
what :class:`edge_runtime.signal_core.filters.StreamingConditioner` computes), detects R peaks with
:class:`edge_runtime.signal_core.detect.StreamingRPeakDetector` and delineates the QRS on that causal
signal, removes baseline wander without phase distortion for the beats
(:mod:`edge_runtime.signal_core.baseline`: zero-phase high-pass + PR-knot spline), cuts the same
window around every R peak in all 12 leads and runs the quality/rhythm guards. See docs/signal.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, EcgRecord
from edge_runtime.resample import resample_signals
from edge_runtime.signal_core import quality
from edge_runtime.signal_core.baseline import remove_baseline, zero_phase_highpass
from edge_runtime.signal_core.beats import align_r_peaks, beat_window, extract_beats, middle_beat_index
from edge_runtime.signal_core.delineate import beat_parameters, qrs_boundaries
from edge_runtime.signal_core.median import median_along
from edge_runtime.signal_core.reversal import reversal_flag
from edge_runtime.signal_core.detect import StreamingRPeakDetector
from edge_runtime.signal_core.filters import check_fs, condition, group_delay_s, smooth
from edge_runtime.signal_core.limb_leads import derived_exactly, every_lead, filter_independent
from edge_runtime.flags import Flag
from edge_runtime.signal_core.rhythm import af_suspected

__all__ = ["PreprocessConfig", "BeatAnalysis", "Flag", "analyze_window", "analyze_record", "analyze_leads"]

# Every ECG parameter the signal core measures; the model is fed four of them (edge_runtime.contract.MODEL_PARAMETERS).
MEASURED_PARAMETERS = ("qrs_ms", "p_axis", "r_axis", "t_axis", "pr_ms", "qt_ms", "heart_rate_bpm")


@dataclass(frozen=True)
class PreprocessConfig:
    """Every preprocessing setting a model bundle records (and the device must reproduce).

    Parameters
    ----------
    fs : float
        Analysis rate, Hz; input is resampled to it.
    highpass_hz, lowpass_hz : float
        Causal conditioning band of the detection stream (see docs/signal.md for the choice of 0.5-40 Hz).
    baseline_highpass_hz : float or None
        The beats the model sees: zero-phase high-pass with this -3 dB corner (0.67 Hz, the AHA 2007
        limit for linear-phase filters), the same low-pass and notch, and a cubic-spline baseline through
        one PR point per beat subtracted. ``None``: beats from the causal conditioned signal, no
        baseline correction (the chain before issue 16).
    notch_hz : float or None
        Mains frequency (50 or 60 Hz) or None.
    beat_pre_ms, beat_post_ms : float
        Beat window ``[R - beat_pre_ms, R + beat_post_ms)``.
    """

    fs: float = 500.0
    highpass_hz: float = 0.5
    lowpass_hz: float = 40.0
    notch_hz: float | None = 50.0
    beat_pre_ms: float = 300.0
    beat_post_ms: float = 500.0
    baseline_highpass_hz: float | None = 0.67

    def __post_init__(self) -> None:
        check_fs(self.fs)
        if self.baseline_highpass_hz is not None and not 0.0 < self.baseline_highpass_hz < self.lowpass_hz:
            raise ValueError(f"baseline_highpass_hz {self.baseline_highpass_hz} must lie between 0 and lowpass_hz")
        if not 0.0 < self.highpass_hz < self.lowpass_hz < self.fs / 2.0:
            raise ValueError(f"need 0 < highpass_hz < lowpass_hz < fs/2, got {self.highpass_hz}, {self.lowpass_hz}")
        if self.notch_hz is not None and not 0.0 < self.notch_hz < self.fs / 2.0:
            raise ValueError(f"notch_hz {self.notch_hz} must be between 0 and fs/2")
        if not (self.beat_pre_ms > 0 and self.beat_post_ms > 0):
            raise ValueError("beat_pre_ms and beat_post_ms must be positive")

    @property
    def beat_length(self) -> int:
        """Samples per beat window (400 at 500 Hz with 300 + 500 ms)."""
        pre, post = beat_window(self.fs, self.beat_pre_ms, self.beat_post_ms)
        return pre + post

    @property
    def beat_r_index(self) -> int:
        """Index of the R peak inside a beat window."""
        return beat_window(self.fs, self.beat_pre_ms, self.beat_post_ms)[0]

    @property
    def delay_s(self) -> float:
        """Group delay of the conditioning filter in the QRS band: conditioned = raw shifted by this."""
        return group_delay_s(self.fs, self.highpass_hz, self.lowpass_hz, self.notch_hz)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        """Inverse of ``to_dict``; unknown keys are an error (a bundle from another version)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocessing settings {sorted(unknown)}")
        values = {k: (None if v is None else float(v)) for k, v in d.items()}
        return cls(**values)


@dataclass
class BeatAnalysis:
    """Everything the chain found in one window (see module docstring)."""

    fs: float
    conditioned: np.ndarray
    r_peaks: np.ndarray
    beats: np.ndarray
    beat_r_peaks: np.ndarray
    middle_beat: int | None
    qrs_onset: np.ndarray
    qrs_offset: np.ndarray
    parameters: dict[str, float]
    flags: list[Flag] = field(default_factory=list)
    baseline_corrected: np.ndarray | None = None  # what the beats are cut from (None: from ``conditioned``)
    beat_peak_rows: np.ndarray | None = None  # per beat row, its detection's index into ``r_peaks``

    @property
    def model_signal(self) -> np.ndarray:
        """The signal the beats are cut from: baseline-corrected when configured, else ``conditioned``."""
        return self.conditioned if self.baseline_corrected is None else self.baseline_corrected

    @property
    def usable(self) -> bool:
        """False when any flag excludes the window from the model (or there is no middle beat)."""
        return self.middle_beat is not None and not any(flag.excludes for flag in self.flags)

    @property
    def flag_names(self) -> list[str]:
        return [flag.name for flag in self.flags]


def _validated(signals_mv: np.ndarray, fs: float, config: PreprocessConfig) -> np.ndarray:
    signals = np.asarray(signals_mv, dtype=np.float64)
    if signals.ndim == 1:
        signals = signals[None, :]
    if signals.ndim != 2:
        raise ValueError(f"signals must be (n_leads, n_samples), got shape {signals.shape}")
    check_fs(fs)
    bad = ~np.isfinite(signals)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1)).tolist()
        raise ValueError(f"signals contain {int(bad.sum())} NaN/inf samples (rows {rows}); "
                         "fill or drop the gap before analysis")
    minimum_s = (config.beat_pre_ms + config.beat_post_ms) / 1000.0
    if signals.shape[1] / fs < minimum_s:
        raise ValueError(f"window of {signals.shape[1] / fs:.3f} s is shorter than one beat window ({minimum_s:g} s)")
    return signals


def analyze_leads(signals_mv: np.ndarray, fs: float, lead_names: tuple[str, ...],
                  config: PreprocessConfig = PreprocessConfig()) -> BeatAnalysis:
    """The chain on any set of leads (1-12); axes need leads I and aVF, else a ``no_delineation`` flag.

    Parameters and returns as :func:`analyze_window`; ``lead_names`` names the rows.
    """
    signals = _validated(signals_mv, fs, config)
    lead_names = tuple(lead_names)
    if len(lead_names) != signals.shape[0]:
        raise ValueError(f"{signals.shape[0]} rows but {len(lead_names)} lead names")
    # Amplifier problems are judged on the raw samples, before any filtering or resampling.
    raw32 = signals.astype(np.float32)  # the checks need no more precision (and run 2x faster)
    flags = [flag for check in (quality.flat_leads, quality.saturated_leads)
             if (flag := check(raw32, fs, lead_names)) is not None]
    fs_a = config.fs
    if fs != fs_a:
        # Start each lead at 0 so the resampler's zero padding adds no edge step (a constant
        # offset does not change the conditioned output: the high-pass comes first).
        raw32 = resample_signals(signals - signals[:, :1], fs, fs_a)
    # Device windows derive III, aVR, aVL, aVF from I and II: the linear filters then run on 8 leads.
    linear = filter_independent if fs == fs_a and derived_exactly(raw32, lead_names) else every_lead
    conditioned = linear(lambda rows: condition(rows, fs_a, config.highpass_hz, config.lowpass_hz, config.notch_hz),
                         raw32)
    r_peaks, unreadable = _detect(conditioned, lead_names, fs_a)
    if unreadable:  # the detector refused a noise burst rather than guess beats in it
        seconds = sum(hi - lo for lo, hi in unreadable) / fs_a
        flags.append(Flag("noise", f"{seconds:.1f} s of the window unreadable (noise burst): no beats taken there"))
    onset, offset = qrs_boundaries(conditioned, r_peaks, fs_a)
    corrected, beat_fiducials = None, r_peaks
    if config.baseline_highpass_hz is not None:
        corrected = baseline_corrected(raw32, fs_a, config, onset, r_peaks, linear)
        beat_fiducials = align_r_peaks(corrected, r_peaks, fs_a)
    beats, beat_r_peaks = extract_beats(conditioned if corrected is None else corrected, beat_fiducials, fs_a,
                                        config.beat_pre_ms, config.beat_post_ms)
    pre, post = beat_window(fs_a, config.beat_pre_ms, config.beat_post_ms)
    beat_peak_rows = np.flatnonzero((beat_fiducials - pre >= 0) & (beat_fiducials + post <= conditioned.shape[1]))
    middle = middle_beat_index(beat_r_peaks, conditioned.shape[1])
    template = median_along(beats, axis=0) if beats.shape[0] else None
    parameters = _parameters(r_peaks, beat_fiducials, onset, offset, template, lead_names, config)
    native = signals.astype(np.float32) if fs != fs_a else raw32
    flags += _window_guards(native, fs, r_peaks, beats, template, middle, parameters, lead_names, config)
    return BeatAnalysis(fs=fs_a, conditioned=conditioned, r_peaks=r_peaks, beats=beats, beat_r_peaks=beat_r_peaks,
                        middle_beat=middle, qrs_onset=onset, qrs_offset=offset, parameters=parameters, flags=flags,
                        baseline_corrected=corrected, beat_peak_rows=beat_peak_rows)


def baseline_corrected(raw: np.ndarray, fs: float, config: PreprocessConfig, qrs_onsets: np.ndarray,
                       r_peaks: np.ndarray, linear: Callable = every_lead) -> np.ndarray:
    """The model's signal: zero-phase high-pass, the conditioner's low-pass and notch, PR-spline baseline removed.

    The low-pass and notch are the conditioner's own (same ~8.4 ms delay at 10 Hz; the causal high-pass adds
    1.1 ms there), so the R peaks and QRS onsets found on ``conditioned`` index this signal too (within one
    sample at 500 Hz). ``linear`` runs the two filters (``limb_leads.filter_independent`` on a device window;
    default: every lead).
    """
    assert config.baseline_highpass_hz is not None
    filtered = linear(lambda rows: smooth(zero_phase_highpass(rows, fs, config.baseline_highpass_hz), fs,
                                          config.lowpass_hz, config.notch_hz), raw)
    return remove_baseline(filtered, qrs_onsets, r_peaks, fs, linear)


def _detect(conditioned: np.ndarray, lead_names: tuple[str, ...], fs: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """R peaks and refused noise stretches; III, aVR, aVL, aVF are combinations of I and II, so a 12-lead
    window uses the 8 independent leads."""
    independent = [lead_names.index(name) for name in INDEPENDENT_LEADS if name in lead_names]
    rows = independent if len(independent) == len(INDEPENDENT_LEADS) else list(range(len(lead_names)))
    detector = StreamingRPeakDetector(fs, len(rows))
    peaks = np.unique(np.concatenate([detector.process(conditioned[rows]), detector.flush()]))
    for lo, hi in detector.unreadable:
        peaks = peaks[(peaks < lo) | (peaks >= hi)]
    return peaks, detector.unreadable


def _parameters(r_peaks: np.ndarray, fiducials: np.ndarray, onset: np.ndarray, offset: np.ndarray,
                template: np.ndarray | None, lead_names: tuple[str, ...], config: PreprocessConfig) -> dict[str, float]:
    """Heart rate, QRS duration (median over beats) and the median beat's axes, PR and QT.

    ``fiducials`` are the (aligned) R positions the beats were cut at: QRS boundaries are placed in the median
    beat relative to them."""
    fs = config.fs
    parameters = dict.fromkeys(MEASURED_PARAMETERS, float("nan"))
    rr_s = float(np.median(np.diff(r_peaks))) / fs if r_peaks.size >= 2 else float("nan")
    if math.isfinite(rr_s) and rr_s > 0:
        parameters["heart_rate_bpm"] = 60.0 / rr_s
    found = (onset >= 0) & (offset >= 0)
    if not found.any():
        return parameters
    parameters["qrs_ms"] = float(np.median(offset[found] - onset[found])) * 1000.0 / fs
    if template is not None:
        pre = config.beat_r_index
        t_onset = pre + int(round(np.median((onset - fiducials)[found])))
        t_offset = pre + int(round(np.median((offset - fiducials)[found])))
        parameters.update(beat_parameters(template, pre, t_onset, t_offset, fs, rr_s, lead_names))
    return parameters


def _window_guards(raw: np.ndarray, raw_fs: float, r_peaks: np.ndarray, beats: np.ndarray,
                   template: np.ndarray | None, middle: int | None, parameters: dict[str, float],
                   lead_names: tuple[str, ...], config: PreprocessConfig) -> list[Flag]:
    """Flags that need the beats: pacing, delineation, electrode reversal, beat count, noise/morphology, AF, wide QRS.

    Pacing spikes are looked for in ``raw`` at the front-end's own rate ``raw_fs``: resampling to the analysis
    rate would spread a 0.5-2 ms spike and halve it at 1000 Hz. A paced window is not also called "wide QRS":
    a paced QRS is wide because it is paced.
    """
    flags: list[Flag] = []
    paced = False
    if template is not None:
        # R peaks in raw time at the raw rate (the conditioning delay, ~10 ms, is small beside the 250 ms search).
        r_raw = np.round(np.asarray(r_peaks) * (raw_fs / config.fs)).astype(np.int64)
        spikes = quality.pacing_spikes(raw, raw_fs, np.ptp(template, axis=1), r_raw)
        if spikes:
            flags.append(spikes)
            paced = spikes.name == "pacing"
    if not ("I" in lead_names and "aVF" in lead_names):
        flags.append(Flag("no_delineation", "axes need leads I and aVF (12-lead record)"))
    irregular, reason = af_suspected(r_peaks, config.fs, beats, config.beat_r_index)
    if template is not None and tuple(lead_names) == STANDARD_LEADS and (
            reversal := reversal_flag(template, config.fs, config.beat_r_index, regular_rhythm=not irregular)):
        flags.append(reversal)
    if beats.shape[0] < quality.MIN_BEATS:
        flags.append(Flag("too_few_beats", f"{beats.shape[0]} complete beats in the window "
                                                  f"(need {quality.MIN_BEATS})"))
    if template is not None:
        flags.extend(quality.template_checks(beats, template, middle, config.fs, config.beat_r_index))
    if irregular:
        flags.append(Flag("af_suspected", reason))
    if parameters["qrs_ms"] >= quality.WIDE_QRS_MS and not paced:
        flags.append(Flag("wide_qrs", f"QRS {parameters['qrs_ms']:.0f} ms >= {quality.WIDE_QRS_MS:g} ms "
                                             "(bundle-branch block suspected)"))
    return flags


def analyze_window(signals_mv: np.ndarray, fs: float, config: PreprocessConfig = PreprocessConfig()) -> BeatAnalysis:
    """Run the whole chain on one raw 12-lead window.

    Parameters
    ----------
    signals_mv : ndarray, shape (12, n)
        Raw ECG in mV, standard lead order, any rate 200-1000 Hz.
    fs : float
        Its sampling rate, Hz.
    config : PreprocessConfig

    Returns
    -------
    BeatAnalysis
        At ``config.fs``; indices refer to ``conditioned``.

    Raises
    ------
    ValueError
        Wrong shape, rate outside 200-1000 Hz, NaN/inf samples, or shorter than one beat window.
    """
    signals = np.asarray(signals_mv)
    if signals.ndim != 2 or signals.shape[0] != len(STANDARD_LEADS):
        raise ValueError(f"analyze_window needs the 12 standard leads as rows, got shape {signals.shape}; "
                         "use EcgRecord.to_standard_12() or analyze_leads() for other lead sets")
    return analyze_leads(signals, fs, STANDARD_LEADS, config)


def analyze_record(record: EcgRecord, config: PreprocessConfig = PreprocessConfig()) -> BeatAnalysis:
    """``analyze_window`` on the record's 12 standard leads (derived limb leads when needed)."""
    standard = record.to_standard_12()
    return analyze_window(standard.signals_mv, standard.fs, config)
