"""The same analysis for a streamed window and a file: raw 12-lead window -> report.

:class:`Analyzer` holds the loaded model and the clinic config. ``analyze(signals_mv, fs, patient)``
runs the signal core's ``analyze_window`` (the very function training ran on each file, from a
deterministic cold start), then the per-beat model, aggregation, LVH and status of
:mod:`edge_runtime.runtime.estimate`, and returns the report dict plus what the PNG needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.bundle_spec import BundleManifest
from edge_runtime.config import ClinicConfig
from edge_runtime.record import STANDARD_LEADS, PatientContext
from edge_runtime.flags import Flag
from edge_runtime.runtime.estimate import Estimate, ModelInfo, Predictor, estimate_window
from edge_runtime.runtime.report import build_report

# Gaussian-residual fallback: a 90 % central interval is +-1.645 sigma = +-2.06 MAE.
_MAE_TO_Q90 = 1.645 * math.sqrt(math.pi / 2.0)


@dataclass
class WindowResult:
    """One analyzed window: the report and the arrays behind it."""

    report: dict
    estimate: Estimate
    analysis: Any  # edge_runtime.preprocess.BeatAnalysis (None when the window could not be analyzed)
    signals_mv: np.ndarray  # the raw (12, n) window
    fs: float


def interval_from_manifest(manifest: BundleManifest) -> tuple[float | None, float | None, str]:
    """The calibrated interval half-width (g), its coverage, and where it came from.

    Reads the manifest's ``calibration`` (:class:`edge_runtime.bundle_spec.IntervalCalibration`, the
    split-conformal quantile of |residual| on held-out data). Without it, falls back to the
    cross-validation MAE ``metrics["cv_mae_g"]`` scaled as for Gaussian residuals (``approximate``);
    without either, no interval.
    """
    calibration = manifest.calibration
    if calibration is not None:
        return calibration.lvm_halfwidth_g, calibration.coverage, calibration.method
    value = manifest.metrics.get("cv_mae_g")
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return _MAE_TO_Q90 * float(value), 0.9, "approximate (from cv_mae_g, Gaussian residuals assumed)"
    return None, None, "none"


def model_info_from_bundle(bundle: Any) -> ModelInfo:
    """:class:`ModelInfo` from a loaded :class:`edge_runtime.model_bundle.ModelBundle`."""
    manifest = bundle.manifest
    halfwidth, coverage, method = interval_from_manifest(manifest)
    manifest_bytes = (Path(bundle.path) / "manifest.json").read_bytes()
    return ModelInfo(model_id=bundle.model_id, sha256=hashlib.sha256(manifest_bytes).hexdigest(),
                     interval_halfwidth_g=halfwidth, interval_coverage=coverage, trained_on=manifest.training_data,
                     training_ranges=dict(manifest.training_ranges), interval_method=method)


class Analyzer:
    """Model + config: turns raw 12-lead windows into reports.

    Parameters
    ----------
    config : ClinicConfig
        Thresholds, mains frequency, backend/precision defaults.
    bundle_path : str or Path, optional
        Model bundle directory; ``None``/empty = the bundled demo model.
    backend, precision : str, optional
        Override the config's ``backend``/``precision``.
    predictor, model : optional
        Inject an already loaded predictor (tests, bench); skips loading the bundle.
    """

    def __init__(self, config: ClinicConfig = ClinicConfig(), bundle_path: str | Path | None = None,
                 backend: str | None = None, precision: str | None = None,
                 predictor: Predictor | None = None, model: ModelInfo | None = None) -> None:
        from edge_runtime.preprocess import PreprocessConfig

        self.config = config
        self.backend = backend or config.backend
        self.precision = precision or config.precision
        # The mains notch follows the clinic (the bundle accepts any notch above its low-pass).
        self.preprocess_config = dataclasses.replace(PreprocessConfig(), notch_hz=float(config.mains_hz))
        if predictor is None:
            from edge_runtime.inference import load_predictor
            from edge_runtime.model_bundle import load_bundle

            bundle = load_bundle(bundle_path or config.bundle_path or None, self.preprocess_config.to_dict())
            from edge_runtime.model_bundle import BundleError

            try:
                predictor = load_predictor(bundle, backend=self.backend, precision=self.precision)
            except (BundleError, ImportError):
                if backend is not None:
                    raise  # the operator asked for this backend: say why it cannot be used
                # Only the config default was asked: let the bundle's content pick an installed backend.
                predictor = load_predictor(bundle, backend="auto", precision=self.precision)
                self.backend = predictor.backend
            model = model_info_from_bundle(bundle)
        self.predictor = predictor
        self.model = model

    def analyze_12(self, signals_mv: np.ndarray, fs: float, patient: PatientContext,
                   extra_flags: list[Flag] | None = None, source: str | None = None,
                   recorded_utc: str | None = None, gap_mask: np.ndarray | None = None) -> WindowResult:
        """Analyze one raw (12, n) standard-order window (any rate 200-1000 Hz).

        ``gap_mask`` (n,) marks interpolated samples (a short link gap, :mod:`.window`): the beats that
        touch them are left out of the estimate and counted (flag ``link_gaps``)."""
        from edge_runtime.preprocess import analyze_window

        flags = list(extra_flags or [])
        signals_mv = np.asarray(signals_mv, dtype=np.float32)
        analysis = None
        excluded = 0  # beats left out because they touch a bridged gap
        if not np.all(np.isfinite(signals_mv)):
            flags.append(Flag("non_finite_samples", "window contains NaN or infinite samples"))
        else:
            try:
                analysis = analyze_window(signals_mv, fs, self.preprocess_config)
            except ValueError as error:  # the signal core refuses a window it cannot analyze (too short, ...)
                flags.append(Flag("analysis_error", str(error)))
        if analysis is None:
            estimate = estimate_window(np.zeros((0, 12, 1)), {}, flags, patient, self.predictor, self.model,
                                       self.config.lvh_threshold_male_g_m2, self.config.lvh_threshold_female_g_m2)
        else:
            estimate, excluded = self._estimate(analysis, flags, patient, gap_mask, float(fs))
        report = build_report(estimate, patient, self.model, self.config,
                              parameters=None if analysis is None else analysis.parameters, source=source,
                              recorded_utc=recorded_utc, backend=self.backend, precision=self.precision)
        if gap_mask is not None and gap_mask.any():
            report["gap_samples_filled"] = int(np.count_nonzero(gap_mask))
            report["gap_spans"] = gap_spans(gap_mask)
            report["n_beats_excluded_gap"] = excluded
        return WindowResult(report, estimate, analysis, signals_mv, float(fs))

    def analyze_leads(self, signals_mv: np.ndarray, fs: float, present: list[str], patient: PatientContext,
                      extra_flags: list[Flag] | None = None, source: str | None = None,
                      recorded_utc: str | None = None) -> WindowResult:
        """A window lacking some of the 12 leads: rhythm/quality flags from the leads that exist
        (``analyze_leads`` of the signal core), never a number (``needs_12_leads``)."""
        from edge_runtime.preprocess import analyze_leads

        flags = list(extra_flags or [])
        if not any(f.name == "needs_12_leads" for f in flags):
            flags.append(Flag("needs_12_leads", "the model needs all 12 leads"))
        rows = [STANDARD_LEADS.index(name) for name in present]
        analysis = None
        if rows:
            try:
                analysis = analyze_leads(np.asarray(signals_mv)[rows], fs, tuple(present), self.preprocess_config)
            except ValueError as error:
                flags.append(Flag("analysis_error", str(error)))
            else:  # flat leads are the absent ones already named; keep the rhythm findings
                flags += [f for f in analysis.flags if f.name not in ("no_delineation",)]
        estimate = estimate_window(np.zeros((0, 12, 1), dtype=np.float32), {}, flags, patient, self.predictor,
                                   self.model, self.config.lvh_threshold_male_g_m2,
                                   self.config.lvh_threshold_female_g_m2)
        report = build_report(estimate, patient, self.model, self.config,
                              parameters=None if analysis is None else analysis.parameters, source=source,
                              recorded_utc=recorded_utc, backend=self.backend, precision=self.precision)
        return WindowResult(report, estimate, analysis, np.asarray(signals_mv, dtype=np.float32), float(fs))

    def _estimate(self, analysis: Any, flags: list[Flag], patient: PatientContext,
                  gap_mask: np.ndarray | None = None, raw_fs: float | None = None) -> tuple[Estimate, int]:
        """The estimate, and how many beats were left out for touching a bridged gap."""
        flags = flags + analysis.flags
        beats = analysis.beats
        keep = None
        if gap_mask is not None and gap_mask.any() and np.asarray(beats).ndim == 3 and len(beats):
            touching = beats_touching_gaps(analysis.beat_r_peaks, analysis.fs, float(raw_fs or analysis.fs),
                                           gap_mask, self.preprocess_config)
            keep = np.flatnonzero(~touching)
            flags.append(Flag("link_gaps", f"{int(gap_mask.sum())} lost samples interpolated; "
                                           f"{int(touching.sum())} of {len(beats)} beats touch them and are left "
                                           "out of the estimate"))
            beats = beats[keep]
        estimate = estimate_window(beats, analysis.parameters, flags, patient, self.predictor,
                                   self.model, self.config.lvh_threshold_male_g_m2,
                                   self.config.lvh_threshold_female_g_m2)
        if keep is None:
            return estimate, 0
        # rows of the kept beats -> rows of analysis.beats (what the report PNG draws)
        estimate.beat_rows = [int(keep[row]) for row in estimate.beat_rows]
        return estimate, int(len(analysis.beats) - keep.size)


def gap_spans(gap_mask: np.ndarray) -> list[list[int]]:
    """``[[start, stop), ...]`` sample ranges of the raw window that were interpolated."""
    edges = np.diff(np.concatenate([[0], np.asarray(gap_mask, dtype=np.int8), [0]]))
    return [[int(a), int(b)] for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))]


GAP_MARGIN_S = 0.03  # the conditioning filters smear an interpolated stretch a little: keep clear of it


def beats_touching_gaps(beat_r_peaks: np.ndarray, analysis_fs: float, raw_fs: float, gap_mask: np.ndarray,
                        config: Any) -> np.ndarray:
    """True for each beat whose window ``[R - pre, R + post)`` (plus a margin) holds an interpolated sample.

    ``beat_r_peaks`` index the conditioned signal at ``analysis_fs``, which is the raw window resampled and
    shifted by the filter's group delay (``config.delay_s``); ``gap_mask`` indexes the raw window.
    """
    peaks_s = (np.asarray(beat_r_peaks, dtype=np.float64) / analysis_fs) - float(config.delay_s)
    gap_s = np.flatnonzero(gap_mask) / raw_fs
    pre_s = config.beat_pre_ms / 1000.0 + GAP_MARGIN_S
    post_s = config.beat_post_ms / 1000.0 + GAP_MARGIN_S
    if gap_s.size == 0:
        return np.zeros(peaks_s.size, dtype=bool)
    # the nearest gap sample at or after each beat's start decides
    starts = np.searchsorted(gap_s, peaks_s - pre_s)
    nearest = gap_s[np.minimum(starts, gap_s.size - 1)]
    return (starts < gap_s.size) & (nearest < peaks_s + post_s)


def standard_window(signals_mv: np.ndarray, lead_names: tuple[str, ...]) -> tuple[np.ndarray, list[Flag]]:
    """A (12, n) standard-order array from any leads, plus ``needs_12_leads`` when some are missing.

    Missing leads are filled with zeros so that rhythm flags (AF, pacing) can still be computed
    from the leads that exist; the flag makes the estimate ``no_estimate``.
    """
    from edge_runtime.record import derive_limb_leads

    present = dict(zip(lead_names, np.asarray(signals_mv, dtype=np.float32)))
    if "I" in present and "II" in present:
        for name, values in derive_limb_leads(present["I"], present["II"]).items():
            present.setdefault(name, values)
    missing = [name for name in STANDARD_LEADS if name not in present]
    n = np.asarray(signals_mv).shape[1]
    stacked = np.stack([present.get(name, np.zeros(n, dtype=np.float32)) for name in STANDARD_LEADS])
    flags = []
    if missing:
        flags.append(Flag("needs_12_leads", f"the model needs 12 leads; missing {', '.join(missing)}",
                          where=", ".join(missing)))
    return stacked.astype(np.float32), flags


def record_windows(signals_mv: np.ndarray, fs: float, window_s: float = 10.0) -> list[tuple[int, int]]:
    """``(start, stop)`` of the consecutive 10 s windows the live runtime would cut from a record
    (a record shorter than one window is one window; a tail shorter than a window is dropped)."""
    n = np.asarray(signals_mv).shape[1]
    length = int(round(window_s * fs))
    if n <= length:
        return [(0, n)]
    return [(start, start + length) for start in range(0, n - length + 1, length)]


def analyze_file_record(analyzer: Analyzer, record: Any, patient: PatientContext,
                        max_windows: int | None = None) -> tuple[WindowResult, list[WindowResult]]:
    """Analyze a record as the runtime would: per 10 s window, same chain, same estimate.

    Returns the first window with a number (else the first window) and all window results.
    """
    extra: list[Flag] = []
    if record.has_standard_12():
        standard = record.to_standard_12()
        signals, present = standard.signals_mv, list(STANDARD_LEADS)
    else:
        signals, extra = standard_window(record.signals_mv, record.lead_names)
        present = [name for name in STANDARD_LEADS if name in record.lead_names
                   or (name in ("III", "aVR", "aVL", "aVF") and {"I", "II"} <= set(record.lead_names))]
    if getattr(record, "amplitudes_normalized", False):
        extra.append(Flag("normalized_amplitudes", "the file's amplitudes are normalized per lead (e.g. LUDB 1.0.1); "
                                                   "voltages are not physiological"))
    results = []
    for start, stop in record_windows(signals, record.fs)[:max_windows]:
        window = signals[:, start:stop]
        if len(present) == len(STANDARD_LEADS):
            results.append(analyzer.analyze_12(window, record.fs, patient, extra, source=record.source))
        else:
            results.append(analyzer.analyze_leads(window, record.fs, present, patient, extra, source=record.source))
    best = next((r for r in results if r.report["lvm_g"] is not None), results[0])
    return best, results
