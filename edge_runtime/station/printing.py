"""The printable report of a stored result, and the synchronized beats the Result screen draws.

The stored raw window is analyzed again by the same :class:`Analyzer` (the analysis starts cold and is
deterministic, so it finds the same beats the model used); the stored report is what is printed.
Printing runs as ``python -m edge_runtime.station.printing`` in a child process: matplotlib (the
``report`` extra, ~40 MB) never enters the station process and a slow render never holds a request
thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.record import STANDARD_LEADS, PatientContext

BEATS_DECIMATION = 2
_PATIENT_KEYS = ("age_years", "sex", "height_cm", "weight_kg", "patient_id")


def stored_patient(report: dict) -> PatientContext:
    """The patient context stored with a report (unknown keys ignored)."""
    patient = report.get("patient") if isinstance(report.get("patient"), dict) else {}
    values = {}
    for key in _PATIENT_KEYS:
        value = patient.get(key)
        if isinstance(value, dict):  # a value stored with its provenance, e.g. {"value": 77, "source": "operator"}
            value = value.get("value")
        values[key] = value
    return PatientContext(**values)


def reanalyze(analyzer: Any, store_path: Path, result_id: int) -> tuple[dict, Any]:
    """``(stored report, WindowResult of the stored window)``; ``KeyError`` when there is no such result."""
    from edge_runtime.runtime.store import ResultStore

    with ResultStore(store_path) as store:
        report = store.report(result_id)
        window = store.window(result_id)
    report["result_id"] = result_id
    if window.signals_mv.shape[0] != len(STANDARD_LEADS):
        return report, None
    return report, analyzer.analyze_12(window.signals_mv, window.fs, stored_patient(report))


def beats_payload(analyzer: Any, store_path: Path, result_id: int) -> dict:
    """The beats the model used, per lead, as integers of 10 uV (for the Result screen's canvas)."""
    report, result = reanalyze(analyzer, store_path, result_id)
    empty = {"leads": list(STANDARD_LEADS), "fs": None, "beats": [], "unit_mv": 0.01}
    if result is None or result.analysis is None or not result.estimate.beat_rows:
        return empty
    beats = np.asarray(result.analysis.beats[result.estimate.beat_rows])[:, :, ::BEATS_DECIMATION]
    codes = np.clip(np.rint(beats / 0.01), -99999, 99999).astype(np.int32)
    return {"leads": list(STANDARD_LEADS), "fs": float(result.analysis.fs) / BEATS_DECIMATION,
            "beats": codes.tolist(), "unit_mv": 0.01}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime.station.printing",
                                     description="render the printable report of a stored result")
    parser.add_argument("--db", required=True)
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--out", required=True, help=".pdf or .png")
    parser.add_argument("--config")
    parser.add_argument("--bundle")
    parser.add_argument("--backend")
    parser.add_argument("--precision")
    args = parser.parse_args(argv)

    from edge_runtime.config import load_config
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.report import render_report

    analyzer = Analyzer(load_config(args.config), bundle_path=args.bundle, backend=args.backend,
                        precision=args.precision)
    try:
        report, result = reanalyze(analyzer, Path(args.db), args.id)
    except KeyError as error:
        print(f"no such result: {error}", file=sys.stderr)
        return 1
    if result is not None and result.analysis is not None and result.analysis.conditioned.shape[0] == 12:
        signals, fs = result.analysis.conditioned, result.analysis.fs
        beats = result.analysis.beats[result.estimate.beat_rows] if result.estimate.beat_rows else None
    else:
        from edge_runtime.runtime.store import ResultStore

        with ResultStore(args.db) as store:
            window = store.window(args.id)
        signals, fs, beats = window.signals_mv, window.fs, None
    try:
        render_report(report, signals, fs, args.out, beats=beats, beat_fs=fs)
    except ImportError:
        print("the printable report needs the report extra: pip install 'elvmass[report]'", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
