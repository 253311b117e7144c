"""Label table -> sharded, versioned training arrays, analyzed in parallel on Dask.

The same per-record chain as :func:`training.dataset.build_dataset` (``analyze_entry``: read, then the one
shared preprocessing), cut into shards of ``shard_size`` label rows. Each shard is a Dask task on a local
cluster (default) or on any Dask scheduler: it hashes its records, skips itself when a shard file with that
key already exists (restartable: finished shards are never recomputed), else analyzes and writes
``shard-NNNNN-KEY.npz`` atomically. Records that fail are kept, with their reason, in the shard and in
``excluded.csv``; a shard whose task crashed is reported and the manifest says the set is incomplete.

The shard key covers the label rows and the bytes of each record's files, the preprocessing settings, the
dataset version and the signal core's source hash (as the single-process cache key does), so a code or data
change makes new shards instead of reusing stale ones. On a cluster, ``out`` must be a folder every worker
can write (a shared file system): the workers write the shards, the client writes the manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_runtime.formats.labels import LabelEntry, read_label_table
from edge_runtime.preprocess import PreprocessConfig
from training.dataset import (DATASET_VERSION, EcgDataset, _analyze_chunk, _assemble, _load_cache, _save_cache,
                              hash_record_files, signal_core_version)

MANIFEST = "manifest.json"
SHARDS_VERSION = 1  # bump when the manifest changes meaning


def shard_key(entries: list[LabelEntry], config: PreprocessConfig, core_version: str) -> tuple[str, str]:
    """``(key, data_hash)`` of one shard: the label rows, their record files, the settings and the code."""
    rows = hashlib.sha256()
    for entry in entries:  # the label values of these rows (the whole table's bytes would tie every shard to all)
        rows.update(json.dumps([entry.subject_id, entry.record_path.name, entry.lvm_g,
                                entry.patient.age_years, entry.patient.sex, entry.patient.height_cm,
                                entry.patient.weight_kg]).encode())
    data_hash = hashlib.sha256(rows.digest() + bytes.fromhex(hash_record_files(entries))).hexdigest()
    key = hashlib.sha256(json.dumps([DATASET_VERSION, data_hash, config.to_dict(), core_version]).encode()).hexdigest()
    return key, data_hash


def prepare_shard(index: int, entries: list[LabelEntry], out: str, config_dict: dict,
                  core_version: str) -> dict:
    """One Dask task: analyze a shard of label rows (or find it done) and write its arrays.

    Returns a summary: ``index``, ``file``, ``key``, ``n_usable``, ``excluded`` (subject, reason), ``skipped``
    (True when the shard file already existed), ``seconds``.
    """
    start = time.perf_counter()
    config = PreprocessConfig.from_dict(config_dict)
    key, data_hash = shard_key(entries, config, core_version)
    path = Path(out) / f"shard-{index:05d}-{key[:16]}.npz"
    if path.exists():
        dataset = _load_cache(path, config, data_hash, include_full=False)
        skipped = True
    else:
        results = _analyze_chunk((entries, config_dict, True))
        dataset = _assemble(entries, results, config, data_hash, include_full=True)
        _save_cache(path, dataset)  # writes a temporary file, then renames: a killed task leaves no half shard
        skipped = False
    return {"index": index, "file": path.name, "key": key, "data_hash": data_hash, "n_rows": len(entries),
            "n_usable": len(dataset), "excluded": [list(x) for x in dataset.excluded], "skipped": skipped,
            "seconds": time.perf_counter() - start}


@dataclass
class PrepareReport:
    """What :func:`prepare` did."""

    out: Path
    shards: list[dict]
    failed_shards: list[dict] = field(default_factory=list)  # {"index", "error"}
    wall_s: float = 0.0  # whole call, cluster start included
    workers: int = 0
    startup_s: float = 0.0  # starting the local cluster / connecting to the scheduler

    @property
    def complete(self) -> bool:
        return not self.failed_shards

    @property
    def n_usable(self) -> int:
        return sum(s["n_usable"] for s in self.shards)

    @property
    def n_excluded(self) -> int:
        return sum(len(s["excluded"]) for s in self.shards)

    @property
    def n_computed(self) -> int:
        return sum(not s["skipped"] for s in self.shards)


def prepare(labels_path: str | Path, out: str | Path, config: PreprocessConfig = PreprocessConfig(), *,
            shard_size: int = 256, scheduler: str | None = None, workers: int = 2,
            on_shard: Callable[[dict, int, int], None] | None = None) -> PrepareReport:
    """Analyze every record of a label table into shards under ``out`` on Dask.

    Parameters
    ----------
    labels_path : str or Path
        The label table CSV (interface 2; ``docs/formats.md``).
    out : str or Path
        The shard folder (created). Re-running on it recomputes only the shards that are missing.
    config : PreprocessConfig
        The shared preprocessing settings.
    shard_size : int
        Label rows per shard (one Dask task each).
    scheduler : str, optional
        A Dask scheduler address (``tcp://host:8786``); ``None`` starts a local cluster of ``workers`` processes
        with one thread each.
    workers : int
        Local cluster size (ignored with ``scheduler``).
    on_shard : callable, optional
        Called as ``on_shard(summary, done, total)`` when each shard finishes (progress).

    Returns
    -------
    PrepareReport
    """
    from distributed import Client, LocalCluster, as_completed  # lazy: heavy, training extra

    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    labels_path, out = Path(labels_path), Path(out)
    entries = read_label_table(labels_path)
    out.mkdir(parents=True, exist_ok=True)
    chunks = [entries[i:i + shard_size] for i in range(0, len(entries), shard_size)]
    core_version = signal_core_version()
    start = time.perf_counter()
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            n_workers = len(client.scheduler_info()["workers"])
            startup_s = time.perf_counter() - start
            futures = {client.submit(prepare_shard, i, chunk, str(out.resolve()),
                                     config.to_dict(), core_version, key=f"elvmass-shard-{i}-{time.time_ns()}"): i
                       for i, chunk in enumerate(chunks)}
            shards, failed = [], []
            for done, future in enumerate(as_completed(futures), start=1):
                try:
                    summary = future.result()
                except Exception as error:  # a crashed shard is reported; the others are kept
                    failed.append({"index": futures[future], "error": f"{type(error).__name__}: {error}"})
                    continue
                shards.append(summary)
                if on_shard is not None:
                    on_shard(summary, done, len(chunks))
    finally:
        if cluster is not None:
            cluster.close()
    shards.sort(key=lambda s: s["index"])
    report = PrepareReport(out, shards, sorted(failed, key=lambda f: f["index"]), time.perf_counter() - start, n_workers,
                           startup_s)
    _write_manifest(report, labels_path, config, core_version, shard_size, len(entries))
    return report


def _write_manifest(report: PrepareReport, labels_path: Path, config: PreprocessConfig, core_version: str,
                    shard_size: int, n_rows: int) -> None:
    manifest = {
        "version": SHARDS_VERSION, "dataset_version": DATASET_VERSION, "labels": str(labels_path.resolve()),
        "n_rows": n_rows, "shard_size": shard_size, "preprocess": config.to_dict(), "signal_core": core_version,
        "complete": report.complete, "failed_shards": report.failed_shards,
        "shards": [{k: s[k] for k in ("index", "file", "key", "data_hash", "n_rows", "n_usable")} for s in report.shards],
    }
    tmp = report.out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(report.out / MANIFEST)
    with open(report.out / "excluded.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject_id", "reason"])
        for shard in report.shards:
            writer.writerows(shard["excluded"])


def load_shards(folder: str | Path, include_full: bool = False) -> EcgDataset:
    """The training arrays of a complete shard folder, in label-table order (equal to ``build_dataset``'s).

    Raises
    ------
    ValueError
        When the folder has no manifest, the manifest is incomplete or of another version, or the shards were
        made by another signal core (re-run ``elvmass prepare``).
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"{folder}: no {MANIFEST} (run 'elvmass prepare' first)") from None
    if manifest.get("version") != SHARDS_VERSION or manifest.get("dataset_version") != DATASET_VERSION:
        raise ValueError(f"{folder}: shards of another version ({manifest.get('version')}/"
                         f"{manifest.get('dataset_version')}); re-run 'elvmass prepare'")
    if not manifest["complete"]:
        raise ValueError(f"{folder}: incomplete ({len(manifest['failed_shards'])} shards failed); re-run 'elvmass prepare'")
    if manifest["signal_core"] != signal_core_version():
        raise ValueError(f"{folder}: made by another version of the signal core; re-run 'elvmass prepare'")
    config = PreprocessConfig.from_dict(manifest["preprocess"])
    parts = [_load_cache(folder / s["file"], config, s["data_hash"], include_full) for s in manifest["shards"]]
    if not parts:
        raise ValueError(f"{folder}: no shards")
    return concatenate(parts, data_hash=hashlib.sha256("".join(s["key"] for s in manifest["shards"]).encode()).hexdigest())


def concatenate(parts: list[EcgDataset], data_hash: str) -> EcgDataset:
    """One dataset from shards in order (the clean-beat owners renumbered)."""
    offsets = np.cumsum([0] + [len(p) for p in parts[:-1]])
    full = None if any(p.full is None for p in parts) else np.concatenate([p.full for p in parts])
    return EcgDataset(
        subject_ids=np.concatenate([p.subject_ids for p in parts]), lvm_g=np.concatenate([p.lvm_g for p in parts]),
        demographics=np.concatenate([p.demographics for p in parts]), parameters=np.concatenate([p.parameters for p in parts]),
        extra_parameters=np.concatenate([p.extra_parameters for p in parts]), beats=np.concatenate([p.beats for p in parts]),
        qrs_onset=np.concatenate([p.qrs_onset for p in parts]), qrs_offset=np.concatenate([p.qrs_offset for p in parts]),
        full=full, preprocess=parts[0].preprocess, data_hash=data_hash,
        excluded=[x for p in parts for x in p.excluded],
        all_beats=np.concatenate([p.all_beats for p in parts]),
        beat_owner=np.concatenate([p.beat_owner + offset for p, offset in zip(parts, offsets)]),
    )
