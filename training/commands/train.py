"""``elvmass train``: cross-validate one eLVMass-Net configuration on a label table and keep the final model."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", help="label table CSV (record,lvm_g,age_years,sex,height_cm,weight_kg)")
    source.add_argument("--shards", help="train on the shard folder written by 'elvmass prepare'")
    parser.add_argument("--out", required=True, help="run directory (config, metrics, predictions, model.pt, train.log)")
    parser.add_argument("--input-mode", choices=("beat", "full", "crop"), default="beat",
                        help="middle single beat (default), full 10 s, or random synchronized crops")
    parser.add_argument("--grouping", choices=("electrical", "none", "anatomical"), default="electrical",
                        help="TCN encoder per lead group (default: limb | precordial)")
    parser.add_argument("--channels", type=int, default=16, help="TCN channels per encoder (default 16)")
    parser.add_argument("--features", choices=("ecg", "ecg+params", "ecg+demo", "ecg+demo+params"),
                        default="ecg+demo+params", help="model inputs besides the ECG")
    parser.add_argument("--beats", choices=("clean", "middle"), default="clean",
                        help="beat mode: train on a random clean beat per subject and epoch and score the median over "
                             "the clean beats, as the device does (default), or the middle beat only (the paper)")
    parser.add_argument("--sex-specific", action="store_true", help="separate male and female models")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW (decoupled) weight decay (default 1e-4)")
    parser.add_argument("--ema-decay", type=float, default=0.0,
                        help="keep an exponential moving average of the weights per step (e.g. 0.99); it is what "
                             "is validated and kept (default 0: off)")
    parser.add_argument("--monotone-weight", type=float, default=0.0,
                        help="weight of the voltage-monotonicity penalty (training/monotone.py): raising a training "
                             "beat's voltage must raise its estimate by at least half an ideal reader's response "
                             "(default 0: off)")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="independently seeded networks per model, trained on the same (fold's) training data "
                             "and averaged (default 1)")
    parser.add_argument("--workers", type=int, default=2,
                        help="processes training folds in parallel, one torch thread each (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1; see docs/training.md)")
    parser.add_argument("--lvh-male", type=float, default=72.0, help="LVH threshold, men, g/m2 (default 72)")
    parser.add_argument("--lvh-female", type=float, default=55.0, help="LVH threshold, women, g/m2 (default 55)")
    parser.add_argument("--augment-copies", type=int, default=2,
                        help="augmented copies of each raw record (wander, mains, EMG, gain, lead placement) run "
                             "through the signal core and added to the training beats (beat mode, clean beats; "
                             "default 2, 0 = off)")
    parser.add_argument("--closest-ecg", action="store_true",
                        help="the paper's rule: one ECG per LV-mass measurement (subject_id + lvm_time), the closest "
                             "in time (needs subject_id, ecg_time, lvm_time columns)")
    parser.add_argument("--cache-dir", default="runs/cache", help="where analyzed records are cached ('' = off)")
    parser.add_argument("--final-holdout", type=float, default=0.1,
                        help="fraction of subjects the final model never sees (every k-th by LVM; the CV folds still "
                             "use them): the rows 'elvmass quantize' compares INT8 with fp32 on (default 0.1; 0 = none)")
    parser.add_argument("--verbose", action="store_true", help="print every epoch's log line (always in train.log)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel training under torchrun (gloo on CPU, NCCL on GPU); checkpoints per epoch")
    parser.add_argument("--checkpoints", action="store_true",
                        help="checkpoint every epoch under OUT/checkpoints and resume from there when re-run")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge_runtime.record import RecordError
    from training.metrics import LvhThresholds
    from training.model import ModelConfig
    from training.run import RunSpec, format_summary, train_run
    from training.trainer import TrainConfig

    dist = None
    try:
        labels = Path(args.labels) if args.labels else None
        if args.shards:
            import json

            labels = Path(json.loads((Path(args.shards) / "manifest.json").read_text())["labels"])
        if args.distributed:
            from training.distributed import init_distributed

            dist = init_distributed()
        spec = RunSpec(
            labels=labels, out=Path(args.out), shards=Path(args.shards) if args.shards else None,
            checkpoints=args.checkpoints, dist=dist,
            model=ModelConfig(grouping=args.grouping, features=args.features, channels=args.channels),
            train=TrainConfig(input_mode=args.input_mode, beats=args.beats, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              ensemble=args.ensemble, ema_decay=args.ema_decay,
                              weight_decay=args.weight_decay, monotone_weight=args.monotone_weight,
                              seed=args.seed, threads=args.threads),
            sex_specific=args.sex_specific, n_folds=args.folds, workers=args.workers,
            thresholds=LvhThresholds(args.lvh_male, args.lvh_female),
            cache_dir=Path(args.cache_dir) if args.cache_dir else None, progress=not args.quiet, verbose=args.verbose,
            closest_ecg=args.closest_ecg, augment_copies=max(0, args.augment_copies),
            final_holdout=args.final_holdout,
        )
        metrics = train_run(spec)
    except (RecordError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"elvmass train: {error}")
        return 2
    finally:
        if dist is not None:
            from training.distributed import shutdown

            shutdown()
    if dist is not None and not dist.is_main:
        return 0
    timing = metrics["timings"]
    print(f"{args.folds}-fold CV ({args.input_mode}, {args.grouping}, {args.features}"
          f"{', sex-specific' if args.sex_specific else ''}), mean +- SD over folds:")
    print(format_summary(metrics["summary"]))
    reference = metrics["reference"]
    if reference.get("oracle_mae_g"):
        print(f"  oracle MAE {reference['oracle_mae_g']:.2f} g; label-noise floor {reference['label_noise_floor_mae_g']:.2f} g")
    where = (f"{dist.world_size} {dist.backend} processes on {dist.device}" if dist is not None
             else f"{timing['workers']} workers x {timing['torch_threads']} thread")
    print(f"wall {timing['total_wall_s']:.1f} s ({where}); "
          f"worker CPU {sum(j['cpu_s'] for j in timing['jobs']):.1f} s; run written to {args.out}")
    return 0
