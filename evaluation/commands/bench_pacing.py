"""``elvmass bench-pacing [--data DIR]``: the pacing flag on real 12-lead records with synthetic pacemaker spikes.

Front-end rates 500 and 1000 Hz; pulses 0.5, 1 and 2 ms wide, 1, 2 and 5 mV high (evaluation/pacing_check.py).
Prints, per setting, how many windows are flagged ``pacing`` (and how many ``noise``, ``wide_qrs`` or nothing),
and the same for the records as recorded (false pacing alarms).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evaluation.real_records import default_data_dir

    parser.add_argument("--data", type=Path, default=default_data_dir(), help="folder with cinc2021/ and ptbdb/")


def run(args: argparse.Namespace) -> int:
    from evaluation.pacing_check import paced_outcomes, unpaced_outcomes
    from evaluation.real_records import load_windows, record_paths

    windows = load_windows(record_paths(args.data))
    if not windows:
        print(f"no 12-lead records under {args.data}")
        return 1
    print(f"{len(windows)} real 12-lead records, one spike 80 ms before each R peak, seed 0")
    print("| front-end rate | spike width | spike height | pacing | noise | wide QRS only | nothing |")
    print("|---|---|---|---|---|---|---|")
    for fs in (500.0, 1000.0):
        plain = unpaced_outcomes(windows, fs)
        print(f"| {fs:g} Hz | no spikes | - | {plain['pacing']} | {plain['noise']} | {plain['wide_qrs']} | {plain['none']} |")
        for width in (0.5, 1.0, 2.0):
            for height in (1.0, 2.0, 5.0):
                c = paced_outcomes(windows, fs, width, height)
                print(f"| {fs:g} Hz | {width:g} ms | {height:g} mV | {c['pacing']} | {c['noise']} | {c['wide_qrs']} | {c['none']} |")
    return 0
