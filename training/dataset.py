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

DATASET_VERSION = 2  # bump when the cached arrays change meaning
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

    def __len__(self) -> int:
        return int(self.lvm_g.size)

    def subset(self, index: np.ndarray) -> "EcgDataset":
        """The rows ``index`` (a copy of the per-subject arrays)."""
        index = np.asarray(index)
        all_beats = owner = None
        if self.all_beats is not None:
            new_row = np.full(len(self), -1)
            new_row[index] = np.arange(index.size)
            # keep the grouping by subject in the new order
            keep = np.concatenate([np.flatnonzero(self.beat_owner == i) for i in index]) if index.size else np.zeros(0, int)
            all_beats, owner = self.all_beats[keep], new_row[self.beat_owner[keep]]
        return EcgDataset(
            self.subject_ids[index], self.lvm_g[index], self.demographics[index], self.parameters[index],
            self.extra_parameters[index], self.beats[index], self.qrs_onset[index], self.qrs_offset[index],
            None if self.full is None else self.full[index], self.preprocess, self.data_hash, list(self.excluded),
            all_beats, owner,
        )

    def describe(self) -> str:
        n_male = int(np.sum(self.demographics[:, SEX_COLUMN] == 1))
        return (f"{len(self)} usable subjects ({n_male} male), {len(self.excluded)} excluded, "
                f"LVM {self.lvm_g.mean():.1f} +- {self.lvm_g.std():.1f} g, data hash {self.data_hash[:12]}")


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


def build_dataset(labels_path: str | Path, config: PreprocessConfig = PreprocessConfig(), *,
                  include_full: bool = False, cache_dir: str | Path | None = "runs/cache", workers: int = 1,
                  progress: bool = True) -> EcgDataset:
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

    Returns
    -------
    EcgDataset
        The usable subjects in label-table order; ``excluded`` lists the others with reasons.
    """
    labels_path = Path(labels_path)
    entries = read_label_table(labels_path)
    data_hash = hash_label_table(entries, labels_path)
    # The cache always holds the 10 s windows too, so every input mode shares one analysis pass.
    key = hashlib.sha256(json.dumps([DATASET_VERSION, data_hash, config.to_dict(),
                                     signal_core_version()]).encode()).hexdigest()
    cache_path = Path(cache_dir) / f"dataset_{key[:20]}.npz" if cache_dir is not None else None
    if cache_path is not None and cache_path.exists():
        return _load_cache(cache_path, config, data_hash, include_full)
    keep_full = include_full or cache_path is not None
    chunks = [entries[i:i + 16] for i in range(0, len(entries), 16)]
    jobs = [(chunk, config.to_dict(), keep_full) for chunk in chunks]
    results: list[dict] = []
    bar = _progress(len(entries), progress, "analyze records")
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk_result in pool.map(_analyze_chunk, jobs):
                results.extend(chunk_result)
                bar.update(len(chunk_result))
    else:
        for job in jobs:
            results.extend(_analyze_chunk(job))
            bar.update(len(job[0]))
    bar.close()
    dataset = _assemble(entries, results, config, data_hash, keep_full)
    if len(dataset) == 0:
        reasons = "; ".join(f"{sid}: {why}" for sid, why in dataset.excluded[:5])
        raise ValueError(f"{labels_path}: no usable record ({reasons})")
    if cache_path is not None:
        _save_cache(cache_path, dataset)
    if not include_full:
        dataset.full = None
    return dataset


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
    )


_ARRAYS = ("subject_ids", "lvm_g", "demographics", "parameters", "extra_parameters", "beats", "qrs_onset", "qrs_offset",
           "all_beats", "beat_owner")


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
