"""``elvmass prepare``: a label table -> sharded, versioned training arrays, analyzed on Dask.

``elvmass train --shards DIR`` then trains on them (also under ``torchrun ... --distributed``).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", required=True, help="label table CSV (record,lvm_g,age_years,sex,height_cm,weight_kg)")
    parser.add_argument("--out", required=True, help="shard folder; re-running on it computes only the missing shards")
    parser.add_argument("--shard-size", type=int, default=256, help="label rows per shard / Dask task (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask cluster: worker processes, 1 thread each (default 2)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786) instead of a local "
                                            "cluster; --out must then be on a file system every worker writes")
    parser.add_argument("--quiet", action="store_true", help="no per-shard progress lines")


def run(args: argparse.Namespace) -> int:
    from edge_runtime.record import RecordError
    from training.prepare import prepare

    def progress(summary: dict, done: int, total: int) -> None:
        if not args.quiet:
            state = "already done" if summary["skipped"] else f"{summary['seconds']:.1f} s"
            print(f"shard {done}/{total} (#{summary['index']}): {summary['n_usable']} usable, "
                  f"{len(summary['excluded'])} excluded ({state})", flush=True)

    try:
        report = prepare(args.labels, args.out, shard_size=args.shard_size, scheduler=args.scheduler,
                         workers=args.workers, on_shard=progress)
    except (RecordError, ValueError, FileNotFoundError, OSError) as error:
        print(f"elvmass prepare: {error}")
        return 2
    n_rows = report.n_usable + report.n_excluded
    print(f"{len(report.shards)} shards in {report.out} ({report.n_computed} computed, "
          f"{len(report.shards) - report.n_computed} already done) on {report.workers} Dask workers in {report.wall_s:.1f} s: "
          f"{report.n_usable} usable, {report.n_excluded} excluded (reasons in {report.out / 'excluded.csv'})")
    if n_rows and report.n_computed:
        print(f"throughput {n_rows / report.wall_s:.2f} ECG/s")
    for failed in report.failed_shards:
        print(f"shard #{failed['index']} FAILED: {failed['error']} (re-run the same command to retry it)")
    return 0 if report.complete else 1
