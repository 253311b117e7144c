"""``elvmass analyze RECORD``: the LV-mass / LVH report for an ECG file, exactly as the device computes it."""

from __future__ import annotations

import argparse
import json
import sys

from edge_runtime.commands.run import add_model_arguments, add_patient_arguments, analyzer_from_args, patient_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record", help="ECG file: WFDB .hea, MUSE/HL7/Philips .xml, DICOM .dcm, .csv, .npy/.npz")
    parser.add_argument("--fs", type=float, help="sampling rate, for CSV/NumPy files that do not state it")
    add_patient_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--report", metavar="PATH", help="also write the printable report (.png or .pdf)")


def run(args: argparse.Namespace) -> int:
    from edge_runtime.commands import exit_codes
    from edge_runtime.formats import RecordError, read_record
    from edge_runtime.runtime.patient import PatientConflictError, resolve_patient
    from edge_runtime.runtime.pipeline import analyze_file_record
    from edge_runtime.runtime.report import add_patient_provenance, summary_lines

    setup = analyzer_from_args(args, "analyze")
    if setup is None:
        return exit_codes.USAGE
    config, analyzer = setup
    operator = patient_from_args(args, "analyze")
    if operator is None:
        return exit_codes.USAGE
    try:
        record = read_record(args.record, fs=args.fs)
    except RecordError as error:
        print(f"elvmass analyze: {error}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        provenance = resolve_patient(operator, record.patient, getattr(args, "prefer", None))
    except PatientConflictError as error:
        print(f"elvmass analyze: {record.source}: {error}", file=sys.stderr)
        return exit_codes.USAGE
    patient = provenance.patient
    problems = patient.problems()
    if problems:
        print(f"elvmass analyze: {record.source}: impossible patient context: {'; '.join(problems)}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        best, results = analyze_file_record(analyzer, record, patient)
    except ValueError as error:  # e.g. a record shorter than one beat window
        print(f"elvmass analyze: {record.source}: {error}", file=sys.stderr)
        return exit_codes.ERROR
    for result in results:
        add_patient_provenance(result.report, provenance)
    report = dict(best.report)
    report["n_windows"] = len(results)
    report["windows"] = [window_row(i, r, record.fs) for i, r in enumerate(results)]
    chosen = next(i for i, r in enumerate(results) if r is best)
    report["window_index"] = chosen
    report["window_start_s"] = report["windows"][chosen]["start_s"]
    report["window_of"] = window_of(chosen, results, record.fs)
    if args.report:
        _write_printable(best, report, args.report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary_lines(report)))
        if len(results) > 1:
            print("windows     " + windows_text(report["windows"]))
    return exit_codes.for_status(report["estimate_status"])


def windows_text(windows: list[dict], shown: int = 6) -> str:
    """Every window's result in one line (the first ``shown`` windows, then a count)."""
    parts = [f"{w['start_s']:g}-{w['end_s']:g} s: " + ("no estimate" if w["lvm_g"] is None else f"{w['lvm_g']:.0f} g")
             for w in windows[:shown]]
    if len(windows) > shown:
        numbers = sum(w["lvm_g"] is not None for w in windows)
        parts.append(f"... {len(windows)} windows in all, {numbers} with a number")
    return "; ".join(parts)


def window_row(index: int, result, fs: float) -> dict:
    """One line of ``report["windows"]``: where the window lies in the file and what it gave."""
    n = result.signals_mv.shape[1]
    return {"index": index, "start_s": round(index * n / fs, 3), "end_s": round((index + 1) * n / fs, 3),
            "estimate_status": result.report["estimate_status"], "lvm_g": result.report["lvm_g"],
            "lvh_verdict": result.report.get("lvh_verdict"), "flags": [f["name"] for f in result.report["flags"]]}


def window_of(chosen: int, results: list, fs: float) -> str | None:
    """``window 2 of 3 (10-20 s): the first with a number``; ``None`` for a one-window file."""
    if len(results) < 2:
        return None
    n = results[chosen].signals_mv.shape[1]
    why = "the first with a number" if results[chosen].report["lvm_g"] is not None else "no window gave a number"
    return (f"window {chosen + 1} of {len(results)} ({chosen * n / fs:g}-{(chosen + 1) * n / fs:g} s of the file): "
            f"{why}; --json lists every window")


def _write_printable(result, report: dict, path: str) -> None:
    from edge_runtime.runtime.report import render_report

    analysis = result.analysis
    use_conditioned = analysis is not None and analysis.conditioned.shape[0] == 12
    try:
        render_report(report, analysis.conditioned if use_conditioned else result.signals_mv,
                      analysis.fs if use_conditioned else result.fs, path,
                      beats=analysis.beats[result.estimate.beat_rows] if use_conditioned and result.estimate.beat_rows
                      else None, beat_fs=analysis.fs if use_conditioned else None)
        report["report_file"] = str(path)
    except ImportError:
        print("elvmass analyze: the printable report needs the report extra: pip install 'elvmass[report]'",
              file=sys.stderr)
