"""``elvmass beats RECORD [--json]``: R peaks, QRS onset/offset, ECG parameters and quality flags."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record", help="ECG file: WFDB .hea, MUSE/HL7/Philips .xml, DICOM .dcm, .csv, .npy/.npz")
    parser.add_argument("--fs", type=float, help="sampling rate, for CSV/NumPy files that do not state it")
    parser.add_argument("--mains", type=float, default=50.0, choices=(50.0, 60.0), help="mains frequency to notch")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _to_record_time(indices: np.ndarray, shift: int, fs_analysis: float, fs_record: float) -> list[int | None]:
    """Analysis-rate indices of the conditioned signal -> sample indices of the raw record (None = unknown)."""
    out: list[int | None] = []
    for index in np.asarray(indices, dtype=np.int64):
        out.append(None if index < 0 else max(0, int(round((int(index) - shift) * fs_record / fs_analysis))))
    return out


def beats_summary(record, mains_hz: float = 50.0) -> dict:
    """The object printed by ``elvmass beats --json`` for an :class:`EcgRecord`."""
    from edge_runtime.preprocess import PreprocessConfig, analyze_leads

    config = PreprocessConfig(notch_hz=mains_hz)
    if record.has_standard_12():
        record = record.to_standard_12()  # derived limb leads, standard order, extra leads dropped
    # Fewer leads (MIT-BIH, CPSC): detection on those leads, axes NaN with a no_delineation flag.
    analysis = analyze_leads(record.signals_mv, record.fs, tuple(record.lead_names), config)
    shift = int(round(config.delay_s * config.fs))

    def number(value: float) -> float | None:
        return None if not math.isfinite(value) else round(float(value), 1)

    return {
        "fs": record.fs,
        "r_peaks": _to_record_time(analysis.r_peaks, shift, config.fs, record.fs),
        "qrs_onset": _to_record_time(analysis.qrs_onset, shift, config.fs, record.fs),
        "qrs_offset": _to_record_time(analysis.qrs_offset, shift, config.fs, record.fs),
        "flags": [flag.to_dict() for flag in analysis.flags],
        "parameters": {name: number(analysis.parameters[name]) for name in ("qrs_ms", "p_axis", "r_axis", "t_axis")},
    }


def run(args: argparse.Namespace) -> int:
    from edge_runtime.formats import RecordError, read_record

    try:
        record = read_record(args.record, fs=args.fs)
        summary = beats_summary(record, args.mains)
    except (RecordError, ValueError) as error:
        print(f"elvmass beats: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"record  {record.source}  ({record.fs:g} Hz, {len(record.lead_names)} leads, {record.duration_s:g} s)")
    params = summary["parameters"]
    print("params  " + ", ".join(f"{k}={'n/a' if v is None else v}" for k, v in params.items()))
    for flag in summary["flags"]:  # plain words; the measurements behind each flag are in --json ("reason")
        print(f"flag    {flag['name']}: {flag['operator_text']}")
    if not summary["flags"]:
        print("flag    none (window usable)")
    print(f"{'beat':>5} {'r_peak':>9} {'qrs_onset':>10} {'qrs_offset':>10}")
    for i, (r, on, off) in enumerate(zip(summary["r_peaks"], summary["qrs_onset"], summary["qrs_offset"])):
        print(f"{i:>5} {r:>9} {'-' if on is None else on:>10} {'-' if off is None else off:>10}")
    return 0
