"""One 10 s window's analysis -> an LV-mass estimate with interval, LVH verdict and status.

Steps (each a small function):

1. ``clean_beats``: keep the synchronized beats whose 12-lead shape matches the window's median
   beat (drops ectopic and artefact beats; the paper's model saw sinus beats).
2. ``model_inputs`` (:mod:`edge_runtime.contract`): demographics and ECG parameters in raw units;
   unknown values are NaN and named so the result lists them as imputed (the bundle imputes with
   its training medians).
3. the predictor runs on every clean beat; ``aggregate`` takes the median, the spread across beats
   (IQR) and the interval ``median +- q`` where ``q`` is the split-conformal residual quantile the
   bundle was calibrated with on held-out data (so the interval has the stated coverage there).
4. ``lvh_verdict``: indexed LVM (LVM / BSA, Mosteller) against the sex-specific threshold;
   ``index_interval`` and ``three_state_verdict``: "LVH", "no LVH" or "borderline" (the index interval
   reaches both sides of the threshold).
5. ``decide_status``: ``ok``, ``outside_population`` (a number, clearly marked, with the reason)
   or ``no_estimate`` (no number, with the reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from edge_runtime.contract import model_inputs
from edge_runtime.flags import Consequence, Flag, names_with
from edge_runtime.record import PatientContext
from edge_runtime.signal_core.median import median_along

STATUS_OK = "ok"
STATUS_OUTSIDE = "outside_population"
STATUS_NONE = "no_estimate"

# What each flag does is decided in one place, the registry (edge_runtime/flags.py).
NO_ESTIMATE_FLAGS = names_with(Consequence.BLOCKS)
OUTSIDE_POPULATION_FLAGS = names_with(Consequence.OUTSIDE)

MIN_BEAT_CORRELATION = 0.9  # per-beat correlation with the median beat, all 12 leads concatenated
MIN_CLEAN_BEATS = 3


class Predictor(Protocol):
    """What the estimate needs from a model backend (``edge_runtime.inference``)."""

    def predict(self, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ModelInfo:
    """What the estimate needs to know about the model bundle besides its predictor."""

    model_id: str
    sha256: str
    interval_halfwidth_g: float | None  # split-conformal residual quantile on held-out data
    interval_coverage: float | None  # its nominal coverage (e.g. 0.9)
    trained_on: str = "synthetic data"  # the manifest's training_data text
    training_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    interval_method: str = "split-conformal"  # how the half-width was obtained (see pipeline.interval_from_manifest)


@dataclass
class Estimate:
    """The result of one window (what the report, the store and ``analyze --json`` show)."""

    estimate_status: str
    lvm_g: float | None = None
    lvm_interval_g: tuple[float, float] | None = None
    lvm_spread_g: float | None = None  # IQR of the per-beat estimates
    per_beat_lvm_g: list[float] = field(default_factory=list)
    lvm_index_g_m2: float | None = None
    lvh: bool | None = None  # the point index against the threshold (kept for readers of the boolean)
    lvh_threshold_g_m2: float | None = None
    lvm_index_interval_g_m2: tuple[float, float] | None = None  # the LV-mass interval divided by BSA
    lvh_verdict: str | None = None  # "LVH", "no LVH" or "borderline" (the index interval spans the threshold)
    n_beats: int = 0
    flags: list[Flag] = field(default_factory=list)
    imputed: list[str] = field(default_factory=list)
    beat_rows: list[int] = field(default_factory=list)  # rows of analysis.beats that were used

    @property
    def has_number(self) -> bool:
        return self.lvm_g is not None


def clean_beats(beats: np.ndarray, min_correlation: float = MIN_BEAT_CORRELATION) -> np.ndarray:
    """Rows of ``beats`` (n, 12, L) whose shape matches the median beat.

    Parameters
    ----------
    beats : ndarray, shape (n_beats, 12, beat_length)
    min_correlation : float
        Pearson correlation with the median beat (12 leads concatenated) a beat needs.

    Returns
    -------
    ndarray of int
        Indices of the clean beats, in order.
    """
    given = np.asarray(beats)
    beats = np.asarray(given, dtype=np.float64)
    if beats.ndim != 3 or beats.shape[0] == 0:
        return np.zeros(0, dtype=int)
    flat = beats.reshape(beats.shape[0], -1)
    with np.errstate(invalid="ignore"):  # inf - inf in a row with both: that row is dropped below
        row_mean = flat.mean(axis=1, keepdims=True)
    # A NaN or an infinity makes its row's mean non-finite, so finite means spare the full isfinite scan
    # (the scan still decides whenever a mean is not finite, e.g. an overflowing sum of finite values).
    if not np.isfinite(row_mean).all() and not np.all(np.isfinite(beats)):
        finite = np.isfinite(beats).all(axis=(1, 2))
        keep = np.flatnonzero(finite)
        return keep[clean_beats(beats[keep], min_correlation)] if keep.size else keep
    template = _median_beat(given, flat)
    if np.may_share_memory(beats, given):  # the caller's own float64 array: leave it untouched
        centred = flat - row_mean
    else:  # our own float64 copy: centred in place (the same subtraction) instead of another 0.5 MB array
        centred = np.subtract(flat, row_mean, out=flat)
    template_centred = template - template.mean()
    # np.linalg.norm's own arithmetic (sqrt of the summed squares; x.dot(x) for a vector) without its copies
    row_norms = np.sqrt(np.add.reduce(centred * centred, axis=1))
    denominator = row_norms * np.sqrt(template_centred.dot(template_centred))
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = centred @ template_centred / denominator
    return np.flatnonzero(np.nan_to_num(correlation, nan=-1.0) >= min_correlation)


def _median_beat(given: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``median_along(flat, axis=0)`` (float64), sorted from the float32 beats when they are float32 (half the
    bytes sorted; the same values). Only the finite beats of ``clean_beats`` reach here. A zero median may come
    out as -0.0 where the float64 sort gave +0.0 (median_along's documented freedom): it changes no
    correlation, so no chosen row."""
    if given.dtype == np.float32:
        return median_along(given.reshape(given.shape[0], -1), axis=0, dtype=np.float64)
    return median_along(flat, axis=0)


