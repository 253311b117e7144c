"""Limb-electrode reversal and neutral-electrode (RL) misplacement on a 12-lead median beat.

Method: inter-lead redundancy, as in the correlation-based detectors of Kors & van Herpen (Am J Cardiol
2001;88:396-399) and Jekova et al. (Müller, Jekova et al., Comput Methods Programs Biomed 2016;134:31-41).
Swaps among RA, LA and LL leave Wilson's central terminal, and so V1-V6, unchanged, while they permute and
invert the limb leads (LA/RA: I -> -I, II <-> III; LA/LL: I <-> II, III -> -III; RA/LL: I -> -III,
II -> -II). The precordial leads therefore predict what leads I and II should look like:
``I ~ V @ PRECORDIAL_TO_I`` and ``II ~ V @ PRECORDIAL_TO_II`` (population least squares on the tuning half
of the real records, see ``elvmass bench-reversal``). For each reversal hypothesis the limb leads are put
back as that reversal would have them, and the window's score is how much better the restored I and II
correlate with their precordial predictions than the leads as recorded (``reversal_margins``). A margin
above the hypothesis' threshold flags the reversal (the largest wins).

LA/LL exchanges I and II, which V1-V6 predict alike, so the margin cannot see it. Its classic sign is on the
P wave (Abdollah & Milliken, J Electrocardiol 1997;30:112-119; listed by Kors & van Herpen): with the atria
depolarising towards +45..+65 degrees, P is larger in II than in I; after an LA/LL swap it is larger in "I".
``p_wave_index`` = (P area in I - P area in II) / the larger of the two, over 250-80 ms before R relative to
the PR level; LA/LL is flagged when it exceeds ``P_INDEX_THRESHOLD`` in a regular rhythm with a visible P
wave (in AF there is no P wave to read, and the correct ECGs of the tuning half that exceeded 0 were all AF).
A smaller positive index (the sign itself: P larger in I than in II, i.e. P inverted in III) flags LA/LL only
when the QRS agrees: LA/LL inverts lead III while V1-V6, and so their prediction of III (the difference of the
predictions of II and I, Einthoven's law), stay put, so lead III then anti-correlates with its precordial
prediction (``lead_iii_agreement``). Published criteria combine P-wave and QRS signs in the same way (Kors &
van Herpen 2001; review: Batchvarov, Malik & Camm, Europace 2007;9:1081-1090); the amplitude-free margin misses
this cue because it compares I and II only by shape.

A neutral electrode (RL) swapped with an arm electrode puts a leg potential on that arm: lead II (RA/RL) or
lead III (LA/RL) becomes nearly flat while the other limb leads keep their size (Krasteva et al., Sensors
2019;19:2920). RL swapped with LL changes nothing measurable and is not detected (nor harmful).
"""

from __future__ import annotations

import math

import numpy as np

from edge_runtime.flags import Flag

# Rows of the standard 12-lead order.
_I, _II, _III, _V1 = 0, 1, 2, 6
# Least squares of lead I / lead II on V1..V6 over the median beats of the tuning half (bench-reversal --fit).
PRECORDIAL_TO_I = np.array([-0.570, 0.119, 0.188, -0.145, 0.029, 0.317])
PRECORDIAL_TO_II = np.array([-0.403, 0.142, 0.228, -0.227, -0.010, 0.618])
# Margin thresholds, chosen on the tuning half: LA/RA and RA/LL midway between the largest margin of the correct
# ECGs and the smallest of the swapped ones (they do not overlap there); LA/LL does overlap, so its threshold
# sits above every correct ECG's margin (specificity first: reversals are rare).
MARGIN_THRESHOLDS = {"LA/RA": 0.0, "RA/LL": 0.0, "LA/LL": 0.6}
# LA/LL by the P wave: among the regular-rhythm correct ECGs of the tuning half the largest index is 0.53 (JS20014,
# sinus bradycardia with atrial premature beats and a horizontal P axis; the next -0.05), and 0.5 Hz wander of
# 0.5 mV moved HR06002 from -0.06 to 0.38; 0.6 is above all of them (specificity first).
P_INDEX_THRESHOLD = 0.6
# P index above 0 with lead III against its precordial prediction (correlation below -0.5): on the tuning half,
# under 0.15-0.5 Hz wander of 0.5 mV (seeds 0-2), the correct regular ECGs with a positive index kept a
# correlation of -0.38 or more (HR06002, JS20014 +0.80), the swapped ones the QRS cue adds -0.62 or less.
P_INDEX_WITH_QRS = 0.0
LEAD_III_AGREEMENT_MAX = -0.5
P_WINDOW_MS = (250.0, 80.0)  # P wave searched this long before R (to this long before R)
P_BASELINE_MS = (80.0, 60.0)  # its reference level: the PR segment just before the QRS
P_MIN_AREA_MV_MS = 1.5  # a P wave this large in I or II (mV x ms) before its shape is read
# RL on an arm: the flat limb lead's QRS-T peak-to-peak below this fraction of the largest limb lead's (half the
# smallest ratio among the correct ECGs of the tuning half, 0.16).
FLAT_LIMB_RATIO = 0.08

