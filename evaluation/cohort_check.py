"""How hard is a cohort? Measured against published anchors (the "paper" difficulty targets).

A cohort is a label table (LV mass, sex, height, weight) plus ECG measurements taken by the signal
core (:func:`training.synth.features.measure_record`). Measured here, each with a bootstrap SE:

* within-sex Pearson r of Sokolow-Lyon and Cornell voltage with LV mass, and their AUROC for LVH
  (LVM/BSA > 72 g/m2 men, > 55 g/m2 women), per sex and pooled within sex (voltages and LV mass
  standardized inside each sex, so sex differences cannot create a correlation);
* how much information demographics carry: out-of-fold MAE of ordinary least squares on ECG
  features only, demographics only, and both (the paper's folds), and the ratio ECG-only /
  ECG + demographics (the paper's Table 1c: 19.2 / 14.6 g = 1.32).

The target bands and their sources are :data:`TARGETS` (docs/synthetic_cohort.md has the table).
Works on any cohort with a label table, synthetic or a site's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from training.metrics import LvhThresholds, c_statistic, lvh_score
from training.synth.floor import cv_linear_predictions, demographic_features, ecg_features, paper_folds


@dataclass(frozen=True)
class Target:
    """One quantity's target band and where it comes from."""

    key: str
    low: float
    high: float
    source: str


# Population-cohort bands: the paper's CCTA cohort (chest-pain work-up, mean LVM ~110 g, mostly mild
# remodelling) resembles a population more than CMR-referred patients with valve disease or
# cardiomyopathy, and its model reached only c 0.70 -- hospital-cohort criteria (AUROC 0.70-0.83)
# would leave a deep model nothing to win. See docs/synthetic_cohort.md for the reasoning per row.
TARGETS: tuple[Target, ...] = (
    Target("r_sokolow_lvm", 0.05, 0.19, "CHIEF (young men, echo) 0.05; MONICA-Vitoria (population, echo) 0.19"),
    Target("r_cornell_lvm", 0.24, 0.37, "CHIEF 0.24 (product 0.26); MONICA-Vitoria 0.37"),
    Target("auroc_sokolow_lvh", 0.53, 0.60, "CHIEF 0.53-0.54; population upper end 0.60 (issue 19 anchors)"),
    Target("auroc_cornell_lvh", 0.64, 0.70,
           "CHIEF 0.66-0.68 widened by its own SE (~0.02 at n 539); below the hospital band 0.70-0.83"),
    Target("mae_ratio_ecg_only_to_ecg_demographics", 1.20, 1.50,
           "paper Table 1c: ECG only 19.2 g / ECG + demographics 14.6 g = 1.32"),
)
TARGET_BY_KEY = {t.key: t for t in TARGETS}
SEXES = (("male", True), ("female", False))
N_BOOTSTRAP = 200


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def _within_sex_standardized(values: np.ndarray, male: np.ndarray) -> np.ndarray:
    out = np.empty_like(values, dtype=float)
    for mask in (male, ~male):
        v = values[mask]
        out[mask] = (v - v.mean()) / v.std() if v.size > 1 and v.std() > 0 else 0.0
    return out


def _quantities(lvm: np.ndarray, lvh: np.ndarray, male: np.ndarray, sokolow: np.ndarray,
                cornell: np.ndarray) -> dict[str, float]:
    """Point values of the voltage quantities on one (re)sample."""
    out: dict[str, float] = {}
    for name, voltage in (("sokolow", sokolow), ("cornell", cornell)):
        for sex, is_male in SEXES:
            mask = male == is_male
            out[f"r_{name}_lvm_{sex}"] = _pearson(voltage[mask], lvm[mask])
            out[f"auroc_{name}_lvh_{sex}"] = c_statistic(lvh[mask], voltage[mask])
        out[f"r_{name}_lvm_pooled"] = _pearson(_within_sex_standardized(voltage, male),
                                               _within_sex_standardized(lvm, male))
        # pooled within sex: each subject's voltage ranked against its own sex only
        out[f"auroc_{name}_lvh_pooled"] = c_statistic(lvh, _within_sex_standardized(voltage, male))
    return out