def aggregate(per_beat_lvm_g: np.ndarray, interval_halfwidth_g: float | None) -> tuple[float, float, tuple[float, float] | None]:
    """Median LV mass, IQR across beats, and the calibrated interval ``median +- halfwidth``."""
    values = np.asarray(per_beat_lvm_g, dtype=np.float64)
    median = float(np.median(values))
    q25, q75 = np.percentile(values, [25, 75])
    interval = None
    if interval_halfwidth_g is not None and math.isfinite(interval_halfwidth_g):
        interval = (max(0.0, median - interval_halfwidth_g), median + interval_halfwidth_g)
    return median, float(q75 - q25), interval


def lvh_verdict(lvm_g: float, patient: PatientContext, threshold_male: float, threshold_female: float,
                ) -> tuple[float | None, bool | None, float | None]:
    """Indexed LVM (g/m2), the LVH verdict and the threshold used.

    The verdict is ``None`` (unknown) when sex, height or weight were not given: an index from
    imputed body size would be a guess presented as a finding.
    """
    threshold = {"M": threshold_male, "F": threshold_female}.get(patient.sex or "")
    bsa = patient.bsa_m2
    if bsa is None:
        return None, None, threshold
    index = lvm_g / bsa
    return index, (None if threshold is None else bool(index > threshold)), threshold


VERDICT_LVH = "LVH"
VERDICT_NO_LVH = "no LVH"
VERDICT_BORDERLINE = "borderline"


def index_interval(lvm_interval_g: tuple[float, float] | None, bsa_m2: float | None) -> tuple[float, float] | None:
    """The LV-mass interval indexed to body surface area (g/m2); ``None`` without an interval or a BSA.

    BSA is taken as exact (it is measured, not modelled), so the index interval is the mass interval / BSA.
    """
    if lvm_interval_g is None or bsa_m2 is None or not bsa_m2 > 0:
        return None
    return lvm_interval_g[0] / bsa_m2, lvm_interval_g[1] / bsa_m2


def three_state_verdict(index_g_m2: float | None, interval_g_m2: tuple[float, float] | None,
                        threshold_g_m2: float | None) -> str | None:
    """``"LVH"``, ``"no LVH"`` or ``"borderline"``; ``None`` when the index or the threshold is unknown.

    Borderline when the index interval reaches both sides of the threshold (LVH is ``index > threshold``):
    the data cannot tell LVH from no LVH, and a definite word would overstate the result. Without an
    interval the verdict is the point index against the threshold.
    """
    if index_g_m2 is None or threshold_g_m2 is None:
        return None
    if interval_g_m2 is not None and interval_g_m2[0] <= threshold_g_m2 < interval_g_m2[1]:
        return VERDICT_BORDERLINE
    return VERDICT_LVH if index_g_m2 > threshold_g_m2 else VERDICT_NO_LVH


def decide_status(flags: list[Flag]) -> str:
    """``no_estimate`` if any flag blocks the estimate, else ``outside_population`` if any flag marks the
    patient outside the studied population, else ``ok`` (consequences: :mod:`edge_runtime.flags`)."""
    consequences = {flag.consequence for flag in flags}
    if Consequence.BLOCKS in consequences:
        return STATUS_NONE
    if Consequence.OUTSIDE in consequences:
        return STATUS_OUTSIDE
    return STATUS_OK


