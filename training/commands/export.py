"""``elvmass export RUN_DIR``: ONNX model file(s) + export.json with a torch/onnxruntime parity check."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a directory written by 'elvmass train'")
    parser.add_argument("--out", default=None, help="where to write (default: the run directory)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from training.export import export_run

    run_dir = Path(args.run_dir)
    for name in ("config.json", "metrics.json", "model.pt"):
        if not (run_dir / name).exists():
            print(f"elvmass export: {run_dir / name} not found (train the run first, to completion)")
            return 2
    try:
        spec = export_run(run_dir, Path(args.out) if args.out else None)
    except ValueError as error:
        print(f"elvmass export: {error}")
        return 2
    for name, report in spec.parity.items():
        print(f"{name}: max |torch - onnxruntime| = {report['max_abs_diff_g_real']:.2e} g on {report['n_real_beats']} "
              f"real beats, {report['max_abs_diff_g_synthetic']:.2e} g on {report['n_synthetic_beats']} synthetic beats")
    print(f"wrote {', '.join(spec.model_files.values())} and export.json to {args.out or run_dir}")
    return 0
