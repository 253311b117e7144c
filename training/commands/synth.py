"""``elvmass synth``: write a synthetic cohort (WFDB records + label table + latents + cohort.json)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=1459, help="number of subjects (default 1459, the paper's cohort)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (default 0)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--difficulty", default="paper", choices=("paper", "easy"),
                        help="paper (default): voltage tracks LV mass as weakly as in population studies; "
                             "easy: the pre-issue-19 generator (voltage is a strong cue)")
    parser.add_argument("--noise-level", type=float, default=1.0,
                        help="recording noise scale: 0 clean, 1 typical resting ECG (default), 3 poor")
    parser.add_argument("--mains-hz", type=float, default=50.0, choices=(50.0, 60.0), help="mains frequency")
    parser.add_argument("--label-noise-sd", type=float, default=None,
                        help="SD (g) of the CT label-noise term (default: the subject model's 8 g)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (files do not depend on it)")
    parser.add_argument("--chunk-size", type=int, default=64, help="subjects per chunk (files do not depend on it)")
    parser.add_argument("--no-floor", action="store_true",
                        help="skip the floor/baseline computation (writes cohort.json without it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time
    from pathlib import Path

    from training.synth.cohort import CohortConfig, generate_cohort, write_cohort_json
    from training.synth.presets import difficulty_models

    subjects, phenotype = difficulty_models(args.difficulty)
    if args.label_noise_sd is not None:
        if args.label_noise_sd < 0:
            print("elvmass synth: --label-noise-sd must be >= 0")
            return 2
        subjects = dataclasses.replace(subjects, label_noise_sd_g=args.label_noise_sd)
    config = CohortConfig(n=args.n, seed=args.seed, noise_level=args.noise_level, mains_hz=args.mains_hz,
                          subjects=subjects, phenotype=phenotype, difficulty=args.difficulty)
    out = Path(args.out)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    try:
        rows = generate_cohort(out, config, chunk_size=args.chunk_size, workers=args.workers,
                               progress=not args.quiet)
    except ValueError as error:
        print(f"elvmass synth: {error}")
        return 2
    generate_s, generate_cpu_s = time.perf_counter() - start, _cpu_seconds() - cpu_start
    extra: dict = {"timing": {"generate_s": round(generate_s, 2), "generate_cpu_s": round(generate_cpu_s, 2),
                              "workers": args.workers}}
    from training.synth.floor import compute_floor, floor_from_rows, format_floor

    if args.no_floor:
        extra["floor"] = floor_from_rows(rows) | {"ecg_baselines": "skipped (--no-floor)"}
    else:
        floor_start = time.perf_counter()
        extra["floor"] = compute_floor(out, rows, progress=not args.quiet)
        extra["timing"]["floor_s"] = round(time.perf_counter() - floor_start, 2)
    document = write_cohort_json(out, config, rows, extra)
    summary = document["summary"]
    print(f"wrote {config.n} subjects ({args.difficulty} difficulty) to {out} in {generate_s:.1f} s wall, {generate_cpu_s:.1f} s CPU "
          f"({args.workers} worker(s))")
    print(f"LV mass {summary['lvm_g_mean']:.1f} +- {summary['lvm_g_sd']:.1f} g "
          f"(men {summary['lvm_g_mean_male']:.1f}, women {summary['lvm_g_mean_female']:.1f}); "
          f"LVH {100 * summary['lvh_prevalence']:.1f} % (men {100 * summary['lvh_prevalence_male']:.1f} %, "
          f"women {100 * summary['lvh_prevalence_female']:.1f} %)")
    print(f"label-noise SD {document['label_noise_sd_g']:.1f} g -> floor MAE "
          f"{document['label_noise_floor_mae_g']:.2f} g (analytic)")
    if "floor_s" in extra["timing"]:
        print(f"measured {config.n} records through the signal core in {extra['timing']['floor_s']:.1f} s wall")
    print(format_floor(extra["floor"]))
    return 0


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished worker processes."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
