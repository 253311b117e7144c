"""``elvmass quantize RUN_DIR --out BUNDLE``: INT8 ONNX / TFLite conversion into a verified model bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="an exported training run (export.json + model.onnx)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    parser.add_argument("--shared-data", type=Path, default=None,
                        help="../shared/data for real calibration records (default: next to the repo, if present)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="label table of the training cohort (default: the one the run was trained on)")
    parser.add_argument("--calibration-rows", type=int, default=256, help="training beats at LV-mass quantiles")
    parser.add_argument("--no-tflite", action="store_true", help="ONNX artifacts only")
    parser.add_argument("--qat", choices=("auto", "always", "never"), default="auto",
                        help="quantization-aware fine-tuning: when post-training INT8 misses a threshold (auto), "
                             "measured as well (always), or not at all (never)")
    parser.add_argument("--qat-epochs", type=int, default=4, help="epochs of quantization-aware fine-tuning")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")


def run(args: argparse.Namespace) -> int:
    from quantization.pipeline import quantize_run
    from quantization.qat import QatConfig
    from quantization.run_export import RunExportError, read_run_export

    shared = args.shared_data
    if shared is None:
        default = Path(__file__).resolve().parents[2].parent / "shared" / "data"
        shared = default if default.is_dir() else None
    try:
        result = quantize_run(read_run_export(args.run_dir), args.out, shared_data=shared,
                              n_calibration_rows=args.calibration_rows, labels=args.labels, tflite=False if args.no_tflite else None,
                              overwrite=args.overwrite, qat=args.qat, qat_config=QatConfig(epochs=args.qat_epochs))
    except (RunExportError, FileExistsError) as error:
        print(f"elvmass quantize: {error}", file=sys.stderr)
        return 2
    print(result.table)
    print(f"bundle: {result.bundle.path} ({len(result.bundle.models)} models, model id {result.bundle.model_id})")
    if not result.passed:
        print("elvmass quantize: parity or INT8 accuracy outside its limit (see FAIL rows)", file=sys.stderr)
        return 1
    return 0
