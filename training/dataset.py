"""Label table -> ECG files -> the signal core's analysis -> arrays for training, cached on disk.

Every beat, R peak, QRS boundary and ECG parameter comes from
:func:`edge_runtime.preprocess.analyze_record` (the device runs the same chain); nothing here
filters or delineates. Records the chain refuses (unreadable, quality flags that exclude the
window, no middle beat) are left out with their reason, as the device would give no estimate.
The arrays are cached in an ``.npz`` keyed by the data hash (label table + every record file),
the preprocessing settings and the signal core's source hash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.contract import DEMOGRAPHIC_FEATURES, MODEL_PARAMETERS, SEX_COLUMN, demographics_row, parameters_row
from edge_runtime.formats import read_record
from edge_runtime.formats.labels import LabelEntry, read_label_table
from edge_runtime.preprocess import PreprocessConfig, analyze_record
from edge_runtime.runtime.estimate import clean_beats

DATASET_VERSION = 3  # bump when the cached arrays change meaning (3: table_rows)
EXTRA_PARAMETERS = ("pr_ms", "qt_ms", "heart_rate_bpm")
FULL_SECONDS = 10.0  # the 'full' input is the conditioned 10 s window, zero-padded/cut to this length


@dataclass
class EcgDataset:
    """Arrays of the usable subjects of a label table (row i = one subject).

    ``demographics`` and ``parameters`` are raw rows of :mod:`edge_runtime.contract`
    (``DEMOGRAPHIC_FEATURES``, ``MODEL_PARAMETERS``), NaN where unknown (imputation happens per
    training fold). ``qrs_onset``/``qrs_offset`` are sample indices inside the middle beat window.
    """

    subject_ids: np.ndarray
    lvm_g: np.ndarray
    demographics: np.ndarray
    parameters: np.ndarray
    extra_parameters: np.ndarray  # [pr_ms, qt_ms, heart_rate_bpm]
    beats: np.ndarray  # (n, 12, L) float32 mV, the middle beat
    qrs_onset: np.ndarray
    qrs_offset: np.ndarray
    full: np.ndarray | None  # (n, 12, FULL_SECONDS * fs) float32 conditioned, when requested
    preprocess: PreprocessConfig
    data_hash: str
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (subject_id, reason)
    # Every clean beat of every subject (the runtime's clean_beats: shape matches the window's
    # median beat), grouped by subject in order; beat_owner[j] = subject row of clean_beats[j].
    all_beats: np.ndarray | None = None
    beat_owner: np.ndarray | None = None
    # Clean beats of augmented copies of each subject's RAW record (training/augment.py, then the
    # same signal core), grouped by subject like all_beats; used for training only, never scored.
    aug_beats: np.ndarray | None = None
    aug_owner: np.ndarray | None = None
    table_rows: np.ndarray | None = None  # row of each subject in the label table's entries (0-based)

    def __len__(self) -> int:
        return int(self.lvm_g.size)

    def subset(self, index: np.ndarray) -> "EcgDataset":
        """The rows ``index`` (a copy of the per-subject arrays)."""
        index = np.asarray(index)
        all_beats, owner = _subset_grouped(self.all_beats, self.beat_owner, index, len(self))
        aug_beats, aug_owner = _subset_grouped(self.aug_beats, self.aug_owner, index, len(self))
        return EcgDataset(
            self.subject_ids[index], self.lvm_g[index], self.demographics[index], self.parameters[index],
            self.extra_parameters[index], self.beats[index], self.qrs_onset[index], self.qrs_offset[index],
            None if self.full is None else self.full[index], self.preprocess, self.data_hash, list(self.excluded),
            all_beats, owner, aug_beats, aug_owner, None if self.table_rows is None else self.table_rows[index],
        )

    def training_beat_pool(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beats a subject may be trained on: its clean beats plus its augmented copies' clean beats.

        Returns ``(beats, starts, counts)``, beats grouped by subject (row ``i`` owns
        ``beats[starts[i]:starts[i] + counts[i]]``).
        """
        if self.all_beats is None:
            raise ValueError("the dataset has no clean-beat arrays (rebuild its cache)")
        beats, owner = self.all_beats, self.beat_owner
        if self.aug_beats is not None and self.aug_beats.shape[0]:
            beats, owner = np.concatenate([beats, self.aug_beats]), np.concatenate([owner, self.aug_owner])
            order = np.argsort(owner, kind="stable")
            beats, owner = beats[order], owner[order]
        counts = np.bincount(owner, minlength=len(self))
        if np.any(counts == 0):
            raise ValueError("a subject has no clean beat")
        return beats, np.concatenate([[0], np.cumsum(counts)[:-1]]), counts

    def describe(self) -> str:
        n_male = int(np.sum(self.demographics[:, SEX_COLUMN] == 1))
        return (f"{len(self)} usable subjects ({n_male} male), {len(self.excluded)} excluded, "
                f"LVM {self.lvm_g.mean():.1f} +- {self.lvm_g.std():.1f} g, data hash {self.data_hash[:12]}")