def check_cohort(rows: list[dict], measures: list[dict], *, n_bootstrap: int = N_BOOTSTRAP,
                 seed: int = 0, thresholds: LvhThresholds = LvhThresholds()) -> dict:
    """Every target quantity of a cohort, with bootstrap SEs.

    Parameters
    ----------
    rows : list of dict
        One per subject: ``lvm_g``, ``sex`` ('M'/'F'), ``age_years``, ``height_cm``, ``weight_kg``.
    measures : list of dict
        The signal core's features of each subject's ECG (same order), from
        :func:`training.synth.features.measure_record`; NaN where not measured.

    Returns
    -------
    dict
        ``values`` (key -> float), ``se`` (key -> bootstrap SE), ``n`` (subjects with both
        voltages), ``n_male``, ``n_female``, ``n_lvh`` and the three baseline MAEs (g).
    """
    if len(rows) != len(measures):
        raise ValueError(f"{len(rows)} label rows but {len(measures)} measurements")
    lvm = np.array([float(r["lvm_g"]) for r in rows])
    sex = [str(r["sex"]).upper()[:1] for r in rows]
    if any(s not in ("M", "F") for s in sex):
        raise ValueError("every subject needs sex M or F for within-sex targets")
    male = np.array([s == "M" for s in sex])
    age = np.array([float(r["age_years"]) for r in rows])
    height = np.array([float(r["height_cm"]) for r in rows])
    weight = np.array([float(r["weight_kg"]) for r in rows])
    sokolow = np.array([m["sokolow_lyon_mv"] for m in measures], dtype=float)
    cornell = np.array([m["cornell_mv"] for m in measures], dtype=float)
    lvh = lvh_score(lvm, male, height, weight, thresholds) > 0
    ok = np.isfinite(sokolow) & np.isfinite(cornell) & np.isfinite(lvm)
    if ok.sum() < 20 or male[ok].sum() < 5 or (~male[ok]).sum() < 5:
        raise ValueError(f"too few measured subjects for the targets ({int(ok.sum())})")
    values = _quantities(lvm[ok], lvh[ok], male[ok], sokolow[ok], cornell[ok])

    # Information in demographics: OLS out-of-fold predictions on the paper's folds (all subjects;
    # missing ECG features imputed by training-fold medians, as in the floor's baselines).
    folds = paper_folds(lvm)
    demo = demographic_features([{"sex": s, "age_years": a, "height_cm": h, "weight_kg": w}
                                 for s, a, h, w in zip(sex, age, height, weight)])
    ecg = ecg_features(measures)
    predictions = {
        "ecg_only": cv_linear_predictions(ecg, lvm, folds),
        "demographics_only": cv_linear_predictions(demo, lvm, folds),
        "ecg_demographics": cv_linear_predictions(np.column_stack([demo, ecg, ecg * male[:, None]]), lvm, folds),
    }
    errors = {name: np.abs(p - lvm) for name, p in predictions.items()}
    for name, err in errors.items():
        values[f"mae_{name}_g"] = float(err.mean())
    values["mae_ratio_ecg_only_to_ecg_demographics"] = values["mae_ecg_only_g"] / values["mae_ecg_demographics_g"]

    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {key: [] for key in values}
    index_ok = np.flatnonzero(ok)
    for _ in range(n_bootstrap):
        pick = rng.choice(index_ok, size=index_ok.size, replace=True)
        for key, value in _quantities(lvm[pick], lvh[pick], male[pick], sokolow[pick], cornell[pick]).items():
            samples[key].append(value)
        every = rng.integers(0, lvm.size, size=lvm.size)  # baseline errors: resample subjects (fits fixed)
        maes = {name: float(err[every].mean()) for name, err in errors.items()}
        for name, value in maes.items():
            samples[f"mae_{name}_g"].append(value)
        samples["mae_ratio_ecg_only_to_ecg_demographics"].append(maes["ecg_only"] / maes["ecg_demographics"])
    se = {key: float(np.nanstd(v, ddof=1)) if len(v) > 1 else math.nan for key, v in samples.items()}
    return {"values": values, "se": se, "n": int(ok.sum()), "n_male": int(male[ok].sum()),
            "n_female": int((~male[ok]).sum()), "n_lvh": int(lvh[ok].sum()), "n_labelled": int(lvm.size)}


def band_verdicts(result: dict, *, widen_se: float = 0.0) -> list[dict]:
    """For each measured quantity with a target: value, SE, band, and whether it is inside.

    ``widen_se`` widens each band by that many of the quantity's own SEs (for small test cohorts).
    Quantities with a target are ``<key>`` (ratios) or ``<key>_{male,female,pooled}`` (per sex).
    """
    out = []
    for key, value in result["values"].items():
        target = TARGET_BY_KEY.get(key) or TARGET_BY_KEY.get(key.rsplit("_", 1)[0])
        if target is None:
            continue
        se = result["se"].get(key, math.nan)
        margin = widen_se * se if np.isfinite(se) else 0.0
        inside = bool(target.low - margin <= value <= target.high + margin)
        out.append({"key": key, "value": value, "se": se, "low": target.low, "high": target.high,
                    "margin": margin, "inside": inside, "source": target.source})
    return out


def format_check(result: dict, verdicts: list[dict]) -> str:
    """The table printed by ``elvmass synth-check``."""
    v = result["values"]
    lines = [f"cohort: {result['n']} subjects with both voltages measured ({result['n_male']} men, "
             f"{result['n_female']} women, {result['n_lvh']} LVH) of {result['n_labelled']} labelled",
             f"{'quantity':<44} {'measured':>9} {'± SE':>7}   {'target band':<13} inside",
             "-" * 84]
    for item in verdicts:
        band = f"{item['low']:.2f}-{item['high']:.2f}"
        mark = "yes" if item["inside"] else "NO"
        lines.append(f"{item['key']:<44} {item['value']:9.3f} {item['se']:7.3f}   {band:<13} {mark}")
    lines.append("")
    lines.append(f"OLS on the paper's folds (MAE g): ECG only {v['mae_ecg_only_g']:.2f}, demographics only "
                 f"{v['mae_demographics_only_g']:.2f}, ECG + demographics {v['mae_ecg_demographics_g']:.2f} "
                 f"(paper's model, Table 1c: 19.2 / - / 14.6)")
    n_in = sum(item["inside"] for item in verdicts)
    lines.append(f"{n_in} of {len(verdicts)} quantities inside their band")
    return "\n".join(lines)
