"""Scoring: LV-mass regression error, LVH classification from indexed LVM, fold summaries, paired tests.

LVH follows the paper: LVM / BSA (Mosteller) above 72 g/m2 in men, 55 g/m2 in women (configurable).
Subjects without sex, height or weight are left out of the LVH metrics (never guessed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from edge_runtime.contract import DEMOGRAPHIC_COLUMN


@dataclass(frozen=True)
class LvhThresholds:
    """Indexed LV-mass thresholds in g/m2."""

    male_g_m2: float = 72.0
    female_g_m2: float = 55.0

    def to_dict(self) -> dict:
        return asdict(self)


def bsa_mosteller(height_cm: np.ndarray, weight_kg: np.ndarray) -> np.ndarray:
    """Body surface area sqrt(height_cm * weight_kg / 3600) in m2 (NaN where unknown)."""
    return np.sqrt(np.asarray(height_cm, float) * np.asarray(weight_kg, float) / 3600.0)


def lvh_score(lvm_g: np.ndarray, sex_male: np.ndarray, height_cm: np.ndarray, weight_kg: np.ndarray,
              thresholds: LvhThresholds = LvhThresholds()) -> np.ndarray:
    """Indexed LVM minus the sex-specific threshold (g/m2); > 0 means LVH, NaN where not computable."""
    sex_male = np.asarray(sex_male, float)
    threshold = np.where(sex_male >= 0.5, thresholds.male_g_m2, thresholds.female_g_m2)
    threshold = np.where(np.isfinite(sex_male), threshold, np.nan)
    return np.asarray(lvm_g, float) / bsa_mosteller(height_cm, weight_kg) - threshold


def c_statistic(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN when one class is absent."""
    truth = np.asarray(truth, bool)
    n_pos, n_neg = int(truth.sum()), int((~truth).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else float("nan")


def score_fold(lvm_true: np.ndarray, lvm_pred: np.ndarray, demographics: np.ndarray,
               thresholds: LvhThresholds = LvhThresholds(), noise_floor_mae: float | None = None) -> dict:
    """All metrics of one fold.

    Parameters
    ----------
    lvm_true, lvm_pred : ndarray, shape (n,)
        Labels and estimates in grams.
    demographics : ndarray, shape (n, 4)
        Raw [age_years, sex (1=M, 0=F), height_cm, weight_kg]; NaN where unknown (NOT imputed).
    thresholds : LvhThresholds
        LVH cut-offs on indexed LVM.
    noise_floor_mae : float, optional
        MAE a perfect model would still have because of label noise (synthetic cohorts); adds
        ``mae_over_noise_floor``.

    Returns
    -------
    dict
        ``n, mae_g, mape_pct, n_lvh_scored, lvh_prevalence, c_statistic, accuracy, sensitivity,
        specificity, ppv, f1`` (+ ``mae_over_noise_floor``).
    """
    lvm_true = np.asarray(lvm_true, float)
    lvm_pred = np.asarray(lvm_pred, float).reshape(-1)
    if lvm_true.shape != lvm_pred.shape:
        raise ValueError(f"labels {lvm_true.shape} and estimates {lvm_pred.shape} differ in shape")
    if not np.all(np.isfinite(lvm_pred)):
        raise ValueError("estimates contain NaN/inf")
    error = np.abs(lvm_pred - lvm_true)
    out = {"n": int(lvm_true.size), "mae_g": float(error.mean()), "mape_pct": float(100 * np.mean(error / lvm_true))}
    sex, height, weight = (demographics[:, DEMOGRAPHIC_COLUMN[name]] for name in ("sex", "height_cm", "weight_kg"))
    true_score = lvh_score(lvm_true, sex, height, weight, thresholds)
    pred_score = lvh_score(lvm_pred, sex, height, weight, thresholds)
    ok = np.isfinite(true_score) & np.isfinite(pred_score)
    truth, predicted = true_score[ok] > 0, pred_score[ok] > 0
    tp, tn = int(np.sum(truth & predicted)), int(np.sum(~truth & ~predicted))
    fp, fn = int(np.sum(~truth & predicted)), int(np.sum(truth & ~predicted))
    sensitivity, ppv = _ratio(tp, tp + fn), _ratio(tp, tp + fp)
    out.update({
        "n_lvh_scored": int(ok.sum()),
        "lvh_prevalence": _ratio(tp + fn, ok.sum()),
        "c_statistic": c_statistic(truth, pred_score[ok]),
        "accuracy": _ratio(tp + tn, ok.sum()),
        "sensitivity": sensitivity,
        "specificity": _ratio(tn, tn + fp),
        "ppv": ppv,
        "f1": _ratio(2 * sensitivity * ppv, sensitivity + ppv) if np.isfinite(sensitivity * ppv) else float("nan"),
    })
    if noise_floor_mae:
        out["mae_over_noise_floor"] = float(out["mae_g"] / noise_floor_mae)
    return out


def summarize_folds(fold_metrics: list[dict]) -> dict:
    """Mean and sample SD over folds of every numeric metric: ``{name: {"mean": m, "sd": s}}``."""
    keys = [k for k in fold_metrics[0] if k != "fold" and isinstance(fold_metrics[0][k], (int, float))]
    summary = {}
    for key in keys:
        values = np.array([m[key] for m in fold_metrics], float)
        finite = values[np.isfinite(values)]
        summary[key] = {"mean": float(finite.mean()) if finite.size else float("nan"),
                        "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan")}
    return summary


def paired_fold_test(mae_a: list[float], mae_b: list[float]) -> dict:
    """Paired fold-wise comparison of two methods' MAEs on the same folds.

    Returns the mean difference (a - b), the paired t-test p value and the Wilcoxon signed-rank p value
    (with 5 folds the smallest possible two-sided Wilcoxon p is 0.0625: say so rather than over-read it).
    """
    a, b = np.asarray(mae_a, float), np.asarray(mae_b, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError("paired test needs the same >= 2 folds for both methods")
    diff = a - b
    t_p = float(stats.ttest_rel(a, b).pvalue) if np.any(diff != diff[0]) else float("nan")
    w_p = float(stats.wilcoxon(a, b).pvalue) if np.any(diff != 0) else float("nan")
    return {"mean_diff_g": float(diff.mean()), "t_test_p": t_p, "wilcoxon_p": w_p, "n_folds": int(a.size)}
