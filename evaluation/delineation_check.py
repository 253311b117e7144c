"""QRS delineation and interval errors on LUDB (the numbers docs/signal.md states; ``elvmass bench-signal`` prints the
same table beside neurokit2). Errors are detected - reference, ms; references are the lead II annotations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DelineationErrors:
    onset_ms: np.ndarray  # per matched complex
    offset_ms: np.ndarray
    intervals_ms: dict[str, np.ndarray]  # per record: qrs_ms, pr_ms, qt_ms (ours - median annotation)

    def summary(self) -> dict[str, float]:
        """bias (median), |median| and p90 of |error| for onsets and offsets; bias and |median| per interval."""
        out = {"n": float(self.onset_ms.size)}
        for name, values in (("onset", self.onset_ms), ("offset", self.offset_ms)):
            out[f"{name}_bias"] = float(np.median(values))
            out[f"{name}_abs_median"] = float(np.median(np.abs(values)))
            out[f"{name}_p90"] = float(np.percentile(np.abs(values), 90))
        for name, values in self.intervals_ms.items():
            out[f"{name}_bias"] = float(np.median(values))
            out[f"{name}_abs_median"] = float(np.median(np.abs(values)))
        return out


def ludb_headers(data: Path) -> list[Path]:
    folder = data / "ludb" / "data" if (data / "ludb" / "data").exists() else data / "ludb"
    return sorted(folder.glob("*.hea"))


def ludb_delineation_errors(data: Path) -> DelineationErrors:
    """Our 12-lead QRS onset/offset (raw-record time) against LUDB's lead II annotations, every record."""
    import wfdb

    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import PreprocessConfig, analyze_record
    from evaluation.scoring import boundary_errors, wave_boundaries

    config = PreprocessConfig()
    shift = int(round(config.delay_s * config.fs))
    onsets, offsets = [], []
    intervals: dict[str, list[float]] = {"qrs_ms": [], "pr_ms": [], "qt_ms": []}
    for header in ludb_headers(data):
        record = read_record(header)
        annotation = wfdb.rdann(str(header.with_suffix("")), "ii")
        reference = wave_boundaries(annotation.sample, annotation.symbol)
        analysis = analyze_record(record, config)

        def to_raw(index: np.ndarray) -> np.ndarray:
            return np.where(index >= 0, index - shift, -1)

        on, off = boundary_errors(reference, to_raw(analysis.r_peaks), to_raw(analysis.qrs_onset),
                                  to_raw(analysis.qrs_offset), config.fs)
        onsets.extend(on)
        offsets.extend(off)
        for name, error in interval_errors(annotation, analysis.parameters, config.fs).items():
            if np.isfinite(error):
                intervals[name].append(error)
    return DelineationErrors(np.asarray(onsets, dtype=float), np.asarray(offsets, dtype=float),
                             {name: np.asarray(values) for name, values in intervals.items()})


def interval_errors(annotation, parameters: dict, fs: float) -> dict[str, float]:
    """QRS, PR and QT of one record from its lead II annotations vs our parameters, ms (ours - reference)."""
    from evaluation.scoring import wave_boundaries

    qrs = wave_boundaries(annotation.sample, annotation.symbol, "N")
    p_waves = wave_boundaries(annotation.sample, annotation.symbol, "p")
    t_waves = wave_boundaries(annotation.sample, annotation.symbol, "t")
    to_ms = 1000.0 / fs
    out = {"qrs_ms": float("nan"), "pr_ms": float("nan"), "qt_ms": float("nan")}
    if len(qrs):
        out["qrs_ms"] = parameters["qrs_ms"] - float(np.median(qrs[:, 2] - qrs[:, 0])) * to_ms
    pr = [on - p_waves[p_waves[:, 0] < on][-1, 0] for on in qrs[:, 0] if np.any(p_waves[:, 0] < on)]
    pr = [v * to_ms for v in pr if v * to_ms < 400]
    if pr:
        out["pr_ms"] = parameters["pr_ms"] - float(np.median(pr))
    qt = [t_waves[t_waves[:, 2] > on][0, 2] - on for on in qrs[:, 0] if np.any(t_waves[:, 2] > on)]
    qt = [v * to_ms for v in qt if v * to_ms < 700]
    if qt:
        out["qt_ms"] = parameters["qt_ms"] - float(np.median(qt))
    return out
