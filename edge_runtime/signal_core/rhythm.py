"""The atrial-fibrillation guard: RR irregularity that premature beats do not explain, without P waves.

AF has two signs on a 10 s window, and a published AF detector asks for both:

1. **Irregular RR intervals.** Robust statistics over the ~10 RR intervals of a window: the median
   absolute successive RR difference relative to the median RR and the normalized RMSSD (Dash et
   al., Ann Biomed Eng 37:1701, 2009). Before they are computed, **premature beats followed by a
   compensatory pause** are discounted: an RR interval shorter than ``PREMATURE_FRACTION`` of the
   window's median RR followed by one longer than ``PAUSE_FRACTION`` of it is an ectopic pair and
   both intervals leave the statistic (the ectopic-beat filter of Petrenas, Marozas & Sornmo,
   Comput Biol Med 65:184, 2015, applied to the window's median RR). A single ectopic beat or
   atrial/ventricular bigeminy then leaves a regular series; AF does not.
2. **No consistent P wave before the QRS.** In sinus rhythm (also sinus arrhythmia and the sinus
   beats around ectopics) every QRS is preceded by the same P wave at the same PR interval; in AF
   the segment before the QRS holds fibrillatory waves that differ from beat to beat. The
   evidence is the median correlation of each beat's pre-QRS segment (``P_WINDOW_MS`` before
   the R peak, all leads) with the median of those segments, the P-wave morphology similarity
   used with RR irregularity by Babaeizadeh et al. (J Electrocardiol 42:522, 2009) and by the
   P-wave absence detector of Ladavich & Ghoraani (Biomed Signal Process Control 18:274, 2015).

``af_suspected`` flags a window when the filtered RR series is irregular **and** the P-wave
evidence is weak (correlation below ``P_CORRELATION``). Without beats (no P-wave evidence) it falls
back to the RR criteria alone. Thresholds were chosen on the tuning split only (docs/signal.md).
"""

from __future__ import annotations

import numpy as np

from edge_runtime.signal_core.median import small_median

MIN_RR = 5
NMASD_THRESHOLD = 0.08
NRMSSD_THRESHOLD = 0.10
PREMATURE_FRACTION = 0.85
PAUSE_FRACTION = 1.10
P_WINDOW_MS = (250.0, 90.0)
P_CORRELATION = 0.7
MIN_P_BEATS = 4


def ectopic_pairs(rr: np.ndarray) -> np.ndarray:
    """Mask of RR intervals that belong to a premature beat plus its compensatory pause.

    Parameters
    ----------
    rr : ndarray
        RR intervals (any unit).

    Returns
    -------
    ndarray of bool, the same length: True for the short interval and the pause after it.
    """
    rr = np.asarray(rr, dtype=np.float64)
    ectopic = np.zeros(rr.size, dtype=bool)
    if rr.size < 3:
        return ectopic
    reference = float(small_median(rr))
    intervals = rr.tolist()  # Python floats: the same values, compared without numpy-scalar overhead
    i = 0
    while i < rr.size - 1:
        if intervals[i] < PREMATURE_FRACTION * reference and intervals[i + 1] > PAUSE_FRACTION * reference:
            ectopic[i:i + 2] = True
            i += 2
        else:
            i += 1
    return ectopic


def rr_irregularity(r_peaks: np.ndarray, fs: float, *, discount_ectopy: bool = True) -> dict[str, float]:
    """RR statistics of a window.

    Parameters
    ----------
    r_peaks : ndarray of int
        R-peak sample indices.
    fs : float
        Sampling rate, Hz.
    discount_ectopy : bool
        Leave premature-beat / compensatory-pause pairs (:func:`ectopic_pairs`) out of the
        successive differences.

    Returns
    -------
    dict
        ``n_rr`` (intervals in the window), ``n_ectopic`` (intervals discounted), ``median_rr_s``,
        ``nmasd`` (median |dRR| / median RR) and ``nrmssd`` (RMS dRR / mean RR) over successive
        differences of intervals that are both kept; NaN when fewer than two such differences.
    """
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64)) / fs
    nan = float("nan")
    ectopic = ectopic_pairs(rr) if discount_ectopy else np.zeros(rr.size, dtype=bool)
    stats = {"n_rr": float(rr.size), "n_ectopic": float(ectopic.sum()),
             "median_rr_s": float(small_median(rr)) if rr.size else nan, "nmasd": nan, "nrmssd": nan}
    both_kept = ~ectopic[:-1] & ~ectopic[1:] if rr.size >= 2 else np.zeros(0, dtype=bool)
    successive = np.diff(rr)[both_kept]
    kept = rr[~ectopic]
    if successive.size < 2:
        return stats
    stats["nmasd"] = float(small_median(np.abs(successive)) / small_median(kept))
    stats["nrmssd"] = float(np.sqrt(np.mean(successive ** 2)) / np.mean(kept))
    return stats


