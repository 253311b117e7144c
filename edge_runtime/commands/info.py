"""``elvmass info RECORD``: what a file holds, without rendering anything heavy."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record", help="ECG file: WFDB .hea, MUSE/HL7/Philips .xml, DICOM .dcm, .csv, .npy/.npz")
    parser.add_argument("--fs", type=float, help="sampling rate, for CSV/NumPy files that do not state it")
    parser.add_argument("--lead-names", help="comma-separated lead names, for .npy files (and header-less CSV)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def summarize(record) -> dict:
    """The summary printed by ``elvmass info`` as a plain dict."""
    amplitude = record.signals_mv
    return {
        "source": record.source,
        "format": record.format,
        "fs_hz": record.fs,
        "n_samples": record.n_samples,
        "duration_s": round(record.duration_s, 3),
        "leads": list(record.lead_names),
        "standard_12_lead": record.has_standard_12(),
        "peak_to_peak_mv": {name: round(float(row.max() - row.min()), 3) for name, row in zip(record.lead_names, amplitude)},
        "patient": {
            "age_years": record.patient.age_years,
            "sex": record.patient.sex,
            "height_cm": record.patient.height_cm,
            "weight_kg": record.patient.weight_kg,
            "bsa_m2": None if record.patient.bsa_m2 is None else round(record.patient.bsa_m2, 3),
        },
        "measurements": dict(record.measurements),
        "amplitudes_normalized": record.amplitudes_normalized,
        "notes": list(record.notes),
    }


def run(args: argparse.Namespace) -> int:
    from edge_runtime.formats import RecordError, read_record

    try:
        lead_names = [name.strip() for name in args.lead_names.split(",")] if args.lead_names else None
        record = read_record(args.record, fs=args.fs, lead_names=lead_names)
    except RecordError as error:
        print(f"elvmass info: {error}", file=sys.stderr)
        return 1
    summary = summarize(record)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    patient = summary["patient"]
    print(f"record      {summary['source']}")
    print(f"format      {summary['format']}")
    print(f"rate        {summary['fs_hz']:g} Hz, {summary['n_samples']} samples, {summary['duration_s']:g} s")
    print(f"leads       {len(summary['leads'])}: {' '.join(summary['leads'])}"
          + ("  (standard 12-lead)" if summary["standard_12_lead"] else ""))
    known = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in patient.items() if v is not None)
    spans = list(summary["peak_to_peak_mv"].values())
    print(f"amplitude   peak-to-peak {min(spans):g}..{max(spans):g} mV across leads")
    print(f"patient     {known or 'unknown'}")
    if summary["measurements"]:
        print("measured    " + ", ".join(f"{k}={v:g}" for k, v in summary["measurements"].items()))
    for note in summary["notes"]:
        print(f"note        {note}")
    return 0