def _range_flags(patient: PatientContext, ranges: dict[str, tuple[float, float]]) -> list[Flag]:
    flags = []
    for name, (low, high) in ranges.items():
        value = getattr(patient, name, None)
        if value is not None and not low <= value <= high:
            flags.append(Flag("outside_training_range", f"{name}={value:g} outside the training range {low:g}-{high:g}",
                              where=f"{name.split('_')[0].capitalize()} {value:g}"))
    return flags


def estimate_window(beats: np.ndarray, parameters: dict[str, float], signal_flags: list[Flag],
                    patient: PatientContext, predictor: Predictor | None, model: ModelInfo | None,
                    threshold_male: float = 72.0, threshold_female: float = 55.0) -> Estimate:
    """Estimate LV mass from one window's synchronized beats.

    Parameters
    ----------
    beats : ndarray, shape (n_beats, 12, beat_length)
        ``BeatAnalysis.beats`` (float32 mV).
    parameters : dict
        ``BeatAnalysis.parameters`` (``qrs_ms``, ``p_axis``, ``r_axis``, ``t_axis``; NaN if unknown).
    signal_flags : list of Flag
        Quality/rhythm flags of the signal core and the window assembler.
    patient : PatientContext
        Validated patient context (unknown values are imputed by the bundle and flagged).
    predictor, model : optional
        The model backend and its bundle information; without them the result is ``no_estimate``.
    threshold_male, threshold_female : float
        LVH thresholds on indexed LVM, g/m2.

    Returns
    -------
    Estimate
    """
    flags = list(signal_flags)
    if model is not None:
        flags += _range_flags(patient, model.training_ranges)
    demographics, ecg_parameters, missing = model_inputs(patient, parameters)
    rows = clean_beats(beats) if np.asarray(beats).ndim == 3 else np.zeros(0, dtype=int)
    n_total = int(np.asarray(beats).shape[0]) if np.asarray(beats).ndim == 3 else 0
    if rows.size < MIN_CLEAN_BEATS and not any(f.name in NO_ESTIMATE_FLAGS for f in flags):
        flags.append(Flag("no_clean_beats", f"{rows.size} of {n_total} beats match the median beat "
                                            f"(need {MIN_CLEAN_BEATS})"))
    if predictor is None or model is None:
        flags.append(Flag("no_model", "no model bundle loaded"))
    status = decide_status(flags)
    result = Estimate(estimate_status=status, n_beats=int(rows.size), flags=flags, beat_rows=rows.tolist())
    if status == STATUS_NONE:
        return result
    count = rows.size
    try:
        predictions = predictor.predict(  # type: ignore[union-attr]
            np.ascontiguousarray(np.asarray(beats, dtype=np.float32)[rows]),
            np.repeat(demographics[None, :], count, axis=0),
            np.repeat(ecg_parameters[None, :], count, axis=0),
        )
    except ValueError as error:  # the backend refuses inputs it cannot take (e.g. unknown sex)
        name = "sex_unknown" if "sex" in missing else "model_refused"  # sex is never imputed: it picks the model
        flags.append(Flag(name, str(error)))
        result.estimate_status = STATUS_NONE
        return result
    # Sex is never imputed (it picks the model and the threshold); the rest is, by the bundle.
    result.imputed = [name for name in missing if name != "sex"]
    for name in result.imputed:
        flags.append(Flag(f"imputed_{name}", f"{name} unknown; imputed with the model bundle's training median"))
    predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if predictions.shape[0] != count or not np.all(np.isfinite(predictions)):
        flags.append(Flag("model_output_invalid", f"model returned {predictions.shape[0]} values for {count} beats "
                                                  "or non-finite values"))
        result.estimate_status = STATUS_NONE
        return result
    result.per_beat_lvm_g = [round(float(v), 2) for v in predictions]
    result.lvm_g, result.lvm_spread_g, result.lvm_interval_g = aggregate(predictions, model.interval_halfwidth_g)  # type: ignore[union-attr]
    result.lvm_index_g_m2, result.lvh, result.lvh_threshold_g_m2 = lvh_verdict(
        result.lvm_g, patient, threshold_male, threshold_female)
    result.lvm_index_interval_g_m2 = index_interval(result.lvm_interval_g, patient.bsa_m2)
    result.lvh_verdict = three_state_verdict(result.lvm_index_g_m2, result.lvm_index_interval_g_m2,
                                             result.lvh_threshold_g_m2)
    if result.lvh is None:
        unknown = [name for name in ("sex", "height_cm", "weight_kg") if name in missing]
        flags.append(Flag("lvh_unknown", f"LVH needs sex, height and weight; unknown: {', '.join(unknown)}",
                          where=" and ".join(name.split("_")[0] for name in unknown)))
    return result
