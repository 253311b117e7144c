"""``elvmass synth-check DIR``: how hard is a cohort? Measured vs the published target bands.

``DIR`` holds a label table (``labels.csv``: LV mass, sex, age, height, weight, record). ECG
features come from ``DIR/ecg_features.csv`` when ``elvmass synth`` wrote one for the same
subjects, else every record is measured through the signal core. Works on a site's own cohort too.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", help="folder with labels.csv (e.g. written by 'elvmass synth'), or a label table")
    parser.add_argument("--remeasure", action="store_true",
                        help="measure every record through the signal core even if ecg_features.csv exists")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the SEs (default 200)")
    parser.add_argument("--json", help="also write the measured values, SEs and verdicts to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_cohort(path, *, remeasure: bool = False, progress: bool = True) -> tuple[list[dict], list[dict], str]:
    """Label rows, ECG measurements and where the measurements came from."""
    import math
    from pathlib import Path

    from edge_runtime.formats import read_record
    from edge_runtime.formats.labels import read_label_table
    from training.synth.compare import read_measures
    from training.synth.features import FEATURE_NAMES, measure_record

    path = Path(path)
    labels = path / "labels.csv" if path.is_dir() else path
    entries = read_label_table(labels)
    rows = [{"subject_id": e.subject_id, "lvm_g": e.lvm_g, "sex": e.patient.sex, "age_years": e.patient.age_years,
             "height_cm": e.patient.height_cm, "weight_kg": e.patient.weight_kg} for e in entries]
    cached = labels.parent / "ecg_features.csv"
    if cached.is_file() and not remeasure:
        by_id = {str(m["subject_id"]): m for m in read_measures(cached)}
        if all(r["subject_id"] in by_id for r in rows):
            return rows, [by_id[r["subject_id"]] for r in rows], f"{cached}"
    from tqdm import tqdm

    measures = []
    for entry in tqdm(entries, desc="measure", unit="record", disable=not progress):
        try:
            measures.append(measure_record(read_record(entry.record_path)))
        except (ValueError, RuntimeError) as error:  # a record the chain refuses counts as unmeasured
            measures.append({name: math.nan for name in FEATURE_NAMES} | {"error": str(error)})
    return rows, measures, "signal core (measured now)"


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge_runtime.record import RecordError
    from evaluation.cohort_check import band_verdicts, check_cohort, format_check

    if not Path(args.cohort).exists():
        print(f"elvmass synth-check: {args.cohort} not found")
        return 2
    try:
        rows, measures, source = load_cohort(args.cohort, remeasure=args.remeasure, progress=not args.quiet)
        missing = [r["subject_id"] for r in rows if None in (r["sex"], r["age_years"], r["height_cm"], r["weight_kg"])]
        if missing:
            print(f"elvmass synth-check: {len(missing)} subject(s) lack sex/age/height/weight (first: {missing[0]}); "
                  "the targets are within sex and need body size")
            return 2
        result = check_cohort(rows, measures, n_bootstrap=args.bootstrap)
    except (RecordError, ValueError) as error:
        print(f"elvmass synth-check: {error}")
        return 2
    verdicts = band_verdicts(result)
    print(f"ECG features: {source}")
    print(format_check(result, verdicts))
    latents = (Path(args.cohort) if Path(args.cohort).is_dir() else Path(args.cohort).parent) / "latents.csv"
    if latents.is_file():  # a synthetic cohort: how far any ECG model could get (training.synth.floor)
        from training.synth.floor import ecg_ceiling_cv_mae_g, ecg_ceiling_linear_cv_mae_g, read_latents

        ceiling_rows = read_latents(latents)
        result["ecg_ceiling_cv_mae_g"] = ecg_ceiling_cv_mae_g(ceiling_rows)
        result["ecg_ceiling_linear_cv_mae_g"] = ecg_ceiling_linear_cv_mae_g(ceiling_rows)
        print(f"ECG ceiling ({len(ceiling_rows)} subjects of latents.csv: what the ECG shows, noise-free, + demographics; "
              f"gradient-boosted trees, 5 folds by sorted LV mass): MAE {result['ecg_ceiling_cv_mae_g']:.2f} g; "
              f"a log-linear reader of the same: {result['ecg_ceiling_linear_cv_mae_g']:.2f} g")
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "verdicts": verdicts}, indent=2))
    return 0
