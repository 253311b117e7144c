"""``elvmass metamorphic DIR``: does the estimate follow QRS voltage and ignore nuisance, on real ECGs?

Runs every 12-lead record under ``DIR`` (WFDB ``.hea``, XML) through the device chain, then again
with every lead x 1.25 and with baseline wander, mains and EMG added to the raw signal, and prints
the fraction of records whose estimate rose, the median |change| and the records that lost their
estimate (evaluation/metamorphic.py). No labels needed.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge_runtime.commands.run import add_model_arguments

    parser.add_argument("folder", help="folder of real ECG records (searched recursively)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the nuisance draws (default 0)")
    parser.add_argument("--limit", type=int, help="at most this many record files")
    parser.add_argument("--json", help="also write per-record estimates and the summary to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_runtime.commands.run import analyzer_from_args
    from evaluation.metamorphic import find_records, format_summary, run_metamorphic

    if not Path(args.folder).is_dir():
        print(f"elvmass metamorphic: {args.folder} is not a folder")
        return 2
    if not find_records(args.folder):
        print(f"elvmass metamorphic: no .hea/.xml records under {args.folder}")
        return 2
    made = analyzer_from_args(args, "metamorphic")
    if made is None:
        return 2
    _, analyzer = made
    result = run_metamorphic(analyzer, args.folder, seed=args.seed, limit=args.limit, progress=not args.quiet)
    summary = result.summary()
    print(f"model: {getattr(analyzer.model, 'model_id', None) or 'bundle'} ({analyzer.backend}, {analyzer.precision})")
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "records": result.records,
                                               "estimates": result.estimates, "skipped": result.skipped}, indent=2))
    return 0 if result.records else 2