OPERATOR_WHERE = {"LA/RA": "LA/RA", "LA/LL": "LA/LL", "RA/LL": "RA/LL", "RA/RL": "RA/RL", "LA/RL": "LA/RL"}


def _centred(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``x`` less its mean, and that difference's Euclidean norm (``np.linalg.norm``'s sqrt of ``x.dot(x)``).

    The mean is ``x.mean()``'s own arithmetic (the sum, divided by the count) without its Python overhead.
    """
    x = x - np.add.reduce(x) / x.size
    return x, math.sqrt(x.dot(x))


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    return _corr_centred(*_centred(x), *_centred(y))


def _corr_centred(x: np.ndarray, norm_x: float, y: np.ndarray, norm_y: float) -> float:
    """``_corr`` of two already centred vectors with their norms (a prediction is centred once, not per use)."""
    denominator = norm_x * norm_y
    return float(x @ y / denominator) if denominator > 1e-12 else 0.0


def _restored(template: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Leads I and II as they were before each hypothetical reversal (the reversals are their own inverses)."""
    lead_i, lead_ii, lead_iii = template[_I], template[_II], template[_III]
    return {"none": (lead_i, lead_ii), "LA/RA": (-lead_i, lead_iii), "LA/LL": (lead_ii, lead_i),
            "RA/LL": (-lead_iii, -lead_ii)}


def reversal_margins(template: np.ndarray) -> dict[str, float]:
    """Per limb reversal: (corr of restored I and II with their precordial predictions) minus (as recorded).

    Parameters
    ----------
    template : ndarray, shape (12, L)
        Median beat, standard lead order.

    Returns
    -------
    dict
        ``{"LA/RA": m, "LA/LL": m, "RA/LL": m}``; a positive margin means the reversal explains the ECG better.
    """
    template = np.asarray(template, dtype=np.float64)
    precordial = template[_V1:_V1 + 6]
    predicted_i, predicted_ii = _centred(PRECORDIAL_TO_I @ precordial), _centred(PRECORDIAL_TO_II @ precordial)
    scores = {name: _corr_centred(*_centred(i), *predicted_i) + _corr_centred(*_centred(ii), *predicted_ii)
              for name, (i, ii) in _restored(template).items()}
    return {name: scores[name] - scores["none"] for name in MARGIN_THRESHOLDS}


def lead_iii_agreement(template: np.ndarray) -> float:
    """Correlation of lead III with its precordial prediction (that of II minus that of I); LA/LL makes it negative."""
    template = np.asarray(template, dtype=np.float64)
    return _corr(template[_III], (PRECORDIAL_TO_II - PRECORDIAL_TO_I) @ template[_V1:_V1 + 6])


def flat_limb_ratios(template: np.ndarray) -> tuple[float, float]:
    """Peak-to-peak of leads II and III over the largest of I, II, III (median beat)."""
    spans = np.ptp(np.asarray(template, dtype=np.float64)[:3], axis=1)
    largest = float(spans.max())
    if largest <= 1e-6:
        return 1.0, 1.0  # all limb leads flat: lead-off, not a reversal
    return float(spans[_II] / largest), float(spans[_III] / largest)


