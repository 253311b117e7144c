"""``elvmass bench-baseline [--data DIR]``: does respiration-rate wander move the bundled model's estimate?

Adds 0.5 mV wander (on I, II, V1-V6; the other limb leads follow) at 0.15, 0.3 and 0.5 Hz (evaluation/wander_check.py) to the first 10 s of every
real 12-lead record in ../shared/data and prints, before (causal 0.5 Hz high-pass only) and after (zero-phase
0.67 Hz high-pass + PR-spline baseline, the default), the median and largest |delta g| and the records that
lose their estimate, with the CPU time per window.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evaluation.real_records import default_data_dir

    parser.add_argument("--data", type=Path, default=default_data_dir(), help="folder with cinc2021/ and ptbdb/")
    parser.add_argument("--amplitude-mv", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=Path, help="also score a labelled (synthetic) cohort before and after: "
                        "subjects with a number, MAE and coverage of the bundle's interval (evaluation/interval_check.py)")


def run(args: argparse.Namespace) -> int:
    from edge_runtime.preprocess import PreprocessConfig
    from edge_runtime.runtime.pipeline import Analyzer
    from evaluation.real_records import load_windows, record_paths
    from evaluation.wander_check import FREQUENCIES_HZ, run_check, summarize

    paths = record_paths(args.data)
    if not paths:
        print(f"no 12-lead records under {args.data}")
        return 1
    windows = load_windows(paths)
    analyzer = Analyzer()
    after_hz = PreprocessConfig().baseline_highpass_hz
    print(f"{len(windows)} real 12-lead records ({args.data}); wander {args.amplitude_mv} mV on I, II, V1-V6 at "
          f"{', '.join(f'{f:g}' for f in FREQUENCIES_HZ)} Hz, seed {args.seed}; bundled model "
          f"{analyzer.model.model_id if analyzer.model else '?'} ({analyzer.backend} {analyzer.precision})")
    print("| baseline handling | records with an estimate (clean) | median abs delta g | p90 | max | lost at "
          f"{' / '.join(f'{f:g}' for f in FREQUENCIES_HZ)} Hz | records losing the estimate | CPU ms per window |")
    print("|---|---|---|---|---|---|---|---|")
    clean: dict[str, dict[str, float]] = {}
    for label, hz in (("before: causal 0.5 Hz high-pass", None), (f"after: zero-phase {after_hz:g} Hz + PR spline", after_hz)):
        rows, seconds = run_check(analyzer, windows, hz, amplitude_mv=args.amplitude_mv, seed=args.seed)
        clean[label] = {r.record: r.clean_g for r in rows if r.clean_g is not None}
        s = summarize(rows)
        lost = s["records_losing_estimate"]
        print(f"| {label} | {s['records_with_estimate']} of {s['records']} | {s['median_abs_delta_g']:.2f} | "
              f"{s['p90_abs_delta_g']:.2f} | {s['max_abs_delta_g']:.2f} | "
              f"{' / '.join(str(n) for n in s['lost_per_frequency'].values())} | {len(lost)}"
              f"{' (' + ', '.join(lost) + ')' if lost else ''} | {seconds * 1000:.1f} |")
    before, after = clean.values()
    both = sorted(set(before) & set(after))
    if both:
        change = np.abs([after[name] - before[name] for name in both])
        print(f"\nclean windows, after vs before (the bundled model sees the current chain): median |change| "
              f"{np.median(change):.1f} g, max {np.max(change):.1f} g over {len(both)} records")
    if args.labels:
        import dataclasses

        from evaluation.interval_check import interval_check

        print(f"\nlabelled cohort {args.labels}:")
        for label, hz in (("before", None), ("after", after_hz)):
            analyzer.preprocess_config = dataclasses.replace(analyzer.preprocess_config, baseline_highpass_hz=hz)
            c = interval_check(analyzer, args.labels)
            print(f"  {label}: {c.n_with_number} of {c.n_records} with a number, MAE {c.mae_g:.2f} g, +-{c.current_halfwidth_g} g "
                  f"covers {100 * (c.current_coverage or 0):.1f} % (conformal 90 % half-width there {c.conformal_halfwidth_g:.1f} g)")
    return 0
