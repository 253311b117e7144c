"""``elvmass synth-compare``: synthetic vs real ECG feature distributions (table + PNG)."""

from __future__ import annotations

import argparse

DEFAULT_REAL = "/work/shared/data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--synthetic", required=True, help="cohort folder written by 'elvmass synth'")
    parser.add_argument("--real", default=None,
                        help="real data folder with cinc2021/ and ludb/ (default: ../shared/data beside the repo)")
    parser.add_argument("--out", required=True, help="folder for comparison.txt, comparison.json, histograms.png")
    parser.add_argument("--max-synthetic", type=int, default=400,
                        help="measure at most this many synthetic records when the cohort has no ecg_features.csv")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from training.synth.compare import (compare_distributions, format_tables, lvh_directions, measure_real,
                                        plot_histograms, read_measures, real_records, write_measures)
    from training.synth.floor import measure_cohort, read_latents

    synthetic_dir = Path(args.synthetic)
    latents_path = synthetic_dir / "latents.csv"
    if not latents_path.exists():
        print(f"elvmass synth-compare: {latents_path} not found (run 'elvmass synth' first)")
        return 2
    real_dir = Path(args.real) if args.real else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not real_dir.exists() and Path(DEFAULT_REAL).exists():
        real_dir = Path(DEFAULT_REAL)
    records = real_records(real_dir)
    if not records:
        print(f"elvmass synth-compare: no cinc2021/ or ludb/ records under {real_dir}")
        return 2
    latents = read_latents(latents_path)
    features_path = synthetic_dir / "ecg_features.csv"
    if features_path.exists():
        synthetic = read_measures(features_path)
    else:
        latents = latents[: args.max_synthetic]
        synthetic = measure_cohort(synthetic_dir, latents, progress=not args.quiet)
    real = measure_real(records, progress=not args.quiet)
    table = compare_distributions(synthetic, real)
    directions = lvh_directions(synthetic, latents, real)
    text = format_tables(table, directions)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_measures(out / "real_features.csv", real)
    (out / "comparison.txt").write_text(text + "\n")
    (out / "comparison.json").write_text(json.dumps({"real_dir": str(real_dir), "synthetic_dir": str(synthetic_dir),
                                                     "table": table, "lvh_directions": directions}, indent=2))
    plot_histograms(synthetic, real, out / "histograms.png")
    print(text)
    print(f"\nwrote {out / 'comparison.txt'}, {out / 'comparison.json'}, {out / 'histograms.png'}")
    return 0
