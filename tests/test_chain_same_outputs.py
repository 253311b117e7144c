"""Issue 14: the cheaper signal-chain stages give the same outputs, bit for bit, as the code they replaced.

Beat extraction, R-peak alignment, the window guards (pacing spikes, template checks, electrode reversal, AF),
QRS boundaries and clean beats were made cheaper without changing a computation. The original implementations are
kept below (``ref_*``, copied verbatim apart from their names) and every current function is run against its
original on:

* the exact inputs the chain hands it (captured by wrappers) for the bundled records, as recorded and perturbed
  (baseline wander, noise, LA/RA and LA/LL swaps, a flat lead II, pacing spikes, impulsive artefacts, clipping,
  a 1000 Hz front end, two leads only), so the rare branches (pacing, noise, reversal flags) run too;
* synthetic inputs that the chain does not produce (NaN beats, unsorted or edge R peaks, float64 and
  Fortran-ordered signals, signed zeros).

"Same" is strict: arrays of equal dtype, shape and bytes, floats of equal bits, flags of equal name, text and
``where``. Needs no ../shared data.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD, PHILIPS_XML_RECORD, PTBXL_RECORD
from edge_runtime.flags import Flag
from edge_runtime.formats import read_record
from edge_runtime.preprocess import analyze_leads, analyze_window
from edge_runtime.runtime import estimate
from edge_runtime.signal_core import beats as beats_module
from edge_runtime.signal_core import delineate, quality, reversal, rhythm
from edge_runtime.signal_core.median import median_along, small_median
from evaluation.pacing_sim import add_pacing_spikes, lead_weights

# ----------------------------------------------------------------------------------------------------------------
# The original implementations (before issue 14's speed-ups), verbatim but for their names.
# ----------------------------------------------------------------------------------------------------------------


def ref_coarse_candidates(signals, detected, offsets, span):
    from numpy.lib.stride_tricks import sliding_window_view

    steps = np.concatenate([np.diff(offsets), np.diff(span)])
    if offsets.size == 0 or span.size == 0 or steps.size == 0 or np.any(steps != steps[0]):
        index = detected[:, None, None] + offsets[None, :, None] + span[None, None, :]
        return np.ascontiguousarray(signals[:, index], dtype=np.float32)  # no common step: the plain way
    stretch = offsets[0] + span[0] + steps[0] * np.arange(offsets.size + span.size - 1)
    block = signals[:, detected[:, None] + stretch[None, :]].astype(np.float32, copy=False)
    return np.ascontiguousarray(sliding_window_view(block, span.size, axis=2))


def ref_extract_beats(conditioned, r_peaks, fs, beat_pre_ms, beat_post_ms):
    pre, post = beats_module.beat_window(fs, beat_pre_ms, beat_post_ms)
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    inside = r_peaks[(r_peaks - pre >= 0) & (r_peaks + post <= conditioned.shape[1])]
    if inside.size == 0:
        return np.zeros((0, conditioned.shape[0], pre + post), dtype=np.float32), inside
    index = inside[:, None] + np.arange(-pre, post)[None, :]
    beats = conditioned[:, index].transpose(1, 0, 2)
    return np.ascontiguousarray(beats, dtype=np.float32), inside


def ref_align_r_peaks(signals, r_peaks, fs, max_shift_ms=80.0, qrs_half_ms=100.0):
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
    offsets = np.arange(-shift, shift + 1, 2)
    span = np.arange(-half, half + 1, 2)
    candidates = ref_coarse_candidates(signals, detected, offsets, span)
    energy = np.einsum("lbok,lbok->bo", candidates, candidates)
    chosen = np.full(inside.size, offsets.size // 2)
    for _ in range(2):
        template = median_along(candidates[:, beats, chosen, :], axis=1)
        cost = energy - 2.0 * np.einsum("lbok,lk->bo", candidates, template)
        chosen = np.argmin(cost, axis=1)
    coarse = detected + offsets[chosen]
    fine_span = np.arange(-half, half + 1)
    full_template = median_along(signals[:, coarse[:, None] + fine_span[None, :]], axis=1)
    steps = np.array([-1, 0, 1])
    lo, hi = r_peaks[inside] - shift, r_peaks[inside] + shift
    trial = np.clip(coarse[:, None] + steps[None, :], lo[:, None], hi[:, None])
    windows = signals[:, trial[:, :, None] + fine_span[None, None, :]]
    fine_cost = np.einsum("lbsk->bs", (windows - full_template[:, None, None, :]) ** 2)
    aligned[inside] = trial[beats, np.argmin(fine_cost, axis=1)]
    return aligned


def ref_spike_events(steep, left, right, h, fs):
    rows, cols = np.nonzero(steep)
    same_side = left[rows, cols] * right[rows, cols] > 0
    spike_samples = h + np.unique(cols[same_side])
    if spike_samples.size < 2:
        return spike_samples
    starts = np.concatenate([[True], np.diff(spike_samples) > int(0.010 * fs)])
    return spike_samples[starts]


def ref_pacing_spikes(signals, fs, qrs_amplitude, r_peaks):
    q = quality
    h = max(1, int(round(q.PACING_HALF_WIDTH_S * fs)))
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    if signals.shape[1] <= 2 * h or r_peaks.size == 0:
        return None
    scale = np.maximum(qrs_amplitude, max(float(np.median(qrs_amplitude)), 0.05)).astype(signals.dtype)
    left = signals[:, h:-h] - signals[:, :-2 * h]
    right = signals[:, h:-h] - signals[:, 2 * h:]
    limit = (q.PACING_SPIKE_FRACTION * scale)[:, None]
    steep = (np.abs(left) >= limit) & (np.abs(right) >= limit)
    if not steep.any():
        return None
    events = ref_spike_events(steep, left, right, h, fs)
    if events.size < 2:
        return None
    lead = np.searchsorted(events, r_peaks - int(0.25 * fs))
    before = np.searchsorted(events, r_peaks + int(0.02 * fs))
    paced_beats = int(np.count_nonzero(before > lead))
    if paced_beats >= max(2, len(r_peaks) / 2) and events.size <= 2.5 * len(r_peaks):
        return Flag("pacing", f"narrow spikes (< {2 * q.PACING_HALF_WIDTH_S * 1000:g} ms wide, >= "
                              f"{q.PACING_SPIKE_FRACTION:g} of the QRS amplitude) before {paced_beats} of "
                              f"{len(r_peaks)} beats")
    background = 1.4826 * np.median(np.abs(left), axis=1)[:, None]
    outlier = steep & (np.abs(left) >= q.SPIKE_OUTLIER_SD * background) & (
        np.abs(right) >= q.SPIKE_OUTLIER_SD * background)
    artefacts = ref_spike_events(outlier, left, right, h, fs)
    if artefacts.size >= max(2, len(r_peaks) / 2):
        return Flag("noise", f"{artefacts.size} narrow spikes not locked to the beats (impulsive artefacts)")
    return None


def ref_template_checks(beats, template, middle_beat, fs, beat_pre):
    q = quality
    flags = []
    if beats.shape[0] < q.MIN_BEATS or middle_beat is None:
        return flags
    residual = beats - template[None]
    span = np.ptp(template, axis=1)
    rms = np.sqrt(np.mean(residual ** 2, axis=(0, 2)))
    ratio = rms / np.maximum(span, 1e-3)
    if np.median(ratio) > q.NOISE_RATIO:
        flags.append(Flag("noise", f"beat-to-beat residual is {np.median(ratio):.2f} of the median beat's "
                                   f"amplitude (median over leads; limit {q.NOISE_RATIO})"))
    half = int(round(0.1 * fs))
    lo, hi = max(0, beat_pre - half), min(beats.shape[2], beat_pre + half)
    qrs = beats[:, :, lo:hi].reshape(beats.shape[0], -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    ref = template[:, lo:hi].ravel()
    ref = ref - ref.mean()
    denom = np.linalg.norm(qrs, axis=1) * np.linalg.norm(ref)
    corr = np.where(denom > 0, qrs @ ref / np.maximum(denom, 1e-12), 0.0)
    if corr[middle_beat] < q.MORPHOLOGY_CORRELATION:
        flags.append(Flag("inconsistent_morphology",
                          f"middle beat's QRS correlates {corr[middle_beat]:.2f} with the median beat "
                          f"(limit {q.MORPHOLOGY_CORRELATION}): ectopic or artefact"))
    elif np.mean(corr < q.MORPHOLOGY_CORRELATION) > 0.5:
        flags.append(Flag("inconsistent_morphology",
                          f"{np.mean(corr < q.MORPHOLOGY_CORRELATION):.0%} of beats differ from the median beat"))
    return flags


def ref_corr(x, y):
    x = x - x.mean()
    y = y - y.mean()
    denominator = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / denominator) if denominator > 1e-12 else 0.0


def ref_reversal_margins(template):
    r = reversal
    template = np.asarray(template, dtype=np.float64)
    precordial = template[r._V1:r._V1 + 6]
    predicted_i, predicted_ii = r.PRECORDIAL_TO_I @ precordial, r.PRECORDIAL_TO_II @ precordial
    scores = {name: ref_corr(i, predicted_i) + ref_corr(ii, predicted_ii)
              for name, (i, ii) in r._restored(template).items()}
    return {name: scores[name] - scores["none"] for name in r.MARGIN_THRESHOLDS}


def ref_lead_iii_agreement(template):
    r = reversal
    template = np.asarray(template, dtype=np.float64)
    return ref_corr(template[r._III], (r.PRECORDIAL_TO_II - r.PRECORDIAL_TO_I) @ template[r._V1:r._V1 + 6])


def ref_detect_reversal(template, fs=500.0, r_index=150, regular_rhythm=True):
    r = reversal
    ratio_ii, ratio_iii = r.flat_limb_ratios(template)
    if ratio_ii < r.FLAT_LIMB_RATIO:
        return "RA/RL"
    if ratio_iii < r.FLAT_LIMB_RATIO:
        return "LA/RL"
    margins = ref_reversal_margins(template)
    above = {name: margin for name, margin in margins.items() if margin > r.MARGIN_THRESHOLDS[name]}
    if above:
        return max(above, key=above.get)
    if regular_rhythm:
        index = r.p_wave_index(template, fs, r_index)
        if index is not None and (index > r.P_INDEX_THRESHOLD or (
                index > r.P_INDEX_WITH_QRS and ref_lead_iii_agreement(template) < r.LEAD_III_AGREEMENT_MAX)):
            return "LA/LL"
    return None


def ref_reversal_flag(template, fs=500.0, r_index=150, regular_rhythm=True):
    r = reversal
    found = ref_detect_reversal(template, fs, r_index, regular_rhythm)
    if found is None:
        return None
    if found.endswith("RL"):
        ratio_ii, ratio_iii = r.flat_limb_ratios(template)
        lead, ratio = ("II", ratio_ii) if found == "RA/RL" else ("III", ratio_iii)
        return Flag("neutral_electrode_misplaced", f"lead {lead} is nearly flat ({ratio:.2f} of the largest limb "
                    f"lead; limit {r.FLAT_LIMB_RATIO}): {found} swapped", where=found)
    margins = ref_reversal_margins(template)
    if margins[found] <= r.MARGIN_THRESHOLDS[found]:
        index = r.p_wave_index(template, fs, r_index)
        if index > r.P_INDEX_THRESHOLD:
            return Flag("electrode_reversal", f"P wave larger in I than in II (index {index:+.2f} > "
                        f"{r.P_INDEX_THRESHOLD}) in a regular rhythm: LA/LL reversal", where=found)
        return Flag("electrode_reversal", f"P wave larger in I than in II (index {index:+.2f} > {r.P_INDEX_WITH_QRS}) "
                    f"and lead III against its precordial prediction (correlation "
                    f"{ref_lead_iii_agreement(template):+.2f} < {r.LEAD_III_AGREEMENT_MAX}) in a regular rhythm: "
                    "LA/LL reversal", where=found)
    return Flag("electrode_reversal", f"{found} reversal explains the limb leads better than the recorded order "
                f"(margin {margins[found]:+.2f} > {r.MARGIN_THRESHOLDS[found]:+.2f}; precordial-lead redundancy)",
                where=found)


def ref_ectopic_pairs(rr):
    rr = np.asarray(rr, dtype=np.float64)
    ectopic = np.zeros(rr.size, dtype=bool)
    if rr.size < 3:
        return ectopic
    reference = float(np.median(rr))
    i = 0
    while i < rr.size - 1:
        if rr[i] < rhythm.PREMATURE_FRACTION * reference and rr[i + 1] > rhythm.PAUSE_FRACTION * reference:
            ectopic[i:i + 2] = True
            i += 2
        else:
            i += 1
    return ectopic


def ref_rr_irregularity(r_peaks, fs, *, discount_ectopy=True):
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64)) / fs
    nan = float("nan")
    ectopic = ref_ectopic_pairs(rr) if discount_ectopy else np.zeros(rr.size, dtype=bool)
    stats = {"n_rr": float(rr.size), "n_ectopic": float(ectopic.sum()),
             "median_rr_s": float(np.median(rr)) if rr.size else nan, "nmasd": nan, "nrmssd": nan}
    both_kept = ~ectopic[:-1] & ~ectopic[1:] if rr.size >= 2 else np.zeros(0, dtype=bool)
    successive = np.diff(rr)[both_kept]
    kept = rr[~ectopic]
    if successive.size < 2:
        return stats
    stats["nmasd"] = float(np.median(np.abs(successive)) / np.median(kept))
    stats["nrmssd"] = float(np.sqrt(np.mean(successive ** 2)) / np.mean(kept))
    return stats


def ref_af_suspected(r_peaks, fs, beats=None, beat_r_index=None):
    h = rhythm
    stats = ref_rr_irregularity(r_peaks, fs)
    if stats["n_rr"] < h.MIN_RR:
        return False, f"only {int(stats['n_rr'])} RR intervals (need {h.MIN_RR})"
    if not np.isfinite(stats["nmasd"]):
        return False, (f"{int(stats['n_ectopic'])} of {int(stats['n_rr'])} RR intervals are premature beats "
                       "with compensatory pauses: ectopy, not AF")
    irregular = stats["nmasd"] > h.NMASD_THRESHOLD and stats["nrmssd"] > h.NRMSSD_THRESHOLD
    reason = (f"RR irregularity: median |dRR|/RR = {stats['nmasd']:.3f} (limit {h.NMASD_THRESHOLD}), "
              f"nRMSSD = {stats['nrmssd']:.3f} (limit {h.NRMSSD_THRESHOLD}) over {int(stats['n_rr'])} RR intervals"
              f" ({int(stats['n_ectopic'])} premature/pause intervals discounted)")
    if not irregular or beats is None or beat_r_index is None:
        return irregular, reason
    consistency = h.p_wave_consistency(beats, fs, beat_r_index)
    if not np.isfinite(consistency):
        return True, reason + f"; fewer than {h.MIN_P_BEATS} complete beats for P-wave evidence"
    if consistency >= h.P_CORRELATION:
        return False, reason + f"; but consistent P waves before the QRS (correlation {consistency:.2f} >= " \
                               f"{h.P_CORRELATION}): not AF"
    return True, reason + f"; no consistent P wave before the QRS (correlation {consistency:.2f} < {h.P_CORRELATION})"


def ref_spatial_velocity(conditioned):
    diff = np.empty_like(conditioned)
    diff[:, 1:-1] = conditioned[:, 2:] - conditioned[:, :-2]
    diff[:, 0] = conditioned[:, 1] - conditioned[:, 0] if conditioned.shape[1] > 1 else 0.0
    diff[:, -1] = conditioned[:, -1] - conditioned[:, -2] if conditioned.shape[1] > 1 else 0.0
    return np.sqrt(np.einsum("ln,ln->n", diff, diff))


def ref_qrs_boundaries(conditioned, r_peaks, fs):
    d = delineate
    r_peaks = np.asarray(r_peaks, dtype=np.int64)
    onset = np.full(r_peaks.size, -1, dtype=np.int64)
    offset = np.full(r_peaks.size, -1, dtype=np.int64)
    if r_peaks.size == 0:
        return onset, offset
    sv = ref_spatial_velocity(np.asarray(conditioned, dtype=np.float32))
    pre = int(round(d.ONSET_SEARCH_MS * fs / 1000))
    post = int(round(d.OFFSET_SEARCH_MS * fs / 1000))
    peak_half = int(round(d.PEAK_SEARCH_MS * fs / 1000))
    run = max(2, int(round(d.QUIET_RUN_MS * fs / 1000)))
    n = sv.size
    index = r_peaks[:, None] + np.arange(-pre, post + 1)[None, :]
    valid = (index >= 0) & (index < n)
    windows = np.where(valid, sv[np.clip(index, 0, n - 1)], np.nan)
    centre = windows[:, pre - peak_half:pre + peak_half + 1]
    peak = np.nanmax(np.where(np.isnan(centre), -np.inf, centre), axis=1)
    quiet_level = np.full(r_peaks.size, np.partition(sv, sv.size // 10)[sv.size // 10])
    threshold = quiet_level + d.QRS_FRACTION * (peak - quiet_level)
    below = (windows < threshold[:, None]).astype(np.int32)
    csum = np.concatenate([np.zeros((below.shape[0], 1), np.int32), np.cumsum(below, axis=1)], axis=1)
    quiet_run = (csum[:, run:] - csum[:, :-run]) == run
    width = quiet_run.shape[1]
    cols = np.arange(width)[None, :]
    before = quiet_run & (cols + run - 1 < pre)
    has_before = before.any(axis=1)
    last_before = width - 1 - np.argmax(before[:, ::-1], axis=1)
    onset[has_before] = (r_peaks - pre + last_before + run - 1)[has_before]
    base_index = np.where(has_before, onset, r_peaks - pre)
    base = np.asarray(conditioned, dtype=np.float32)[:, np.clip(base_index, 0, n - 1)]
    tail = index[:, pre - peak_half:]
    samples = np.asarray(conditioned, dtype=np.float32)[:, np.clip(tail, 0, n - 1)]
    from_base = samples - base[:, :, None]
    deviation = np.einsum("lbj,lbj->bj", from_base, from_base)
    reach = deviation[:, :2 * peak_half + 1].max(axis=1)
    near = np.zeros(windows.shape, dtype=np.int32)
    near[:, pre - peak_half:] = deviation <= d.OFFSET_DEVIATION ** 2 * reach[:, None]
    csum_near = np.concatenate([np.zeros((near.shape[0], 1), np.int32), np.cumsum(near, axis=1)], axis=1)
    settled = quiet_run & ((csum_near[:, run:] - csum_near[:, :-run]) == run)
    after = np.where(settled[:, pre + 1:].any(axis=1)[:, None], settled, quiet_run) & (cols > pre)
    has_after = after.any(axis=1)
    first_after = np.argmax(after, axis=1)
    offset[has_after] = (r_peaks - pre + first_after)[has_after]
    return onset, offset


def ref_clean_beats(beats, min_correlation=estimate.MIN_BEAT_CORRELATION):
    beats = np.asarray(beats, dtype=np.float64)
    if beats.ndim != 3 or beats.shape[0] == 0:
        return np.zeros(0, dtype=int)
    if not np.all(np.isfinite(beats)):
        finite = np.isfinite(beats).all(axis=(1, 2))
        keep = np.flatnonzero(finite)
        return keep[ref_clean_beats(beats[keep], min_correlation)] if keep.size else keep
    flat = beats.reshape(beats.shape[0], -1)
    template = median_along(flat, axis=0)
    centred = flat - flat.mean(axis=1, keepdims=True)
    template_centred = template - template.mean()
    denominator = np.linalg.norm(centred, axis=1) * np.linalg.norm(template_centred)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = centred @ template_centred / denominator
    return np.flatnonzero(np.nan_to_num(correlation, nan=-1.0) >= min_correlation)


# (module, current name, original) for every function whose implementation changed.
PAIRS = [
    (beats_module, "extract_beats", ref_extract_beats),
    (beats_module, "align_r_peaks", ref_align_r_peaks),
    (beats_module, "coarse_candidates", ref_coarse_candidates),
    (quality, "pacing_spikes", ref_pacing_spikes),
    (quality, "_spike_events", ref_spike_events),
    (quality, "template_checks", ref_template_checks),
    (reversal, "reversal_flag", ref_reversal_flag),
    (reversal, "detect_reversal", ref_detect_reversal),
    (reversal, "reversal_margins", ref_reversal_margins),
    (reversal, "lead_iii_agreement", ref_lead_iii_agreement),
    (reversal, "_corr", ref_corr),
    (rhythm, "af_suspected", ref_af_suspected),
    (rhythm, "rr_irregularity", ref_rr_irregularity),
    (rhythm, "ectopic_pairs", ref_ectopic_pairs),
    (delineate, "qrs_boundaries", ref_qrs_boundaries),
    (delineate, "spatial_velocity", ref_spatial_velocity),
    (estimate, "clean_beats", ref_clean_beats),
]
REFERENCE = {name: ref for _, name, ref in PAIRS}


# ----------------------------------------------------------------------------------------------------------------
# Strict comparison
# ----------------------------------------------------------------------------------------------------------------


def _plain(value):
    if isinstance(value, Flag):
        return ("Flag", value.name, value.reason, value.where)
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def assert_same(expected, actual, where: str = "") -> None:
    """Equal dtype, shape and bytes for arrays; equal type and bits for floats; equal everything else."""
    expected, actual = _plain(expected), _plain(actual)
    if isinstance(expected, np.ndarray) or isinstance(actual, np.ndarray):
        assert isinstance(expected, np.ndarray) and isinstance(actual, np.ndarray), where
        assert (expected.dtype, expected.shape) == (actual.dtype, actual.shape), where
        assert np.ascontiguousarray(expected).tobytes() == np.ascontiguousarray(actual).tobytes(), where
        return
    assert type(expected) is type(actual), f"{where}: {type(expected)} vs {type(actual)}"
    if isinstance(expected, (float, np.floating)):
        assert np.asarray(expected).tobytes() == np.asarray(actual).tobytes(), f"{where}: {expected!r} vs {actual!r}"
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(actual), where
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same(e, a, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert list(expected) == list(actual), where
        for key in expected:
            assert_same(expected[key], actual[key], f"{where}[{key}]")
    else:
        assert expected == actual, f"{where}: {expected!r} vs {actual!r}"


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def check_against_reference(name: str, *args, **kwargs) -> object:
    """Run the current function and its original on copies of the same inputs; both outputs and the inputs
    afterwards (neither may write into them) must agree."""
    module = next(m for m, n, _ in PAIRS if n == name)
    current_args, reference_args = _copy((args, kwargs)), _copy((args, kwargs))
    actual = getattr(module, name)(*current_args[0], **current_args[1])
    expected = REFERENCE[name](*reference_args[0], **reference_args[1])
    assert_same(expected, actual, name)
    assert_same(reference_args, current_args, name + " (inputs afterwards)")
    return actual


# ----------------------------------------------------------------------------------------------------------------
# Inputs: what the chain hands each function, on the bundled records as recorded and perturbed
# ----------------------------------------------------------------------------------------------------------------


def _swap_la_ra(s: np.ndarray) -> np.ndarray:  # I -> -I, II <-> III, aVR <-> aVL
    return s[[0, 2, 1, 4, 3, 5, 6, 7, 8, 9, 10, 11]] * np.array([-1.0] + [1.0] * 11)[:, None]


def _swap_la_ll(s: np.ndarray) -> np.ndarray:  # I <-> II, III -> -III, aVL <-> aVF
    return s[[1, 0, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11]] * np.array([1.0, 1.0, -1.0] + [1.0] * 9)[:, None]


def _windows() -> list[tuple[str, np.ndarray, float, tuple[str, ...] | None]]:
    """(label, signals, fs, lead names or None for the 12 standard leads)."""
    rng = np.random.default_rng(14)
    out = []
    for path in (CINC_LVH_RECORD, PTBXL_RECORD, LUDB_ANNOTATED_RECORD, PHILIPS_XML_RECORD):
        record = read_record(path).to_standard_12()
        signals, fs = record.signals_mv[:, :int(10 * record.fs)], record.fs
        t = np.arange(signals.shape[1]) / fs
        r_raw = np.round(analyze_window(signals, fs).r_peaks * fs / 500.0).astype(np.int64)
        spikes = signals.copy()
        spikes[:, rng.integers(0, signals.shape[1], 15)] += rng.normal(0.0, 3.0, (12, 1))
        clipped, flat_ii = signals.copy(), signals.copy()
        clipped[3] = np.clip(clipped[3], -0.3, 0.3)
        flat_ii[1] *= 0.02
        jump = signals.copy()
        jump[:, signals.shape[1] // 2:] = np.roll(signals, int(0.35 * fs), axis=1)[:, signals.shape[1] // 2:]
        upsampled = np.stack([np.interp(np.arange(2 * signals.shape[1]) / 2.0, np.arange(signals.shape[1]), lead)
                              for lead in signals])
        out += [
            (path.name, signals, fs, None),
            (path.name + " wander", signals + 0.5 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)), fs, None),
            (path.name + " noise", signals + rng.normal(0.0, 0.05, signals.shape), fs, None),
            (path.name + " heavy noise", signals + rng.normal(0.0, 0.25, signals.shape), fs, None),
            (path.name + " LA/RA", _swap_la_ra(signals), fs, None),
            (path.name + " LA/LL", _swap_la_ll(signals), fs, None),
            (path.name + " RL on RA", flat_ii, fs, None),
            (path.name + " paced", add_pacing_spikes(signals, fs, r_raw, 1.0, 4.0, lead_weights(rng)), fs, None),
            (path.name + " artefacts", spikes, fs, None),
            (path.name + " clipped", clipped, fs, None),
            (path.name + " rhythm jump", jump, fs, None),
            (path.name + " 1000 Hz paced", add_pacing_spikes(upsampled, 2 * fs, 2 * r_raw, 0.5, 4.0,
                                                             lead_weights(rng)), 2 * fs, None),
            (path.name + " I and II", signals[:2], fs, ("I", "II")),
        ]
    return out


@pytest.fixture(scope="module")
def captured():
    """Every call the chain makes to a changed function (arguments copied on the way in), over all windows."""
    calls: list[tuple[str, tuple, dict]] = []
    patched = []

    def recorder(name, function):
        def wrapper(*args, **kwargs):
            calls.append((name, _copy(args), _copy(kwargs)))
            return function(*args, **kwargs)
        return wrapper

    import edge_runtime.preprocess as preprocess
    try:
        for module, name, _ in PAIRS:
            original = getattr(module, name)
            wrapper = recorder(name, original)
            owners = [module] + ([preprocess] if getattr(preprocess, name, None) is original else [])
            for owner in owners:  # where the chain looks the function up: its module, or preprocess's import
                patched.append((owner, name, original))
                setattr(owner, name, wrapper)
        for _, signals, fs, names in _windows():
            analysis = analyze_window(signals, fs) if names is None else analyze_leads(signals, fs, names)
            estimate.clean_beats(analysis.beats)
            beats_module.align_r_peaks(analysis.model_signal, analysis.r_peaks, analysis.fs)
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)
    return calls


def test_the_chain_calls_every_changed_function_and_reaches_the_rare_branches(captured):
    names = {name for name, _, _ in captured}
    assert names >= {"extract_beats", "align_r_peaks", "pacing_spikes", "template_checks", "reversal_flag",
                     "af_suspected", "qrs_boundaries", "clean_beats", "reversal_margins", "rr_irregularity"}
    flags = [REFERENCE[name](*_copy(args), **_copy(kwargs)) for name, args, kwargs in captured
             if name in ("pacing_spikes", "reversal_flag", "template_checks")]
    flat = [f for f in flags if isinstance(f, Flag)] + [f for group in flags if isinstance(group, list) for f in group]
    fired = {f.name for f in flat}
    assert fired >= {"pacing", "noise", "electrode_reversal", "neutral_electrode_misplaced"}, fired


def test_every_captured_call_matches_the_original(captured):
    for name, args, kwargs in captured:
        check_against_reference(name, *args, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Synthetic inputs the chain does not produce
# ----------------------------------------------------------------------------------------------------------------


def _ecg_like(rng: np.random.Generator, n_leads: int, n: int, fs: float, rr_s: float = 0.8, jitter: float = 0.0):
    t = np.arange(n) / fs
    peaks = np.arange(0.4, n / fs - 0.3, rr_s) + rng.normal(0.0, jitter, np.arange(0.4, n / fs - 0.3, rr_s).size)
    gains = rng.normal(0.0, 1.0, (n_leads, 3))
    signals = np.zeros((n_leads, n))
    for p in peaks:
        signals += gains[:, :1] * np.exp(-0.5 * ((t - p) / 0.012) ** 2)[None]
        signals += gains[:, 1:2] * 0.3 * np.exp(-0.5 * ((t - p - 0.25) / 0.04) ** 2)[None]
        signals += gains[:, 2:3] * 0.1 * np.exp(-0.5 * ((t - p + 0.16) / 0.02) ** 2)[None]
    signals += rng.normal(0.0, 0.01, signals.shape)
    return signals, np.round(np.sort(peaks) * fs).astype(np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_alignment_and_qrs_boundaries_on_synthetic_signals(seed):
    rng = np.random.default_rng(seed)
    for fs in (500.0, 250.0, 360.0):
        for n_leads in (12, 2, 1):
            signals, peaks = _ecg_like(rng, n_leads, int(10 * fs), fs, rr_s=rng.uniform(0.4, 1.2), jitter=0.01)
            jittered = peaks + rng.integers(-8, 9, peaks.size)  # fiducials off by a few samples
            for array in (signals.astype(np.float32), signals, np.asfortranarray(signals.astype(np.float32))):
                check_against_reference("align_r_peaks", array, jittered, fs)
                check_against_reference("qrs_boundaries", array, jittered, fs)
            edges = np.concatenate([[0, 3], jittered, [signals.shape[1] - 2]])  # windows over the edges
            check_against_reference("align_r_peaks", signals.astype(np.float32), edges, fs)
            check_against_reference("qrs_boundaries", signals.astype(np.float32), edges, fs)
            check_against_reference("qrs_boundaries", signals.astype(np.float32), rng.permutation(jittered), fs)
            check_against_reference("extract_beats", signals, edges, fs, 300.0, 500.0)
            check_against_reference("extract_beats", np.asfortranarray(signals), jittered, fs, 30.0, 50.0)
    check_against_reference("qrs_boundaries", np.zeros((12, 5000), np.float32), np.array([], np.int64), 500.0)
    check_against_reference("align_r_peaks", np.zeros((12, 5000), np.float32), np.array([1000, 2000]), 500.0)


@pytest.mark.parametrize("seed", range(4))
def test_guards_on_synthetic_signals(seed):
    rng = np.random.default_rng(100 + seed)
    fs = 500.0
    signals, peaks = _ecg_like(rng, 12, 5000, fs, rr_s=rng.uniform(0.5, 1.0), jitter=0.05 * seed)
    amplitude = np.ptp(signals[:, 100:500], axis=1).astype(np.float32)
    spiky = signals.copy()
    spiky[:, peaks - 40] += rng.choice([-1.0, 1.0]) * 2.0  # pacing-like, 80 ms before every beat
    spiky[:, rng.integers(2, 4998, 30)] += rng.normal(0.0, 2.0, (12, 30))  # and artefacts
    for raw in (signals, spiky, spiky + rng.normal(0.0, 0.2, spiky.shape)):
        for dtype in (np.float32, np.float64):
            check_against_reference("pacing_spikes", raw.astype(dtype), fs, amplitude.astype(dtype), peaks)
    check_against_reference("pacing_spikes", spiky.astype(np.float32), 1000.0, amplitude, peaks * 2)
    check_against_reference("pacing_spikes", spiky.astype(np.float32), fs, amplitude, np.array([], np.int64))
    # beats as the chain cuts them, with noise and one misplaced beat
    beats = np.stack([signals[:, p - 150:p + 250] for p in peaks if 150 <= p <= 4750]).astype(np.float32)
    beats[1] = np.roll(beats[1], 30, axis=1)
    for noisy in (beats, beats + rng.normal(0.0, 0.3, beats.shape).astype(np.float32)):
        template = median_along(noisy, axis=0)
        for middle in (0, 1, noisy.shape[0] // 2, None):
            check_against_reference("template_checks", noisy, template, middle, fs, 150)
        check_against_reference("template_checks", noisy[:2], template, 0, fs, 150)
        for regular in (True, False):
            for variant in (template, _swap_la_ra(template), _swap_la_ll(template), template * 0.0):
                check_against_reference("reversal_flag", variant, fs, 150, regular_rhythm=regular)
                check_against_reference("detect_reversal", variant, fs, 150, regular)
        check_against_reference("af_suspected", peaks, fs, noisy, 150)
        check_against_reference("af_suspected", np.sort(rng.choice(4900, 14, replace=False)), fs, noisy, 150)
    check_against_reference("af_suspected", peaks[:4], fs, None, None)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_clean_beats_with_non_finite_and_extreme_beats():
    rng = np.random.default_rng(7)
    base = rng.normal(0.0, 1.0, (1, 12, 400))
    beats = (base + rng.normal(0.0, 0.2, (9, 12, 400))).astype(np.float32)
    beats[4] = rng.normal(0.0, 1.0, (12, 400))  # an ectopic beat
    check_against_reference("clean_beats", beats)
    check_against_reference("clean_beats", beats[:2])
    check_against_reference("clean_beats", beats.astype(np.float64), 0.5)
    for bad in (np.nan, np.inf, -np.inf):
        spoiled = beats.copy()
        spoiled[2, 3, 17] = bad
        check_against_reference("clean_beats", spoiled)
    both = beats.astype(np.float64)
    both[5, 0, 0], both[5, 0, 1] = np.inf, -np.inf  # inf - inf in one row
    check_against_reference("clean_beats", both)
    check_against_reference("clean_beats", np.full((3, 12, 400), np.nan))
    check_against_reference("clean_beats", beats.astype(np.float64) * 1e307)  # finite values whose sums overflow
    check_against_reference("clean_beats", np.zeros((4, 12, 400)))
    signed_zeros = beats.copy()
    signed_zeros[:, :, :50] = rng.choice(np.array([0.0, -0.0], np.float32), (9, 12, 50))  # median lanes of +-0
    check_against_reference("clean_beats", signed_zeros)
    check_against_reference("clean_beats", signed_zeros[:8])  # an even count: the mean of two middle values
    check_against_reference("clean_beats", np.zeros((4, 12, 400), np.float32))
    check_against_reference("clean_beats", beats[:, :, ::2])  # not contiguous
    check_against_reference("clean_beats", np.zeros((0, 12, 400)))
    check_against_reference("clean_beats", beats[0])


def test_rr_statistics_and_small_medians():
    rng = np.random.default_rng(3)
    for _ in range(300):
        rr = rng.uniform(0.3, 1.5, int(rng.integers(0, 20)))
        if rr.size > 3 and rng.random() < 0.5:
            rr[1], rr[2] = 0.5 * rr[0], 1.6 * rr[0]  # a premature beat and its pause
        peaks = np.concatenate([[0.0], np.cumsum(rr)]) * 500.0
        check_against_reference("rr_irregularity", np.round(peaks).astype(np.int64), 500.0)
        check_against_reference("rr_irregularity", peaks, 500.0, discount_ectopy=False)
        check_against_reference("ectopic_pairs", rr)
    for trial in range(3000):
        dtype = (np.float32, np.float64)[trial % 2]
        values = (rng.normal(size=int(rng.integers(1, 30))) * 10.0 ** rng.uniform(-20, 20)).astype(dtype)
        if trial % 3 == 0:
            values[: values.size // 2] = rng.choice([0.0, -0.0])
        if trial % 5 == 0:
            values = np.abs(values)
        assert_same(np.median(values), small_median(values), "small_median")
    for odd in (np.array([], np.float64), np.array([1.0, np.nan, 2.0]), np.array([3, 1, 2]), np.ones((3, 2))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the empty median warns, both ways
            assert_same(np.median(odd), small_median(odd), f"small_median {odd!r}")


def test_reversal_correlations_on_random_templates():
    rng = np.random.default_rng(11)
    for _ in range(200):
        template = rng.normal(0.0, 1.0, (12, 400)) * rng.uniform(0.0, 2.0, (12, 1))
        check_against_reference("reversal_margins", template.astype(np.float32))
        check_against_reference("lead_iii_agreement", template)
        check_against_reference("_corr", template[0], template[1])
        check_against_reference("_corr", template[0], np.zeros(400))
        check_against_reference("reversal_flag", template, 500.0, 150, regular_rhythm=bool(rng.random() < 0.5))


def test_spatial_velocity_and_candidates_on_odd_shapes():
    rng = np.random.default_rng(5)
    for shape in ((12, 5000), (2, 3), (1, 1), (3, 2)):
        for dtype in (np.float32, np.float64):
            check_against_reference("spatial_velocity", rng.normal(size=shape).astype(dtype))
    signals = rng.normal(size=(12, 3000)).astype(np.float32)
    detected = np.array([300, 900, 1500, 2100])
    for offsets, span in ((np.arange(-40, 41, 2), np.arange(-50, 51, 2)), (np.arange(-3, 4), np.arange(-5, 6, 2)),
                          (np.array([0]), np.arange(-5, 6)), (np.arange(-6, 7, 3), np.arange(-9, 10, 3))):
        check_against_reference("coarse_candidates", signals, detected, offsets, span)
        check_against_reference("coarse_candidates", signals.astype(np.float64), detected, offsets, span)
    assert math.isfinite(float(check_against_reference("spatial_velocity", signals).sum()))


@pytest.mark.parametrize("fs", [500.0, 250.0, 360.0, 1000.0])
def test_alignment_sums_over_the_window_view_as_over_the_contiguous_copy(fs):
    """align_r_peaks sums over a sliding-window view where it once summed over its contiguous copy: numpy's
    einsum must walk both alike (same inner loops, same order), or the costs, and in a near tie the chosen
    offsets, could move. Checked on the shapes the alignment uses."""
    rng = np.random.default_rng(int(fs))
    shift, half = int(round(80.0 * fs / 1000.0)), int(round(100.0 * fs / 1000.0))
    offsets, span = np.arange(-shift, shift + 1, 2), np.arange(-half, half + 1, 2)
    for n_leads in (12, 2, 1):
        for n_beats in (3, 8, 15, 40):
            signals = (rng.normal(size=(n_leads, int(12 * fs))) * rng.uniform(0.01, 3.0)).astype(np.float32)
            detected = np.sort(rng.choice(np.arange(shift + half, signals.shape[1] - shift - half), n_beats,
                                          replace=False))
            view = beats_module._candidate_windows(signals, detected, offsets, span)
            copy = beats_module.coarse_candidates(signals, detected, offsets, span)
            assert_same(ref_coarse_candidates(signals, detected, offsets, span), copy, "coarse_candidates")
            template = median_along(copy[:, :, offsets.size // 2, :], axis=1)
            assert_same(np.einsum("lbok,lbok->bo", copy, copy), np.einsum("lbok,lbok->bo", view, view), "energy")
            assert_same(np.einsum("lbok,lk->bo", copy, template), np.einsum("lbok,lk->bo", view, template), "cost")


@pytest.mark.parametrize("n_beats", [1, 2, 3, 8, 13, 14])
def test_clean_beats_median_from_float32_lanes(n_beats):
    """clean_beats sorts the float32 beats for its median: the float64 median of those beats, value for value
    (a zero may differ in sign only, which no correlation sees)."""
    rng = np.random.default_rng(n_beats)
    beats = rng.normal(0.0, 1.0, (n_beats, 12, 400)).astype(np.float32)
    beats[:, :, :40] = np.round(beats[:, :, :40])  # ties and zeros
    flat = beats.astype(np.float64).reshape(n_beats, -1)
    expected, actual = median_along(flat, axis=0), estimate._median_beat(beats, flat)
    assert actual.dtype == expected.dtype and np.array_equal(actual, expected)
    nonzero = expected != 0
    assert expected[nonzero].tobytes() == actual[nonzero].tobytes()
