"""RR-interval irregularity: the atrial-fibrillation guard.

AF makes successive RR intervals vary randomly. Within a 10 s window there are only ~10 RR
intervals, so the statistics are robust ones: the median absolute successive RR difference
relative to the median RR (a single ectopic beat moves only two of the differences) and the
normalized RMSSD (Dash et al., Ann Biomed Eng 2009). Both must exceed their thresholds.
"""

from __future__ import annotations

import numpy as np

MIN_RR = 5
NMASD_THRESHOLD = 0.08
NRMSSD_THRESHOLD = 0.10


def rr_irregularity(r_peaks: np.ndarray, fs: float) -> dict[str, float]:
    """RR statistics of a window: ``n_rr``, ``median_rr_s``, ``nmasd``, ``nrmssd`` (NaN when too few beats)."""
    rr = np.diff(np.asarray(r_peaks, dtype=np.float64)) / fs
    nan = float("nan")
    if rr.size < 2:
        return {"n_rr": float(rr.size), "median_rr_s": float(np.median(rr)) if rr.size else nan,
                "nmasd": nan, "nrmssd": nan}
    successive = np.diff(rr)
    return {
        "n_rr": float(rr.size),
        "median_rr_s": float(np.median(rr)),
        "nmasd": float(np.median(np.abs(successive)) / np.median(rr)),
        "nrmssd": float(np.sqrt(np.mean(successive ** 2)) / np.mean(rr)),
    }


def af_suspected(r_peaks: np.ndarray, fs: float) -> tuple[bool, str]:
    """Whether the RR intervals are irregular enough to suspect AF, with the reason."""
    stats = rr_irregularity(r_peaks, fs)
    if stats["n_rr"] < MIN_RR:
        return False, f"only {int(stats['n_rr'])} RR intervals (need {MIN_RR})"
    irregular = stats["nmasd"] > NMASD_THRESHOLD and stats["nrmssd"] > NRMSSD_THRESHOLD
    reason = (f"RR irregularity: median |dRR|/RR = {stats['nmasd']:.3f} (> {NMASD_THRESHOLD}), "
              f"nRMSSD = {stats['nrmssd']:.3f} (> {NRMSSD_THRESHOLD}) over {int(stats['n_rr'])} RR intervals")
    return irregular, reason
