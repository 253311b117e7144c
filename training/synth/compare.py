"""Synthetic vs real ECG feature distributions, measured by the same code for both.

Real records: CinC 2021 12-lead (all features; its LVH label is SNOMED 164873001 in ``# Dx``) and
LUDB (timing features only -- LUDB 1.0.1 header gains make every lead span 1 mV, so its
amplitudes are not physiological; LVH from the "Left ventricular hypertrophy" header comment).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LVH_SNOMED = "164873001"
AMPLITUDE_FEATURES = ("r_I_mv", "r_II_mv", "r_aVL_mv", "r_V1_mv", "r_V2_mv", "r_V3_mv", "r_V4_mv", "r_V5_mv",
                      "r_V6_mv", "s_V1_mv", "s_V3_mv", "sokolow_lyon_mv", "cornell_mv", "t_V5_mv", "noise_uv")
TIMING_FEATURES = ("qrs_ms", "r_axis", "pr_ms", "qt_ms", "heart_rate_bpm")
COMPARED_FEATURES = AMPLITUDE_FEATURES + TIMING_FEATURES
DIRECTION_FEATURES = ("sokolow_lyon_mv", "cornell_mv", "r_aVL_mv", "r_V5_mv", "s_V1_mv", "qrs_ms", "r_axis", "t_V5_mv")


@dataclass(frozen=True)
class RealRecord:
    path: Path
    database: str  # "cinc2021" or "ludb"
    lvh: bool

    @property
    def amplitudes_valid(self) -> bool:
        return self.database != "ludb"


def real_records(real_dir: str | Path) -> list[RealRecord]:
    """The 12-lead real records under ``real_dir`` (``cinc2021/``, ``ludb/data/``) with their LVH reading."""
    real_dir = Path(real_dir)
    found = []
    for header in sorted((real_dir / "cinc2021").glob("*.hea")):
        text = header.read_text(errors="replace")
        dx = [line.split(":", 1)[1] for line in text.splitlines() if line.lower().startswith("# dx")]
        codes = {code.strip() for line in dx for code in line.split(",")}
        found.append(RealRecord(header, "cinc2021", LVH_SNOMED in codes))
    for header in sorted((real_dir / "ludb" / "data").glob("*.hea"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0):
        text = header.read_text(errors="replace").lower()
        found.append(RealRecord(header, "ludb", "left ventricular hypertrophy" in text))
    return found


def measure_real(records: list[RealRecord], progress: bool = True) -> list[dict]:
    """Features of each real record; amplitudes of LUDB records set to NaN."""
    from tqdm import tqdm

    from edge_runtime.formats import read_record
    from training.synth.features import FEATURE_NAMES, measure_record

    out = []
    for rec in tqdm(records, desc="real", unit="record", disable=not progress):
        try:
            m = measure_record(read_record(rec.path))
        except ValueError as error:
            m = {name: math.nan for name in FEATURE_NAMES} | {"error": str(error)}
        if not rec.amplitudes_valid:
            m.update({name: math.nan for name in AMPLITUDE_FEATURES})
        out.append(m | {"record": rec.path.stem, "database": rec.database, "lvh": float(rec.lvh)})
    return out


def read_measures(path: str | Path) -> list[dict]:
    """Rows of a features CSV (numbers as floats)."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append({k: _to_float(v) for k, v in row.items()})
    return rows


def _to_float(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def write_measures(path: str | Path, measures: list[dict]) -> None:
    columns = list(dict.fromkeys(k for m in measures for k in m))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for m in measures:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in m.items()})


