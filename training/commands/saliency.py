"""``elvmass saliency RUN_DIR``: gradient saliency per ECG segment (PR/QRS/ST-T/TP), limb vs precordial, by LV-mass tertile."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a directory written by 'elvmass train' (beat input mode)")
    parser.add_argument("--labels", default=None, help="label table to explain (default: the run's own)")
    parser.add_argument("--out", default=None, help="output folder (default: RUN_DIR/saliency)")
    parser.add_argument("--png", type=int, default=3, help="PNG overlays to draw, one per LV-mass tertile (0 = none)")
    parser.add_argument("--cache-dir", default="runs/cache")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from edge_runtime.contract import SEX_COLUMN
    from edge_runtime.preprocess import PreprocessConfig
    from edge_runtime.record import RecordError
    from training.dataset import build_dataset
    from training.export import load_models
    from training.saliency import format_table, gradient_saliency, group_share, plot_overlay, segment_importance, tertile_table
    from training.trainer import impute

    run_dir = Path(args.run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
        models, medians = load_models(run_dir / "model.pt")
    except FileNotFoundError as error:
        print(f"elvmass saliency: {error.filename} not found (train the run first)")
        return 2
    if config["train"]["input_mode"] != "beat":
        print("elvmass saliency: only 'beat' input-mode runs are explained (segments are beat-relative)")
        return 2
    out = Path(args.out) if args.out else run_dir / "saliency"
    out.mkdir(parents=True, exist_ok=True)
    try:
        dataset = build_dataset(args.labels or config["labels"], PreprocessConfig.from_dict(config["preprocess"]),
                                cache_dir=args.cache_dir or None, progress=True)
        demo, params = impute(dataset.demographics, dataset.parameters, medians)
    except (RecordError, ValueError) as error:
        print(f"elvmass saliency: {error}")
        return 2
    saliency = np.zeros_like(dataset.beats)
    routes = {"combined": np.ones(len(dataset), bool)} if "combined" in models else {
        "male": demo[:, SEX_COLUMN] == 1.0, "female": demo[:, SEX_COLUMN] == 0.0}
    for name, rows in routes.items():
        if rows.any():
            saliency[rows] = gradient_saliency(models[name], dataset.beats[rows], demo[rows], params[rows])
    shares = segment_importance(saliency, dataset)
    table, groups = tertile_table(shares, dataset.lvm_g), group_share(saliency)
    text = format_table(table, groups)
    print(f"saliency of {len(dataset)} subjects (final model of {run_dir}; explained on "
          f"{'its training data' if not args.labels else args.labels}):")
    print(text)
    (out / "saliency.txt").write_text(text + "\n")
    (out / "saliency.json").write_text(json.dumps({"tertiles": table, "lead_groups": groups,
                                                   "n": len(dataset)}, indent=2) + "\n")
    if args.png > 0:
        edges = np.quantile(dataset.lvm_g, np.linspace(0, 1, args.png + 1))
        for k in range(args.png):  # the subject closest to the middle of each LV-mass band
            target = (edges[k] + edges[k + 1]) / 2.0
            i = int(np.argmin(np.abs(dataset.lvm_g - target)))
            path = out / f"saliency_{k + 1}_{dataset.subject_ids[i]}.png"
            plot_overlay(dataset.beats[i], saliency[i], path,
                         f"{dataset.subject_ids[i]}: LVM {dataset.lvm_g[i]:.0f} g; red = |d LVM / d input|",
                         (int(dataset.qrs_onset[i]), int(dataset.qrs_offset[i])), dataset.preprocess.fs)
            print(f"wrote {path}")
    return 0