def _subset_grouped(beats: np.ndarray | None, owner: np.ndarray | None, index: np.ndarray,
                    n_rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Beats grouped by owner row, restricted to rows ``index`` and renumbered in that order."""
    if beats is None:
        return None, None
    new_row = np.full(n_rows, -1)
    new_row[index] = np.arange(index.size)
    # keep the grouping by subject in the new order
    keep = np.concatenate([np.flatnonzero(owner == i) for i in index]) if index.size else np.zeros(0, int)
    return beats[keep], new_row[owner[keep]]


def hash_label_table(entries: list[LabelEntry], labels_path: Path) -> str:
    """SHA-256 over the label table and every file that belongs to each record (same folder and stem)."""
    digest = hashlib.sha256(Path(labels_path).read_bytes())
    _update_with_record_files(digest, entries)
    return digest.hexdigest()


def hash_record_files(entries: list[LabelEntry]) -> str:
    """SHA-256 over every file that belongs to each record (a shard's part of :func:`hash_label_table`)."""
    digest = hashlib.sha256()
    _update_with_record_files(digest, entries)
    return digest.hexdigest()


def _update_with_record_files(digest, entries: list[LabelEntry]) -> None:
    listing: dict[Path, dict[str, list[Path]]] = {}
    for entry in entries:
        folder = entry.record_path.parent
        if folder not in listing:
            by_stem: dict[str, list[Path]] = defaultdict(list)
            for path in folder.iterdir():
                if path.is_file():
                    by_stem[path.stem].append(path)
            listing[folder] = by_stem
        for path in sorted(listing[folder].get(entry.record_path.stem, [entry.record_path])):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())


def signal_core_files() -> list[Path]:
    """The source files whose content decides the rows: preprocess, signal_core/, clean_beats (estimate), the flag
    registry that decides exclusions, the input contract that builds the rows."""
    import edge_runtime

    root = Path(edge_runtime.__file__).parent
    sources = [root / "preprocess.py", root / "flags.py", root / "contract.py", root / "runtime" / "estimate.py",
               *(root / "signal_core").glob("*.py")]
    if len(sources) < 6 or not all(path.is_file() for path in sources):  # a moved module must not silently drop out
        raise RuntimeError(f"signal core sources not found under {root}")
    return sorted(sources)


def signal_core_version() -> str:
    """SHA-256 of :func:`signal_core_files`: a code change invalidates caches."""
    digest = hashlib.sha256()
    for path in signal_core_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def analyze_entry(entry: LabelEntry, config: PreprocessConfig, include_full: bool) -> dict:
    """One subject through the signal core; ``{"error": reason}`` when it gives no usable beat."""
    try:
        record = read_record(entry.record_path)
        analysis = analyze_record(record, config)
    except (ValueError, OSError) as error:  # RecordError is a ValueError
        return {"error": f"{type(error).__name__}: {error}"}
    if not analysis.usable:
        reasons = [f"{flag.name} ({flag.reason})" for flag in analysis.flags if flag.excludes]
        return {"error": "unusable window: " + ("; ".join(reasons) or "no middle beat")}
    row = analysis.middle_beat
    r_peak = int(analysis.beat_r_peaks[row])  # the (aligned) R the beat was cut at
    k = int(analysis.beat_peak_rows[row])  # its detection: QRS boundaries
    shift = config.beat_r_index - r_peak  # sample index in conditioned -> index in the beat window
    onset, offset = int(analysis.qrs_onset[k]), int(analysis.qrs_offset[k])
    if onset < 0 or offset < 0:  # middle beat not delineated: use the median boundaries of the window
        found = (analysis.qrs_onset >= 0) & (analysis.qrs_offset >= 0)
        onset = r_peak + int(np.median((analysis.qrs_onset - analysis.r_peaks)[found]))
        offset = r_peak + int(np.median((analysis.qrs_offset - analysis.r_peaks)[found]))
    clean = clean_beats(analysis.beats)
    if row not in clean:  # the middle beat is always one of the subject's beats
        clean = np.sort(np.append(clean, row))
    out = {
        "beat": analysis.beats[row].astype(np.float32),
        "clean_beats": analysis.beats[clean].astype(np.float32),
        "qrs_onset": onset + shift,
        "qrs_offset": offset + shift,
        "parameters": parameters_row(analysis.parameters),
        "extra": [analysis.parameters.get(name, math.nan) for name in EXTRA_PARAMETERS],
    }
    if include_full:
        n_full = int(round(FULL_SECONDS * config.fs))
        full = np.zeros((12, n_full), np.float32)
        take = min(n_full, analysis.model_signal.shape[1])
        full[:, :take] = analysis.model_signal[:, :take]  # the baseline-corrected signal the beats come from
        out["full"] = full
    return out


def _analyze_chunk(args: tuple[list[LabelEntry], dict, bool]) -> list[dict]:
    entries, config_dict, include_full = args
    config = PreprocessConfig.from_dict(config_dict)
    return [analyze_entry(entry, config, include_full) for entry in entries]


def augment_entry(entry: LabelEntry, config: PreprocessConfig, copies: int, seed: int, row: int,
                  augment: dict | None = None) -> list[np.ndarray]:
    """Clean beats of ``copies`` augmented copies of one record (raw signal -> augment -> signal core).

    Copy ``k`` of table row ``row`` draws from ``SeedSequence(seed, spawn_key=(row, k))``, so the
    copies do not depend on chunking or workers. A copy the signal core finds unusable is skipped.
    """
    from training.augment import AugmentConfig, augment_record

    settings = AugmentConfig(**(augment or {}))
    out = []
    try:
        record = read_record(entry.record_path).to_standard_12()
    except (ValueError, OSError):
        return out
    for k in range(copies):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(row, k)))
        try:
            analysis = analyze_record(augment_record(record, rng, settings, mains_hz=config.notch_hz), config)
        except ValueError:
            continue
        if analysis.usable and analysis.beats.shape[0]:
            out.append(analysis.beats[clean_beats(analysis.beats)].astype(np.float32))
    return out