def _values(measures: list[dict], name: str) -> np.ndarray:
    v = np.array([m.get(name, math.nan) for m in measures], dtype=float)
    return v[np.isfinite(v)]


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance (0 = same distribution, 1 = disjoint)."""
    if a.size == 0 or b.size == 0:
        return math.nan
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def compare_distributions(synthetic: list[dict], real: list[dict]) -> list[dict]:
    """Per feature: median and 10-90 % range of each side, KS distance, share of real inside synthetic 5-95 %."""
    table = []
    for name in COMPARED_FEATURES:
        s, r = _values(synthetic, name), _values(real, name)
        row = {"feature": name, "n_synthetic": int(s.size), "n_real": int(r.size)}
        for side, v in (("synthetic", s), ("real", r)):
            row[f"{side}_median"] = float(np.median(v)) if v.size else math.nan
            row[f"{side}_p10"] = float(np.percentile(v, 10)) if v.size else math.nan
            row[f"{side}_p90"] = float(np.percentile(v, 90)) if v.size else math.nan
        row["ks"] = ks_statistic(s, r)
        if s.size and r.size:
            lo, hi = np.percentile(s, [5, 95])
            row["real_inside_synthetic_5_95"] = float(np.mean((r >= lo) & (r <= hi)))
        else:
            row["real_inside_synthetic_5_95"] = math.nan
        table.append(row)
    return table


def lvh_directions(synthetic: list[dict], synthetic_latents: list[dict], real: list[dict]) -> list[dict]:
    """Mean difference (LVH minus no LVH) per feature: synthetic top vs bottom mass tertile, CinC, LUDB."""
    mass = np.array([lat["lvmi_true_g_m2"] / (72.0 if lat["sex"] == "M" else 55.0) for lat in synthetic_latents])
    lo, hi = np.percentile(mass, [100 / 3, 200 / 3])
    groups = {"synthetic": ([m for m, x in zip(synthetic, mass) if x >= hi], [m for m, x in zip(synthetic, mass) if x <= lo])}
    for db in ("cinc2021", "ludb"):
        rows = [m for m in real if m.get("database") == db]
        groups[db] = ([m for m in rows if m.get("lvh") == 1.0], [m for m in rows if m.get("lvh") == 0.0])
    out = []
    for name in DIRECTION_FEATURES:
        row = {"feature": name}
        for group, (yes, no) in groups.items():
            a, b = _values(yes, name), _values(no, name)
            row[f"{group}_diff"] = float(np.mean(a) - np.mean(b)) if a.size and b.size else math.nan
            row[f"{group}_n"] = f"{a.size}/{b.size}"
        out.append(row)
    return out


def format_tables(table: list[dict], directions: list[dict]) -> str:
    lines = ["synthetic vs real (median [10th-90th percentile]; KS distance; share of real values inside the synthetic 5-95 % range)",
             f"{'feature':<18}{'synthetic':>28}{'real':>28}{'KS':>7}{'inside':>8}{'n syn/real':>13}"]
    for row in table:
        def cell(side):
            return f"{row[side + '_median']:8.3g} [{row[side + '_p10']:.3g}-{row[side + '_p90']:.3g}]"
        lines.append(f"{row['feature']:<18}{cell('synthetic'):>28}{cell('real'):>28}{row['ks']:7.2f}"
                     f"{row['real_inside_synthetic_5_95']:8.2f}{row['n_synthetic']:>7}/{row['n_real']:<5}")
    lines.append("")
    lines.append("LVH direction: mean(LVH) - mean(no LVH); synthetic = top vs bottom tertile of LVMI/threshold; "
                 "real = cardiologist LVH reading (n LVH/no LVH)")
    lines.append(f"{'feature':<18}{'synthetic':>12}{'cinc2021':>12}{'(n)':>8}{'ludb':>12}{'(n)':>8}  agree")
    for row in directions:
        agree = []
        for db in ("cinc2021", "ludb"):
            if math.isfinite(row[f"{db}_diff"]) and math.isfinite(row["synthetic_diff"]):
                agree.append(f"{db}:{'yes' if np.sign(row[f'{db}_diff']) == np.sign(row['synthetic_diff']) else 'NO'}")
        lines.append(f"{row['feature']:<18}{row['synthetic_diff']:12.3g}{row['cinc2021_diff']:12.3g}{row['cinc2021_n']:>8}"
                     f"{row['ludb_diff']:12.3g}{row['ludb_n']:>8}  {' '.join(agree)}")
    return "\n".join(lines)


def plot_histograms(synthetic: list[dict], real: list[dict], path: str | Path) -> None:
    """Overlaid density histograms of every compared feature (matplotlib imported here).

    Bins span the 1st-99th percentile of both samples; values beyond are piled into the end bins.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = COMPARED_FEATURES
    cols = 5
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(3.2 * cols, 2.4 * math.ceil(len(names) / cols)))
    for ax, name in zip(axes.flat, names):
        s, r = _values(synthetic, name), _values(real, name)
        both = np.concatenate([s, r])
        if both.size == 0:
            ax.set_visible(False)
            continue
        lo, hi = np.percentile(both, [1, 99])
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 25)
        for values, label in ((s, "synthetic"), (r, "real")):
            if values.size:  # an empty side would be a 0/0 density
                ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, density=True, alpha=0.5, label=f"{label} n={values.size}")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle("elvmass synthetic cohort vs real ECGs (CinC 2021; LUDB timing only) - same signal-core measurements")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
