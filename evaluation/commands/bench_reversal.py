"""``elvmass bench-reversal [--data DIR]``: electrode-reversal detection on every real 12-lead record, swapped and not.

Each record of ../shared/data (cinc2021, ptbdb; evaluation/real_records.py) is analysed as recorded and with each
simulated cable swap (LA/RA, LA/LL, RA/LL and the neutral electrode RL with RA or LA; Krasteva et al. 2019
transformations, evaluation/reversal_sim.py) through the whole runtime chain with the bundled model. Prints
sensitivity, specificity and how many swapped windows still got an LV-mass estimate, for the tuning half and
the report half (evaluation/reversal_check.py says which record is in which), and the precordial regression
refitted on the tuning half beside the constants the detector uses.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evaluation.real_records import default_data_dir

    parser.add_argument("--data", type=Path, default=default_data_dir(), help="folder with cinc2021/ and ptbdb/")


def _table(title: str, result: dict) -> None:
    print(f"\n{title}")
    print("| reversal | sensitivity | specificity | swapped windows still with an estimate | confused with |")
    print("|---|---|---|---|---|")
    for reversal, s in result.items():
        if reversal == "any":
            continue
        confused = ", ".join(f"{k} {v}" for k, v in s["confused_with"].items()) or "-"
        print(f"| {reversal} | {100 * s['sensitivity']:.1f} % ({s['detected']}/{s['n_swapped']}) | "
              f"{100 * s['specificity']:.1f} % ({s['n_correct'] - s['false_alarms']}/{s['n_correct']}) | "
              f"{s['swapped_with_estimate']} | {confused} |")
    print(f"correct ECGs flagged with any reversal: {result['any']['false_alarms']} of {result['any']['n_correct']}")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from edge_runtime.preprocess import analyze_window
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.signal_core import reversal
    from evaluation.real_records import load_windows, record_paths
    from evaluation.reversal_check import fit_precordial_regression, run_check, scores, split

    windows = load_windows(record_paths(args.data))
    if not windows:
        print(f"no 12-lead records under {args.data}")
        return 1
    tuning, report = split(windows)
    print(f"{len(windows)} real 12-lead records; tuning half ({len(tuning)}): {' '.join(w.name for w in tuning)}")
    print(f"report half ({len(report)}): {' '.join(w.name for w in report)}")
    fit_i, fit_ii = fit_precordial_regression(analyze_window, tuning)
    np.set_printoptions(precision=3, suppress=True)
    print(f"precordial regression refitted on the tuning half: I {fit_i}, II {fit_ii}")
    print(f"constants in edge_runtime/signal_core/reversal.py:  I {reversal.PRECORDIAL_TO_I}, II {reversal.PRECORDIAL_TO_II}")
    analyzer = Analyzer()
    for title, half in (("tuning half", tuning), ("report half (not tuned on)", report)):
        _table(title, scores(run_check(analyzer, half)))
    return 0
