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
    from edge_runtime.formats import RecordError, read_record
    from edge_runtime.runtime.patient import merge_patient
    from edge_runtime.runtime.pipeline import analyze_file_record
    from edge_runtime.runtime.report import summary_lines

    setup = analyzer_from_args(args, "analyze")
    if setup is None:
        return 2
    config, analyzer = setup
    operator = patient_from_args(args, "analyze")
    if operator is None:
        return 2
    try:
        record = read_record(args.record, fs=args.fs)
    except RecordError as error:
        print(f"elvmass analyze: {error}", file=sys.stderr)
        return 1
    patient = merge_patient(operator, record.patient)
    problems = patient.problems()
    if problems:
        print(f"elvmass analyze: {record.source}: impossible patient context: {'; '.join(problems)}", file=sys.stderr)
        return 1
    try:
        best, results = analyze_file_record(analyzer, record, patient)
    except ValueError as error:  # e.g. a record shorter than one beat window
        print(f"elvmass analyze: {record.source}: {error}", file=sys.stderr)
        return 1
    report = dict(best.report)
    report["n_windows"] = len(results)
    report["windows"] = [{"index": i, "estimate_status": r.report["estimate_status"], "lvm_g": r.report["lvm_g"],
                          "flags": [f["name"] for f in r.report["flags"]]} for i, r in enumerate(results)]
    if args.report:
        _write_printable(best, report, args.report)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary_lines(report)))
    return 0


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