def _augment_chunk(args: tuple[list[tuple[int, LabelEntry]], dict, int, int, dict | None]) -> list[list[np.ndarray]]:
    rows, config_dict, copies, seed, augment = args
    config = PreprocessConfig.from_dict(config_dict)
    return [augment_entry(entry, config, copies, seed, row, augment) for row, entry in rows]


def add_augmented_beats(dataset: EcgDataset, labels_path: str | Path, *, copies: int = 2, seed: int = 0,
                        augment: dict | None = None, cache_dir: str | Path | None = "runs/cache",
                        workers: int = 1, progress: bool = True, closest_ecg: bool = False) -> EcgDataset:
    """``dataset`` with ``aug_beats``/``aug_owner``: clean beats of augmented copies of every usable record.

    The raw record is augmented (:func:`training.augment.augment_record`) and then analyzed by the
    same :func:`edge_runtime.preprocess.analyze_record` as every record. Cached next to the dataset.
    """
    if copies < 1:
        return dataset
    entries = read_label_table(Path(labels_path), closest_ecg=closest_ecg)
    if dataset.table_rows is None or (dataset.table_rows.size and dataset.table_rows.max() >= len(entries)):
        raise ValueError("the dataset does not come from this label table (rebuild it with the same options)")
    usable_rows = [int(row) for row in dataset.table_rows]
    key = hashlib.sha256(json.dumps([DATASET_VERSION, dataset.data_hash, dataset.preprocess.to_dict(),
                                     signal_core_version(), copies, seed, augment or {}]).encode()).hexdigest()
    cache_path = Path(cache_dir) / f"augmented_{key[:20]}.npz" if cache_dir is not None else None
    if cache_path is not None and cache_path.exists():
        with np.load(cache_path, allow_pickle=False) as data:
            return _with_aug(dataset, data["aug_beats"], data["aug_owner"])
    jobs_rows = [(row, entries[row]) for row in usable_rows]
    chunks = [jobs_rows[i:i + 16] for i in range(0, len(jobs_rows), 16)]
    jobs = [(chunk, dataset.preprocess.to_dict(), copies, seed, augment) for chunk in chunks]
    results: list[list[np.ndarray]] = _map_chunks(_augment_chunk, jobs, workers,
                                                   _progress(len(jobs_rows), progress, f"augment x{copies}"))
    length = dataset.preprocess.beat_length
    beats = [b for per_subject in results for copy in per_subject for b in copy]
    owner = [i for i, per_subject in enumerate(results) for copy in per_subject for _ in range(len(copy))]
    aug_beats = np.stack(beats).astype(np.float32) if beats else np.zeros((0, 12, length), np.float32)
    aug_owner = np.array(owner, dtype=np.int64)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_name(cache_path.name + ".tmp.npz")
        np.savez(tmp, aug_beats=aug_beats, aug_owner=aug_owner)
        tmp.replace(cache_path)
    return _with_aug(dataset, aug_beats, aug_owner)


