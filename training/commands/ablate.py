"""``elvmass ablate``: the paper's ablation tables and the baselines on the same folds (+ a JSON file)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", required=True, help="label table CSV")
    parser.add_argument("--out", required=True, help="folder for ablation.json, ablation.txt and ablate.log")
    parser.add_argument("--tables", default="1a,1b,1c,sex,beats,baselines",
                        help="comma-separated subset of 1a,1b,1c,sex,beats,baselines (default: all)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per eLVMass-Net variant")
    parser.add_argument("--cnn-epochs", type=int, default=40, help="epochs of the LVM-AI-like CNN baseline")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="parallel fold processes (1 torch thread each)")
    parser.add_argument("--parallel-variants", type=int, default=1,
                        help="configurations trained at once, each with --workers fold processes (results do not "
                             "depend on it)")
    parser.add_argument("--lvh-male", type=float, default=72.0)
    parser.add_argument("--lvh-female", type=float, default=55.0)
    parser.add_argument("--cache-dir", default="runs/cache")
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from edge_runtime.preprocess import PreprocessConfig
    from edge_runtime.record import RecordError
    from training.ablation import TABLES, format_tables, run_ablation, to_json
    from training.dataset import build_dataset
    from training.metrics import LvhThresholds
    from training.run import cohort_info

    tables = tuple(t.strip() for t in args.tables.split(",") if t.strip())
    unknown = [t for t in tables if t not in TABLES and t != "baselines"]
    if unknown:
        print(f"elvmass ablate: unknown table(s) {unknown}; choose from {sorted(TABLES) + ['baselines']}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = open(out / "ablate.log", "w")

    def log(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()

    finished: dict[str, dict] = {}

    def save_variant(name: str, run: dict) -> None:  # a killed ablation keeps the variants it finished
        finished[name] = run
        partial = out / "variants.json.tmp"
        partial.write_text(json.dumps(to_json(finished), indent=1) + "\n")
        partial.replace(out / "variants.json")

    start = time.perf_counter()
    try:
        needs_full = "1a" in tables or "baselines" in tables
        dataset = build_dataset(args.labels, PreprocessConfig(), include_full=needs_full,
                                cache_dir=args.cache_dir or None, workers=args.workers, progress=not args.quiet)
        floor = cohort_info(Path(args.labels)).get("label_noise_floor_mae_g")
        result = run_ablation(dataset, tables=tables, epochs=args.epochs, cnn_epochs=args.cnn_epochs, seed=args.seed,
                              n_folds=args.folds, workers=args.workers,
                              thresholds=LvhThresholds(args.lvh_male, args.lvh_female), noise_floor_mae=floor,
                              progress=not args.quiet, log=log, parallel_variants=args.parallel_variants,
                              on_variant=save_variant)
    except (RecordError, ValueError) as error:
        print(f"elvmass ablate: {error}")
        return 2
    result["wall_s"] = time.perf_counter() - start
    reference = cohort_info(Path(args.labels)).get("floor", {})
    result["oracle_mae_g"] = reference.get("oracle_exact_mae_g")
    text = format_tables(result)
    if result["oracle_mae_g"]:
        text += f"\nOracle MAE (structural model on true latents): {result['oracle_mae_g']:.2f} g"
    text += f"\nTotal wall time {result['wall_s']:.0f} s"
    print(text)
    (out / "ablation.txt").write_text(text + "\n")
    (out / "ablation.json").write_text(json.dumps(to_json(result), indent=2) + "\n")
    log_file.close()
    return 0
