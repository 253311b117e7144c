"""Metamorphic checks of the device chain on real, unlabelled ECGs.

No LV mass is needed: each check changes a record in a way whose effect on the estimate is known.

* ``scale_1.25``: every lead x 1.25 (larger QRS voltage) -> the LV-mass estimate should rise;
  reported as the fraction of records whose estimate rose (of those with an estimate both times)
  and the median change in grams. This scales the P and T waves too, which is also what a thinner
  chest or a different amplifier gain does, so it mixes "bigger heart" with "less attenuation".
* ``scale_qrs_1.25``: only the QRS complexes x 1.25 (the signal core's QRS onset/offset of every
  detected beat, +-10 ms, cosine-tapered; P, ST-T and baseline untouched): the voltage LV mass raises.
* nuisance (``wander`` 0.3 mV, ``mains`` 50 uV at the clinic's mains frequency, ``emg`` SD 30 uV;
  generators of :mod:`training.augment`) -> the estimate should not move: median |change| in g,
  and how many records lose (or gain) their estimate.

Every variant goes through the same device chain (:func:`edge_runtime.runtime.pipeline.analyze_file_record`,
first 10 s window) with the record's own demographics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.record import INDEPENDENT_LEADS, EcgRecord

NUISANCE_AMPLITUDES = {"wander": 0.3, "mains": 0.05, "emg": 0.03}  # mV (peak, peak, SD)
SCALE = 1.25
RECORD_SUFFIXES = (".hea", ".xml", ".XML")


@dataclass
class MetamorphicResult:
    """Per-record estimates (g, None = no estimate) for the original and each variant."""

    records: list[str] = field(default_factory=list)
    estimates: dict[str, list[float | None]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record, why it was not analyzed)
    lost_flags: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> flag -> records that lost it

    def summary(self) -> dict:
        """The figures ``elvmass metamorphic`` prints (see the module docstring)."""
        base = self.estimates.get("original", [])
        out: dict = {"n_records": len(self.records), "n_skipped": len(self.skipped),
                     "n_with_estimate": sum(v is not None for v in base)}
        for name, values in self.estimates.items():
            if name == "original":
                continue
            both = [(b, v) for b, v in zip(base, values) if b is not None and v is not None]
            change = np.array([v - b for b, v in both], dtype=float)
            row = {"n_both": len(both), "flags_without_estimate": self.lost_flags.get(name, {}),
                   "n_lost": sum(b is not None and v is None for b, v in zip(base, values)),
                   "n_gained": sum(b is None and v is not None for b, v in zip(base, values)),
                   "median_change_g": float(np.median(change)) if change.size else math.nan,
                   "median_abs_change_g": float(np.median(np.abs(change))) if change.size else math.nan,
                   "p90_abs_change_g": float(np.percentile(np.abs(change), 90)) if change.size else math.nan}
            if name.startswith("scale"):
                row["fraction_rising"] = float(np.mean(change > 0)) if change.size else math.nan
            out[name] = row
        return out


def find_records(folder: str | Path) -> list[Path]:
    """Record files under ``folder`` (WFDB headers and XML), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in RECORD_SUFFIXES)


def qrs_weight(record: EcgRecord) -> np.ndarray | None:
    """(n,) weight at the record's rate: 1 inside every delineated QRS (+- margin), cosine tapers, 0 elsewhere.

    None when the signal core finds no QRS boundaries (the variant is then left out for that record).
    """
    from edge_runtime.preprocess import analyze_record
    from training.monotone import qrs_gain_profile

    analysis = analyze_record(record)
    found = (analysis.qrs_onset >= 0) & (analysis.qrs_offset > analysis.qrs_onset)
    if not found.any():
        return None
    fs_a, n_a = analysis.fs, analysis.conditioned.shape[1]
    # the same widened, tapered QRS the training penalty raises (one row per beat; beats never overlap)
    weight = qrs_gain_profile(analysis.qrs_onset[found], analysis.qrs_offset[found], n_a, fs_a).max(axis=0)
    n = record.signals_mv.shape[1]
    return np.interp(np.arange(n) / record.fs, np.arange(n_a) / fs_a, weight.astype(np.float64))


def qrs_scaled(record: EcgRecord, factor: float) -> EcgRecord | None:
    """``record`` (standard 12 leads) with its QRS complexes x ``factor`` (see :func:`qrs_weight`)."""
    from training.augment import independent_leads, with_independent_leads

    weight = qrs_weight(record)
    if weight is None:
        return None
    x = independent_leads(record)
    # scale around the local baseline: the straight line between the values where the weight leaves 0
    baseline = np.empty_like(x)
    edges = np.flatnonzero(np.diff(np.concatenate([[0.0], (weight > 0).astype(float), [0.0]])))
    baseline[:] = x
    for lo, hi in zip(edges[::2], edges[1::2]):
        a, b = max(lo - 1, 0), min(hi, x.shape[1] - 1)
        ramp = np.linspace(0.0, 1.0, hi - lo + 2)[1:-1]
        baseline[:, lo:hi] = x[:, a:a + 1] + (x[:, b:b + 1] - x[:, a:a + 1]) * ramp
    return with_independent_leads(record, x + (factor - 1.0) * weight * (x - baseline))


