"""A training run on disk: build the data, cross-validate, keep the final model, write everything needed to
reproduce it (config with seed, data hash and code version; per-fold metrics; predictions; log)."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.contract import SEX_COLUMN
from training.metrics import LvhThresholds


@dataclass
class RunSpec:
    """What ``elvmass train`` was asked to do."""

    labels: Path
    out: Path
    model: object  # ModelConfig
    train: object  # TrainConfig
    sex_specific: bool = False
    n_folds: int = 5
    workers: int = 2
    thresholds: LvhThresholds = LvhThresholds()
    cache_dir: Path | None = Path("runs/cache")
    progress: bool = True
    verbose: bool = False
    closest_ecg: bool = False  # the paper's rule: one ECG per LV-mass measurement, the closest in time
    augment_copies: int = 0  # augmented copies of each raw record for training (training/augment.py)
    shards: Path | None = None  # train on `elvmass prepare` shards instead of analyzing `labels`
    checkpoints: bool = False  # checkpoint every epoch under out/checkpoints and resume from there
    dist: object = None  # training.distributed.DistContext under torchrun
    final_holdout: float = 0.0  # fraction of subjects the final model never sees (listed in config.json)


def cohort_info(labels: Path) -> dict:
    """``cohort.json`` next to a synthetic label table (empty dict for a site's own data)."""
    path = Path(labels).parent / "cohort.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def describe_training_data(labels: Path, cohort: dict, n_usable: int) -> str:
    """The manifest's ``training_data`` sentence (always says: not clinically validated)."""
    if cohort:
        return (f"synthetic cohort (elvmass synth {cohort.get('generator_version', '?')}), seed {cohort.get('seed')}, "
                f"n = {cohort.get('n')} ({n_usable} with a usable ECG window); not clinically validated")
    return f"label table {Path(labels).name}, n = {n_usable} usable records; not clinically validated"


def load_dataset(spec: RunSpec):
    from edge_runtime.preprocess import PreprocessConfig
    from training.dataset import build_dataset

    if spec.shards is not None:
        from training.prepare import load_shards

        return load_shards(spec.shards, include_full=spec.train.input_mode != "beat")
    if spec.dist is not None and not spec.dist.is_main:
        spec.dist.barrier()  # rank 0 analyzes and caches first; the others read its cache
    dataset = build_dataset(spec.labels, PreprocessConfig(), include_full=spec.train.input_mode != "beat",
                            cache_dir=spec.cache_dir, workers=spec.workers, progress=spec.progress,
                            closest_ecg=spec.closest_ecg)
    if spec.augment_copies and spec.train.input_mode == "beat" and spec.train.beats == "clean":
        from training.dataset import add_augmented_beats

        dataset = add_augmented_beats(dataset, spec.labels, copies=spec.augment_copies, seed=spec.train.seed,
                                      cache_dir=spec.cache_dir, workers=spec.workers, progress=spec.progress,
                                      closest_ecg=spec.closest_ecg)
    if spec.dist is not None and spec.dist.is_main:
        spec.dist.barrier()
    return dataset


def train_run(spec: RunSpec, dataset=None) -> dict:
    """Cross-validate one configuration and write the run directory; returns the metrics document."""
    from training.export import code_version, save_models
    from training.trainer import cross_validate

    out = Path(spec.out)
    writer = spec.dist is None or spec.dist.is_main  # under torchrun only rank 0 writes the run
    checkpoint_dir = out / "checkpoints" if (spec.checkpoints or spec.dist is not None) else None
    if checkpoint_dir is not None:
        _claim_checkpoints(checkpoint_dir, spec, write=writer)  # every rank checks, so all refuse together
    if writer:
        out.mkdir(parents=True, exist_ok=True)
    if spec.dist is not None:
        spec.dist.barrier()
    log_file = open(out / "train.log", "a" if checkpoint_dir is not None else "w") if writer else open(os.devnull, "w")

    def log(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()
        if spec.verbose:
            from tqdm import tqdm

            tqdm.write(line)

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    dataset = dataset if dataset is not None else load_dataset(spec)
    if spec.sex_specific and np.isnan(dataset.demographics[:, SEX_COLUMN]).any():
        keep = np.flatnonzero(~np.isnan(dataset.demographics[:, SEX_COLUMN]))
        log(f"sex-specific: {len(dataset) - keep.size} subjects with unknown sex left out")
        dataset = dataset.subset(keep)
    cohort = cohort_info(spec.labels)
    noise_floor = cohort.get("label_noise_floor_mae_g")
    log(f"data: {dataset.describe()}")
    for subject, reason in dataset.excluded:
        log(f"excluded {subject}: {reason}")
    data_s = time.perf_counter() - start_wall
    from training.folds import final_holdout

    held = final_holdout(dataset.lvm_g, spec.final_holdout, spec.train.seed, groups=dataset.subject_ids)  # whole patients
    result = cross_validate(dataset, spec.model, spec.train, n_folds=spec.n_folds, sex_specific=spec.sex_specific,
                            workers=spec.workers, thresholds=spec.thresholds, noise_floor_mae=noise_floor,
                            log=log, progress=spec.progress and writer, dist=spec.dist, checkpoint_dir=checkpoint_dir,
                            final_holdout=held)
    wall_s = time.perf_counter() - start_wall
    config = {
        "command": " ".join(sys.argv),
        "labels": str(Path(spec.labels).resolve()),
        "model": spec.model.to_dict(),
        "train": spec.train.to_dict(),
        "sex_specific": spec.sex_specific,
        "n_folds": spec.n_folds,
        "closest_ecg": spec.closest_ecg,
        "augmentation": {"copies": spec.augment_copies,
                         "n_augmented_beats": 0 if dataset.aug_beats is None else int(dataset.aug_beats.shape[0]),
                         "note": "raw-signal augmentation (training/augment.py) before the shared signal core; "
                                 "training beats only, never scored"},
        "preprocess": dataset.preprocess.to_dict(),
        "lvh_thresholds": spec.thresholds.to_dict(),
        "data_hash": dataset.data_hash,
        "code_version": code_version(),
        "training_data": describe_training_data(spec.labels, cohort, len(dataset)),
        "final_model": "retrained on all usable subjects (epoch chosen on a validation subset of them), "
                       "not a fold model; the CV metrics estimate this procedure"
                       + (f"; {len(held)} subjects held out of it (final_holdout_subjects)" if len(held) else ""),
        "final_holdout_subjects": [str(dataset.subject_ids[i]) for i in held],
        "n_usable": len(dataset),
        "n_excluded": len(dataset.excluded),
    }
    floor = cohort.get("floor", {})
    metrics = {
        "summary": result.summary,
        "folds": result.fold_metrics,
        "best_epochs": result.best_epochs,
        "timings": {"total_wall_s": wall_s, "data_s": data_s, "parent_cpu_s": time.process_time() - start_cpu,
                    "jobs": result.timings, "workers": spec.workers, "torch_threads": spec.train.threads,
                    "distributed": None if spec.dist is None else {"world_size": spec.dist.world_size,
                                                                   "backend": spec.dist.backend,
                                                                   "device": spec.dist.device}},
        "reference": {"label_noise_floor_mae_g": noise_floor, "oracle_mae_g": floor.get("oracle_exact_mae_g")},
    }
    if not writer:
        log_file.close()
        return metrics
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "predictions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        members = [] if result.member_predictions is None else list(result.member_predictions)
        writer.writerow(["subject_id", "fold", "lvm_g", "lvm_g_predicted"]
                        + [f"lvm_g_predicted_member{m}" for m in range(len(members))])
        for row, (sid, fold, y, p) in enumerate(zip(dataset.subject_ids, result.folds, dataset.lvm_g, result.prediction)):
            writer.writerow([sid, int(fold), f"{y:.2f}", f"{p:.2f}"] + [f"{m[row]:.2f}" for m in members])
    if result.final is not None:
        save_models(out / "model.pt", result.final.models, result.final.medians)
    log(f"done in {wall_s:.1f} s")
    log_file.close()
    return metrics


def _claim_checkpoints(folder: Path, spec: RunSpec, write: bool = True) -> None:
    """Checkpoints belong to one configuration: resuming another one from them would mix two runs."""
    identity = json.dumps({"labels": str(Path(spec.labels).resolve()), "shards": str(spec.shards),
                           "model": spec.model.to_dict(), "train": spec.train.to_dict(),
                           "sex_specific": spec.sex_specific, "n_folds": spec.n_folds}, sort_keys=True)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / "run.json"
    if stamp.exists() and stamp.read_text() != identity:
        raise ValueError(f"{folder} holds checkpoints of another configuration: use another --out or delete it")
    if write and not stamp.exists():
        # atomically: under torchrun the other ranks read this file while rank 0 writes it
        tmp = stamp.with_name(stamp.name + ".tmp")
        tmp.write_text(identity)
        tmp.replace(stamp)


def format_summary(summary: dict) -> str:
    """One line per metric: ``name  mean +- sd``."""
    lines = []
    for name, value in summary.items():
        if name in ("n", "n_lvh_scored"):
            continue
        lines.append(f"  {name:22s} {value['mean']:8.3f} +- {value['sd']:.3f}")
    return "\n".join(lines)