def _with_aug(dataset: EcgDataset, aug_beats: np.ndarray, aug_owner: np.ndarray) -> EcgDataset:
    from dataclasses import replace

    return replace(dataset, aug_beats=aug_beats, aug_owner=aug_owner)


def build_dataset(labels_path: str | Path, config: PreprocessConfig = PreprocessConfig(), *,
                  include_full: bool = False, cache_dir: str | Path | None = "runs/cache", workers: int = 1,
                  progress: bool = True, closest_ecg: bool = False) -> EcgDataset:
    """Read a label table and analyze every record (or load the cached arrays).

    Parameters
    ----------
    labels_path : str or Path
        The label table CSV (interface 2).
    config : PreprocessConfig
        The signal core's settings (recorded in the cache key and in every run).
    include_full : bool
        Also keep the conditioned 10 s window of every subject (``full``/``crop`` input modes).
    cache_dir : str, Path or None
        Where to keep ``.npz`` caches; None disables caching.
    workers : int
        Processes analyzing records (results do not depend on it).
    progress : bool
        Show a tqdm bar.
    closest_ecg : bool
        The paper's rule: one ECG per LV-mass measurement, the closest in time
        (:func:`edge_runtime.formats.labels.read_label_table`).

    Returns
    -------
    EcgDataset
        The usable subjects in label-table order; ``excluded`` lists the others with reasons.
    """
    labels_path = Path(labels_path)
    entries = read_label_table(labels_path, closest_ecg=closest_ecg)
    data_hash = hash_label_table(entries, labels_path)
    # The cache always holds the 10 s windows too, so every input mode shares one analysis pass.
    key = hashlib.sha256(json.dumps([DATASET_VERSION, data_hash, config.to_dict(), signal_core_version()]
                                    + (["closest_ecg"] if closest_ecg else [])).encode()).hexdigest()
    cache_path = Path(cache_dir) / f"dataset_{key[:20]}.npz" if cache_dir is not None else None
    if cache_path is not None and cache_path.exists():
        return _load_cache(cache_path, config, data_hash, include_full)
    keep_full = include_full or cache_path is not None
    chunks = [entries[i:i + 16] for i in range(0, len(entries), 16)]
    jobs = [(chunk, config.to_dict(), keep_full) for chunk in chunks]
    results: list[dict] = _map_chunks(_analyze_chunk, jobs, workers, _progress(len(entries), progress, "analyze records"))
    dataset = _assemble(entries, results, config, data_hash, keep_full)
    if len(dataset) == 0:
        reasons = "; ".join(f"{sid}: {why}" for sid, why in dataset.excluded[:5])
        raise ValueError(f"{labels_path}: no usable record ({reasons})")
    if cache_path is not None:
        _save_cache(cache_path, dataset)
    if not include_full:
        dataset.full = None
    return dataset