def variants(record: EcgRecord, rng: np.random.Generator, mains_hz: float) -> dict[str, EcgRecord]:
    """The transformed copies of a 12-lead record (raw signal, before any preprocessing)."""
    from training.augment import baseline_wander, emg_noise, independent_leads, mains_interference, with_independent_leads

    x = independent_leads(record)
    n_leads, n = x.shape
    out = {f"scale_{SCALE:g}": with_independent_leads(record, SCALE * x)}
    qrs_only = qrs_scaled(record, SCALE)
    if qrs_only is not None:
        out[f"scale_qrs_{SCALE:g}"] = qrs_only
    noise = {
        "wander": baseline_wander(n_leads, n, record.fs, rng, NUISANCE_AMPLITUDES["wander"]),
        "mains": mains_interference(n_leads, n, record.fs, rng, NUISANCE_AMPLITUDES["mains"], mains_hz)
        if mains_hz < record.fs / 2 else np.zeros_like(x),
        "emg": emg_noise(n_leads, n, record.fs, rng, NUISANCE_AMPLITUDES["emg"]),
    }
    out.update({name: with_independent_leads(record, x + added) for name, added in noise.items()})
    return out


def run_metamorphic(analyzer, folder: str | Path, *, seed: int = 0, limit: int | None = None,
                    progress: bool = True) -> MetamorphicResult:
    """Estimate every 12-lead record of ``folder`` and its variants with ``analyzer`` (an ``Analyzer``)."""
    from tqdm import tqdm

    from edge_runtime.formats import read_record
    from edge_runtime.runtime.pipeline import analyze_file_record

    result = MetamorphicResult()
    mains_hz = float(analyzer.config.mains_hz)
    paths = find_records(folder)[:limit]
    for index, path in enumerate(tqdm(paths, desc="metamorphic", unit="record", disable=not progress)):
        try:
            record = read_record(path)
        except (ValueError, OSError) as error:
            result.skipped.append((str(path), f"unreadable: {error}"))
            continue
        if record.amplitudes_normalized:
            result.skipped.append((str(path), "amplitudes normalized per lead (not physiological)"))
            continue
        if not all(name in record.lead_names for name in INDEPENDENT_LEADS):
            result.skipped.append((str(path), f"not 12-lead ({len(record.lead_names)} leads)"))
            continue
        record = record.to_standard_12()
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        copies = {"original": record, **variants(record, rng, mains_hz)}
        result.records.append(str(path))
        for name, copy in copies.items():
            best, _ = analyze_file_record(analyzer, copy, record.patient, max_windows=1)
            result.estimates.setdefault(name, []).append(best.estimate.lvm_g)
            if best.estimate.lvm_g is None and result.estimates["original"][-1] is not None:  # lost by the change
                counts = result.lost_flags.setdefault(name, {})
                for flag in {f.name for f in best.estimate.flags}:
                    counts[flag] = counts.get(flag, 0) + 1
        if f"scale_qrs_{SCALE:g}" not in copies:  # no QRS delineated: keep the lists aligned with result.records
            result.estimates.setdefault(f"scale_qrs_{SCALE:g}", []).append(None)
    return result


def format_summary(summary: dict) -> str:
    """The table printed by ``elvmass metamorphic``."""
    lines = [f"{summary['n_records']} 12-lead records analyzed ({summary['n_skipped']} skipped), "
             f"{summary['n_with_estimate']} with an estimate",
             f"{'variant':<14} {'n both':>6} {'rising':>7} {'median d':>9} {'median |d|':>10} {'p90 |d|':>8} "
             f"{'lost':>5} {'gained':>6}"]
    for name, row in summary.items():
        if not isinstance(row, dict):
            continue
        rising = f"{100 * row['fraction_rising']:.0f} %" if "fraction_rising" in row else "-"
        lines.append(f"{name:<14} {row['n_both']:6d} {rising:>7} {row['median_change_g']:9.2f} "
                     f"{row['median_abs_change_g']:10.2f} {row['p90_abs_change_g']:8.2f} {row['n_lost']:5d} "
                     f"{row['n_gained']:6d}")
    for name, row in summary.items():
        if isinstance(row, dict) and row["n_lost"]:
            top = sorted(row["flags_without_estimate"].items(), key=lambda kv: -kv[1])[:4]
            lines.append(f"  {name}: records that lost their estimate, by flag: " + ", ".join(f"{k} {v}" for k, v in top))
    lines.append(f"(g; scale = every lead x {SCALE:g}, scale_qrs = the QRS complexes only; wander {NUISANCE_AMPLITUDES['wander']} mV, mains "
                 f"{1000 * NUISANCE_AMPLITUDES['mains']:.0f} uV, EMG SD {1000 * NUISANCE_AMPLITUDES['emg']:.0f} uV; "
                 "first 10 s window; lost/gained = estimate present before/after only)")
    return "\n".join(lines)
