"""Scoring detections against reference annotations (like ``wfdb.processing.compare_annotations``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Annotation symbols that mark a heartbeat (PhysioNet's beat codes). Rhythm changes ('+'), noise
# ('~'), isolated QRS-like artefacts ('|'), non-conducted P waves ('x'), comments ('"') and
# other non-beat marks are not beats.
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")


@dataclass(frozen=True)
class DetectionScore:
    """Matched (tp), missed (fn) and extra (fp) beats; Se = tp/(tp+fn), +P = tp/(tp+fp)."""

    tp: int
    fp: int
    fn: int

    @property
    def sensitivity(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def positive_predictivity(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def __add__(self, other: "DetectionScore") -> "DetectionScore":
        return DetectionScore(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def beat_samples(samples: np.ndarray, symbols: list[str]) -> np.ndarray:
    """The annotation samples whose symbol is a beat (see ``BEAT_SYMBOLS``)."""
    keep = np.array([symbol in BEAT_SYMBOLS for symbol in symbols], dtype=bool)
    return np.asarray(samples, dtype=np.int64)[keep] if len(symbols) else np.zeros(0, dtype=np.int64)


def compare_detections(reference: np.ndarray, detected: np.ndarray, fs: float, *, tolerance_s: float = 0.150,
                       start: int = 0, stop: int | None = None,
                       exclude: list[tuple[int, int]] = ()) -> DetectionScore:
    """One-to-one matching of detections to reference beats within ``tolerance_s``.

    Parameters
    ----------
    reference, detected : ndarray of int
        Sample indices (same rate ``fs``).
    fs : float
        Sampling rate, Hz.
    tolerance_s : float
        Largest |detected - reference| that counts as a match (150 ms is the EC57 convention).
    start, stop : int
        Only beats in ``[start, stop)`` are scored (e.g. skip the first and last second).
    exclude : list of (start, stop)
        Intervals where neither reference nor detections are scored (see :func:`excluded_episodes`).

    Returns
    -------
    DetectionScore

    Notes
    -----
    Greedy in time order, each reference beat matched to the closest unmatched detection, as
    ``wfdb.processing.compare_annotations`` does.
    """
    reference = np.sort(np.asarray(reference, dtype=np.int64))
    detected = np.sort(np.asarray(detected, dtype=np.int64))
    stop = np.iinfo(np.int64).max if stop is None else stop
    reference = reference[(reference >= start) & (reference < stop)]
    detected = detected[(detected >= start) & (detected < stop)]
    for lo, hi in exclude:
        reference = reference[(reference < lo) | (reference >= hi)]
        detected = detected[(detected < lo) | (detected >= hi)]
    tolerance = tolerance_s * fs
    used = np.zeros(detected.size, dtype=bool)
    tp = 0
    for ref in reference:
        lo = np.searchsorted(detected, ref - tolerance, side="left")
        hi = np.searchsorted(detected, ref + tolerance, side="right")
        best, best_distance = -1, None
        for j in range(lo, hi):
            if not used[j]:
                distance = abs(int(detected[j]) - int(ref))
                if best_distance is None or distance < best_distance:
                    best, best_distance = j, distance
        if best >= 0:
            used[best] = True
            tp += 1
    return DetectionScore(tp=tp, fp=int(detected.size - tp), fn=int(reference.size - tp))


def scored_samples(spans, start: int = 0, stop: int | None = None, exclude: list[tuple[int, int]] = ()) -> int:
    """Samples of the disjoint ``spans`` that :func:`compare_detections` scores with these ``start``, ``stop``, ``exclude``.

    ``scored_samples([(0, n)], start, stop, exclude)`` is the scored length of a record;
    ``scored_samples(refused, start, stop, exclude)`` is how much of it a detector refused as noise.
    """
    stop = np.iinfo(np.int64).max if stop is None else stop
    total = 0
    for lo, hi in spans:
        lo, hi = max(int(lo), start), min(int(hi), stop)
        if hi > lo:
            total += hi - lo - sum(max(0, min(hi, b) - max(lo, a)) for a, b in exclude)
    return total


def excluded_episodes(samples: np.ndarray, symbols: list[str]) -> list[tuple[int, int]]:
    """Ventricular flutter/fibrillation episodes (between ``[`` and ``]``), excluded from QRS scoring (EC57)."""
    episodes, start = [], None
    for sample, symbol in zip(samples, symbols):
        if symbol == "[":
            start = int(sample)
        elif symbol == "]" and start is not None:
            episodes.append((start, int(sample) + 1))
            start = None
    if start is not None:
        episodes.append((start, np.iinfo(np.int64).max))
    return episodes


def wave_boundaries(samples: np.ndarray, symbols: list[str], wave: str = "N") -> np.ndarray:
    """``(n_waves, 3)`` onset, peak, offset from LUDB-style annotations ``(`` ``wave`` ``)``.

    Waves without both an onset and an offset right beside them are skipped.
    """
    rows = []
    for i, symbol in enumerate(symbols):
        if symbol != wave:
            continue
        if 0 < i < len(symbols) - 1 and symbols[i - 1] == "(" and symbols[i + 1] == ")":
            rows.append((int(samples[i - 1]), int(samples[i]), int(samples[i + 1])))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def boundary_errors(reference: np.ndarray, r_peaks: np.ndarray, onset: np.ndarray, offset: np.ndarray,
                    fs: float, tolerance_s: float = 0.150) -> tuple[np.ndarray, np.ndarray]:
    """Signed onset and offset errors (detected - reference, ms) of the matched QRS complexes.

    Parameters
    ----------
    reference : ndarray, shape (n, 3)
        Reference onset, peak, offset (see :func:`wave_boundaries`).
    r_peaks, onset, offset : ndarray of int
        Detected R peaks and their QRS boundaries (-1 = not found), same time base as ``reference``.
    fs : float
    tolerance_s : float
        A reference QRS is matched to the detected R peak nearest its peak annotation within this.

    Returns
    -------
    onset_errors_ms, offset_errors_ms : ndarray
        One entry per matched complex with a boundary (unmatched references are left out).
    """
    onset_errors, offset_errors = [], []
    r_peaks = np.asarray(r_peaks)
    if r_peaks.size == 0:
        return np.zeros(0), np.zeros(0)
    for ref_on, ref_peak, ref_off in np.asarray(reference):
        j = int(np.argmin(np.abs(r_peaks - ref_peak)))
        if abs(int(r_peaks[j]) - int(ref_peak)) > tolerance_s * fs:
            continue
        if onset[j] >= 0:
            onset_errors.append((int(onset[j]) - int(ref_on)) * 1000.0 / fs)
        if offset[j] >= 0:
            offset_errors.append((int(offset[j]) - int(ref_off)) * 1000.0 / fs)
    return np.asarray(onset_errors), np.asarray(offset_errors)
