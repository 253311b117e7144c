"""External validation of a trained run on another data set, before/after linear recalibration.

Not yet registered in ``elvmass/cli.py`` (owned by the coordinator); run it as
``python -m training.commands.external RUN_DIR --out DIR [--labels LABELS | --shifted-n N]``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a directory written by 'elvmass train'")
    parser.add_argument("--out", required=True, help="output folder (external.json; the shifted cohort if generated)")
    parser.add_argument("--labels", default=None, help="the other site's label table (default: generate a shifted synthetic cohort)")
    parser.add_argument("--shifted-n", type=int, default=400, help="size of the generated shifted cohort")
    parser.add_argument("--shifted-seed", type=int, default=11)
    parser.add_argument("--recal-n", type=int, default=50, help="labelled subjects used to fit the recalibration")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", default="runs/cache")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_runtime.preprocess import PreprocessConfig
    from edge_runtime.record import RecordError
    from training.dataset import build_dataset
    from training.export import load_models
    from training.external import external_validation, write_shifted_cohort
    from training.metrics import LvhThresholds
    from training.trainer import TrainedModel

    run_dir, out = Path(args.run_dir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((run_dir / "config.json").read_text())
    models, medians = load_models(run_dir / "model.pt")
    labels, shift = args.labels, None
    if labels is None:
        cohort_dir = out / "shifted_cohort"
        if not (cohort_dir / "labels.csv").exists():
            shift = write_shifted_cohort(cohort_dir, args.shifted_n, args.shifted_seed, args.workers)
        labels = cohort_dir / "labels.csv"
    try:
        dataset = build_dataset(labels, PreprocessConfig.from_dict(config["preprocess"]), cache_dir=args.cache_dir or None,
                                workers=args.workers)
        thresholds = LvhThresholds(**config["lvh_thresholds"])
        result = external_validation(TrainedModel(models, medians, {}, {}), dataset, n_recalibration=args.recal_n,
                                     thresholds=thresholds)
    except (RecordError, ValueError) as error:
        print(f"external validation: {error}")
        return 2
    result.update({"labels": str(labels), "run": str(run_dir), "shifted_cohort": shift})
    (out / "external.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"external set {labels}: {len(dataset)} usable ({result['excluded']} excluded); recalibration on "
          f"{result['n_recalibration']}, scored on {result['n_evaluated']}: lvm = {result['intercept_g']:.1f} + "
          f"{result['slope']:.3f} x model")
    keys = ("mae_g", "mape_pct", "c_statistic", "accuracy", "sensitivity", "specificity", "ppv", "f1")
    print(f"{'':8s} " + " ".join(f"{k:>11s}" for k in keys))
    for name in ("before", "after"):
        print(f"{name:8s} " + " ".join(f"{result[name][k]:11.3f}" for k in keys))
    return 0


if __name__ == "__main__":
    import sys

    parser = argparse.ArgumentParser(prog="python -m training.commands.external", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