def p_wave_consistency(beats: np.ndarray, fs: float, beat_r_index: int) -> float:
    """Median correlation of each beat's pre-QRS segment with their median (NaN with too few beats).

    Parameters
    ----------
    beats : ndarray, shape (n_beats, n_leads, n)
        Conditioned beats with the R peak at ``beat_r_index``.
    fs : float
        Sampling rate, Hz.
    beat_r_index : int
        R-peak index inside each beat.

    Returns
    -------
    float in [-1, 1]: near 1 when every QRS has the same P wave before it, low in AF.
    """
    beats = np.asarray(beats, dtype=np.float64)
    if beats.ndim != 3 or beats.shape[0] < MIN_P_BEATS:
        return float("nan")
    lo = max(0, beat_r_index - int(round(P_WINDOW_MS[0] * fs / 1000.0)))
    hi = max(lo + 2, beat_r_index - int(round(P_WINDOW_MS[1] * fs / 1000.0)))
    segments = beats[:, :, lo:hi]
    # Each lead's segment less its straight-line fit (the PR level and the slope of a preceding T
    # wave's tail or of the baseline, which repeat beat to beat in AF too), then all leads side by side.
    ramp = np.linspace(-1.0, 1.0, hi - lo)
    segments = segments - segments.mean(axis=2, keepdims=True)
    segments = segments - (segments @ ramp / (ramp @ ramp))[:, :, None] * ramp
    segments = segments.reshape(beats.shape[0], -1)
    template = np.median(segments, axis=0)
    denominator = np.linalg.norm(segments, axis=1) * np.linalg.norm(template)
    correlation = np.where(denominator > 0, segments @ template / np.maximum(denominator, 1e-12), 0.0)
    return float(np.median(correlation))


def af_suspected(r_peaks: np.ndarray, fs: float, beats: np.ndarray | None = None,
                 beat_r_index: int | None = None) -> tuple[bool, str]:
    """Whether the window suggests AF, with the reason.

    Parameters
    ----------
    r_peaks : ndarray of int
        R peaks of the window.
    fs : float
        Sampling rate, Hz.
    beats, beat_r_index : optional
        Conditioned beats ``(n_beats, n_leads, n)`` and the R index inside them, for the P-wave
        evidence; without them the decision rests on the RR intervals alone.

    Returns
    -------
    (bool, str)
    """
    stats = rr_irregularity(r_peaks, fs)
    if stats["n_rr"] < MIN_RR:
        return False, f"only {int(stats['n_rr'])} RR intervals (need {MIN_RR})"
    if not np.isfinite(stats["nmasd"]):
        return False, (f"{int(stats['n_ectopic'])} of {int(stats['n_rr'])} RR intervals are premature beats "
                       "with compensatory pauses: ectopy, not AF")
    irregular = stats["nmasd"] > NMASD_THRESHOLD and stats["nrmssd"] > NRMSSD_THRESHOLD
    reason = (f"RR irregularity: median |dRR|/RR = {stats['nmasd']:.3f} (limit {NMASD_THRESHOLD}), "
              f"nRMSSD = {stats['nrmssd']:.3f} (limit {NRMSSD_THRESHOLD}) over {int(stats['n_rr'])} RR intervals"
              f" ({int(stats['n_ectopic'])} premature/pause intervals discounted)")
    if not irregular or beats is None or beat_r_index is None:
        return irregular, reason
    consistency = p_wave_consistency(beats, fs, beat_r_index)
    if not np.isfinite(consistency):
        return True, reason + f"; fewer than {MIN_P_BEATS} complete beats for P-wave evidence"
    if consistency >= P_CORRELATION:
        return False, reason + f"; but consistent P waves before the QRS (correlation {consistency:.2f} >= " \
                               f"{P_CORRELATION}): not AF"
    return True, reason + f"; no consistent P wave before the QRS (correlation {consistency:.2f} < {P_CORRELATION})"