def _map_chunks(work, jobs: list[tuple], workers: int, bar) -> list:
    """``work`` over every job (a chunk of records first), concatenated in job order, in ``workers`` processes."""
    results: list = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk_result in pool.map(work, jobs):
                results.extend(chunk_result)
                bar.update(len(chunk_result))
    else:
        for job in jobs:
            chunk_result = work(job)
            results.extend(chunk_result)
            bar.update(len(chunk_result))
    bar.close()
    return results


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def _assemble(entries: list[LabelEntry], results: list[dict], config: PreprocessConfig, data_hash: str,
              include_full: bool) -> EcgDataset:
    keep = [i for i, result in enumerate(results) if "error" not in result]
    excluded = [(entries[i].subject_id, results[i]["error"]) for i in range(len(entries)) if "error" in results[i]]
    length = config.beat_length
    n_full = int(round(FULL_SECONDS * config.fs))

    return EcgDataset(
        subject_ids=np.array([entries[i].subject_id for i in keep], dtype=str),
        lvm_g=np.array([entries[i].lvm_g for i in keep], dtype=np.float64),
        demographics=np.array([demographics_row(entries[i].patient) for i in keep],
                              dtype=np.float64).reshape(-1, len(DEMOGRAPHIC_FEATURES)),
        parameters=np.array([results[i]["parameters"] for i in keep], dtype=np.float64).reshape(-1, len(MODEL_PARAMETERS)),
        extra_parameters=np.array([results[i]["extra"] for i in keep], dtype=np.float64).reshape(-1, 3),
        beats=np.stack([results[i]["beat"] for i in keep]) if keep else np.zeros((0, 12, length), np.float32),
        qrs_onset=np.array([results[i]["qrs_onset"] for i in keep], dtype=np.int64),
        qrs_offset=np.array([results[i]["qrs_offset"] for i in keep], dtype=np.int64),
        full=(np.stack([results[i]["full"] for i in keep]) if keep else np.zeros((0, 12, n_full), np.float32))
        if include_full else None,
        preprocess=config, data_hash=data_hash, excluded=excluded,
        all_beats=np.concatenate([results[i]["clean_beats"] for i in keep]) if keep else np.zeros((0, 12, length), np.float32),
        beat_owner=np.concatenate([np.full(len(results[i]["clean_beats"]), k) for k, i in enumerate(keep)]).astype(np.int64)
        if keep else np.zeros(0, np.int64),
        table_rows=np.array(keep, dtype=np.int64),
    )


_ARRAYS = ("subject_ids", "lvm_g", "demographics", "parameters", "extra_parameters", "beats", "qrs_onset", "qrs_offset",
           "all_beats", "beat_owner", "table_rows")


def _save_cache(path: Path, dataset: EcgDataset) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(dataset, name) for name in _ARRAYS}
    if dataset.full is not None:
        arrays["full"] = dataset.full
    meta = {"excluded": dataset.excluded, "data_hash": dataset.data_hash, "preprocess": dataset.preprocess.to_dict()}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def _load_cache(path: Path, config: PreprocessConfig, data_hash: str, include_full: bool) -> EcgDataset:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        arrays = {name: data[name] for name in _ARRAYS}
        full = data["full"] if include_full and "full" in data.files else None
    if meta["data_hash"] != data_hash or meta["preprocess"] != config.to_dict():
        raise ValueError(f"cache {path} does not match the data/settings; delete it")
    return EcgDataset(**arrays, full=full, preprocess=config, data_hash=data_hash,
                      excluded=[tuple(x) for x in meta["excluded"]])
