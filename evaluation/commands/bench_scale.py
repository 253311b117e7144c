"""``elvmass bench-scale``: preprocessing and training throughput for 1 and 2 workers, and a projection.

Preprocessing: ``elvmass prepare`` on a synthetic cohort with a local Dask cluster of 1, then 2 worker
processes (fresh shard folders; cluster start-up timed apart). Training: ``torchrun`` with 1, then 2 processes
(gloo on CPU, or NCCL when a GPU is present), the same folds and epochs. The projection scales the measured
per-core rates to 10^6 ECGs on a stated cluster, assuming the measured 1 -> 2 efficiency holds (a
projection, not a measurement: say so wherever it is quoted).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", help="label table to use (default: a fresh synthetic cohort of --n subjects)")
    parser.add_argument("--n", type=int, default=200, help="synthetic cohort size (default 200)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per fold (default 5)")
    parser.add_argument("--folds", type=int, default=2, help="CV folds (default 2)")
    parser.add_argument("--shard-size", type=int, default=25)
    parser.add_argument("--cluster-nodes", type=int, default=8, help="projection: nodes (default 8)")
    parser.add_argument("--cores-per-node", type=int, default=32, help="projection: cores per node (default 32)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.add_argument("--steps-only", action="store_true",
                        help="only the training-step throughput of the model (no data needed): CPU, and CUDA when present")


def _train_rate(nproc: int, shards: Path, out: Path, epochs: int, folds: int, n_usable: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               "-m", "elvmass", "train", "--shards", str(shards), "--out", str(out), "--epochs", str(epochs),
               "--folds", str(folds), "--quiet", "--distributed"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun {nproc}: {done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    train_s = metrics["timings"]["total_wall_s"] - metrics["timings"]["data_s"]
    # subject-epochs trained: each CV job fits on (folds-1)/folds of the subjects, the final model on all,
    # less the 10 % validation subset each time
    subject_epochs = epochs * 0.9 * n_usable * ((folds - 1) + 1)
    return {"processes": nproc, "device": metrics["timings"]["distributed"]["device"], "train_wall_s": train_s,
            "process_wall_s": time.perf_counter() - start, "subject_epochs_per_s": subject_epochs / train_s,
            "cv_mae_g": metrics["summary"]["mae_g"]["mean"]}


def train_step_rate(device: str, batch_size: int, steps: int = 30, threads: int = 1) -> dict:
    """Training steps per second of the default model (AdamW, L1 loss) on random inputs of the real shapes."""
    import torch

    from training.model import ModelConfig

    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(threads)
    model = ModelConfig().build().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    beats = torch.randn(batch_size, 12, 400, device=device)
    demographics = torch.randn(batch_size, 4, device=device)
    parameters = torch.randn(batch_size, 4, device=device)
    target = torch.randn(batch_size, device=device)

    def step() -> None:
        loss = torch.nn.functional.l1_loss(model(beats, demographics, parameters).squeeze(1), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):  # warm-up (CUDA kernels, allocator)
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU, {threads} thread(s)"
    return {"device": name, "batch": batch_size, "ms_per_step": seconds * 1000, "subjects_per_s": batch_size / seconds}


def _steps_only(args: argparse.Namespace) -> int:
    import torch

    rows = [train_step_rate("cpu", batch, threads=1) for batch in (64, 512)]
    if torch.cuda.is_available():
        rows += [train_step_rate("cuda", batch, steps=100) for batch in (64, 512, 4096)]
    print(f"training-step throughput (default model, AdamW + L1, random inputs of the real shapes; torch {torch.__version__})")
    for row in rows:
        print(f"  {row['device']:<28} batch {row['batch']:>5}: {row['ms_per_step']:8.2f} ms/step = "
              f"{row['subjects_per_s']:10.0f} subject-steps/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": rows}, indent=2) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.steps_only:
        return _steps_only(args)
    from training.prepare import prepare

    work = Path(tempfile.mkdtemp(prefix="elvmass-bench-scale-"))
    labels = Path(args.labels) if args.labels else None
    if labels is None:
        from training.synth.cohort import CohortConfig, generate_cohort, write_cohort_json

        config = CohortConfig(n=args.n, seed=101)
        rows = generate_cohort(work / "cohort", config, workers=2, progress=False)
        write_cohort_json(work / "cohort", config, rows, {})
        labels = work / "cohort" / "labels.csv"
    results: dict = {"machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}, "prepare": [], "train": []}
    for workers in (1, 2):
        report = prepare(labels, work / f"shards-{workers}", shard_size=args.shard_size, workers=workers)
        n_rows = report.n_usable + report.n_excluded
        busy_s = report.wall_s - report.startup_s
        results["prepare"].append({"workers": workers, "ecgs": n_rows, "startup_s": report.startup_s, "wall_s": busy_s,
                                   "ecg_per_s": n_rows / busy_s, "ecg_per_s_per_worker": n_rows / busy_s / workers})
    n_usable = report.n_usable
    for nproc in (1, 2):
        results["train"].append(_train_rate(nproc, work / "shards-2", work / f"train-{nproc}", args.epochs, args.folds,
                                            n_usable))
    prep, train = results["prepare"], results["train"]
    prep_speedup = prep[1]["ecg_per_s"] / prep[0]["ecg_per_s"]
    train_speedup = train[1]["subject_epochs_per_s"] / train[0]["subject_epochs_per_s"]
    cores = args.cluster_nodes * args.cores_per_node
    efficiency = prep_speedup / 2
    prepare_hours = 1e6 / (prep[0]["ecg_per_s"] * cores * efficiency) / 3600
    epoch_hours = 1e6 / (train[0]["subject_epochs_per_s"] * cores * train_speedup / 2) / 3600
    results["projection"] = {"ecgs": 1_000_000, "nodes": args.cluster_nodes, "cores_per_node": args.cores_per_node,
                             "prepare_hours": prepare_hours, "train_hours_per_epoch": epoch_hours,
                             "assumes": "per-core rates measured here, 1->2 parallel efficiency held at scale"}
    print(f"machine: {os.cpu_count()} CPUs, load {results['machine']['load_1min']:.1f} (1 min)")
    print("preprocessing (elvmass prepare, local Dask cluster):")
    for row in prep:
        print(f"  {row['workers']} worker(s): {row['ecgs']} ECGs in {row['wall_s']:.1f} s (+{row['startup_s']:.1f} s cluster "
              f"start) = {row['ecg_per_s']:.1f} ECG/s, {row['ecg_per_s_per_worker']:.1f} per core")
    print(f"  speed-up 1 -> 2 workers: {prep_speedup:.2f}x")
    print("training (torchrun, elvmass train --distributed):")
    for row in train:
        print(f"  {row['processes']} process(es) on {row['device']}: {row['subject_epochs_per_s']:.0f} subject-epochs/s "
              f"({row['train_wall_s']:.1f} s), CV MAE {row['cv_mae_g']:.2f} g")
    print(f"  speed-up 1 -> 2 processes: {train_speedup:.2f}x")
    print(f"projection, 10^6 ECGs on {args.cluster_nodes} nodes x {args.cores_per_node} cores: prepare "
          f"{prepare_hours:.2f} h, training {epoch_hours:.2f} h per epoch (CPU; per-core rates from this machine)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0
