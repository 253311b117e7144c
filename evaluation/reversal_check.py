"""Electrode-reversal detection measured on real 12-lead records with simulated swaps (evaluation/reversal_sim.py).

Split (written down once, used by the command and the test): the cinc2021 and ptbdb records sorted by name,
alternately assigned: even positions (0, 2, 4, ...) are the **tuning half** (the precordial regression and the
thresholds of edge_runtime/signal_core/reversal.py were chosen on it), odd positions the **report half**. The
three Philips XML records became readable after the tuning: all three are in the report half.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from evaluation.real_records import RealWindow
from evaluation.reversal_sim import REVERSALS, simulate_reversal

CLASSES = ("none",) + REVERSALS


def split(windows: list[RealWindow]) -> tuple[list[RealWindow], list[RealWindow]]:
    """(tuning half, report half): even and odd positions of the name-sorted cinc2021 + ptbdb records; every
    Philips XML record reports."""
    ordered = sorted((w for w in windows if w.source_set != "philips-xml"), key=lambda w: w.name)
    later = [w for w in windows if w.source_set == "philips-xml"]
    return ordered[0::2], ordered[1::2] + later


@dataclass
class ReversalRow:
    record: str
    truth: str  # "none" or the simulated reversal
    detected: str  # "none" or the flagged reversal
    lvm_g: float | None  # the estimate the window got (None: no estimate)


def detected_reversal(flag_names_and_where: list[tuple[str, str]]) -> str:
    for name, where in flag_names_and_where:
        if name in ("electrode_reversal", "neutral_electrode_misplaced"):
            return where
    return "none"


def run_check(analyzer, windows: list[RealWindow]) -> list[ReversalRow]:
    """Every window as recorded and with each simulated reversal, through the whole runtime chain."""
    rows = []
    for window in windows:
        for truth in CLASSES:
            signals = window.signals_mv if truth == "none" else simulate_reversal(window.signals_mv, truth)
            result = analyzer.analyze_12(signals, window.fs, window.patient)
            found = detected_reversal([(f.name, f.where) for f in result.estimate.flags])
            rows.append(ReversalRow(window.name, truth, found, result.report["lvm_g"]))
    return rows


def scores(rows: list[ReversalRow]) -> dict[str, dict]:
    """Per reversal: sensitivity (flagged as that reversal), and specificity on the correct ECGs (not flagged as it)."""
    correct = [r for r in rows if r.truth == "none"]
    out = {}
    for reversal in REVERSALS:
        swapped = [r for r in rows if r.truth == reversal]
        hits = sum(r.detected == reversal for r in swapped)
        false = sum(r.detected == reversal for r in correct)
        out[reversal] = {"n_swapped": len(swapped), "detected": hits, "sensitivity": hits / max(len(swapped), 1),
                         "n_correct": len(correct), "false_alarms": false,
                         "specificity": 1.0 - false / max(len(correct), 1),
                         "swapped_with_estimate": sum(r.lvm_g is not None for r in swapped),
                         "confused_with": dict(Counter(r.detected for r in swapped if r.detected not in (reversal, "none")))}
    out["any"] = {"n_correct": len(correct), "false_alarms": sum(r.detected != "none" for r in correct)}
    return out


def fit_precordial_regression(analyze, windows: list[RealWindow]) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of lead I and lead II on V1-V6 over the median beats of ``windows`` (correct ECGs)."""
    precordial, lead_i, lead_ii = [], [], []
    for window in windows:
        analysis = analyze(window.signals_mv, window.fs)
        if analysis.beats.shape[0] == 0:
            continue
        template = np.median(analysis.beats, axis=0).astype(np.float64)
        precordial.append(template[6:12].T)
        lead_i.append(template[0])
        lead_ii.append(template[1])
    basis = np.concatenate(precordial)
    return (np.linalg.lstsq(basis, np.concatenate(lead_i), rcond=None)[0],
            np.linalg.lstsq(basis, np.concatenate(lead_ii), rcond=None)[0])