def p_wave_index(template: np.ndarray, fs: float, r_index: int) -> float | None:
    """(P area in I - P area in II) / max(|areas|) of the median beat; None when no P wave is visible."""
    template = np.asarray(template, dtype=np.float64)
    start, stop = (r_index - int(round(ms * fs / 1000.0)) for ms in P_WINDOW_MS)
    base_start, base_stop = (r_index - int(round(ms * fs / 1000.0)) for ms in P_BASELINE_MS)
    if start < 0 or base_stop <= base_start:
        return None
    level = template[:2, base_start:base_stop].mean(axis=1)
    area_i, area_ii = (template[:2, start:stop] - level[:, None]).sum(axis=1) * 1000.0 / fs  # mV x ms
    largest = max(abs(area_i), abs(area_ii))
    if largest < P_MIN_AREA_MV_MS:
        return None
    return float((area_i - area_ii) / largest)


def detect_reversal(template: np.ndarray, fs: float = 500.0, r_index: int = 150,
                    regular_rhythm: bool = True) -> str | None:
    """The most likely electrode reversal of a 12-lead median beat ("LA/RA", ..., "RA/RL", "LA/RL") or None.

    ``fs`` and ``r_index`` place the R peak in ``template`` (for the P wave); ``regular_rhythm`` False (AF
    suspected) skips the P-wave test of LA/LL.
    """
    return _detect(np.asarray(template, dtype=np.float64), fs, r_index, regular_rhythm)[0]


def _detect(template: np.ndarray, fs: float, r_index: int, regular_rhythm: bool,
            ) -> tuple[str | None, tuple[float, float], dict[str, float] | None]:
    """``detect_reversal`` on a float64 template, with the limb ratios and margins it computed on the way
    (``reversal_flag`` words its flag with them instead of computing them again; None: not reached)."""
    ratios = flat_limb_ratios(template)
    if ratios[0] < FLAT_LIMB_RATIO:
        return "RA/RL", ratios, None
    if ratios[1] < FLAT_LIMB_RATIO:
        return "LA/RL", ratios, None
    margins = reversal_margins(template)
    above = {name: margin for name, margin in margins.items() if margin > MARGIN_THRESHOLDS[name]}
    if above:
        return max(above, key=above.get), ratios, margins
    if regular_rhythm:
        index = p_wave_index(template, fs, r_index)
        if index is not None and (index > P_INDEX_THRESHOLD or (
                index > P_INDEX_WITH_QRS and lead_iii_agreement(template) < LEAD_III_AGREEMENT_MAX)):
            return "LA/LL", ratios, margins
    return None, ratios, margins


def reversal_flag(template: np.ndarray, fs: float = 500.0, r_index: int = 150,
                  regular_rhythm: bool = True) -> Flag | None:
    """``electrode_reversal`` or ``neutral_electrode_misplaced`` for a 12-lead median beat, else None."""
    template = np.asarray(template, dtype=np.float64)  # once, for every helper below
    found, (ratio_ii, ratio_iii), margins = _detect(template, fs, r_index, regular_rhythm)
    if found is None:
        return None
    if found.endswith("RL"):
        lead, ratio = ("II", ratio_ii) if found == "RA/RL" else ("III", ratio_iii)
        return Flag("neutral_electrode_misplaced", f"lead {lead} is nearly flat ({ratio:.2f} of the largest limb "
                    f"lead; limit {FLAT_LIMB_RATIO}): {found} swapped", where=found)
    assert margins is not None  # computed whenever a limb reversal is found
    if margins[found] <= MARGIN_THRESHOLDS[found]:  # LA/LL by its P wave (with the QRS of lead III)
        index = p_wave_index(template, fs, r_index)
        if index > P_INDEX_THRESHOLD:
            return Flag("electrode_reversal", f"P wave larger in I than in II (index {index:+.2f} > "
                        f"{P_INDEX_THRESHOLD}) in a regular rhythm: LA/LL reversal", where=found)
        return Flag("electrode_reversal", f"P wave larger in I than in II (index {index:+.2f} > {P_INDEX_WITH_QRS}) and "
                    f"lead III against its precordial prediction (correlation {lead_iii_agreement(template):+.2f} < "
                    f"{LEAD_III_AGREEMENT_MAX}) in a regular rhythm: LA/LL reversal", where=found)
    return Flag("electrode_reversal", f"{found} reversal explains the limb leads better than the recorded order "
                f"(margin {margins[found]:+.2f} > {MARGIN_THRESHOLDS[found]:+.2f}; precordial-lead redundancy)",
                where=found)
