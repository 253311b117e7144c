"""The cohort's known floor and difficulty baselines.

* Label-noise floor: labels are ``LVM_true + eps`` with ``eps ~ N(0, sd)`` independent of every
  input, so no model beats ``E|eps| = sd * sqrt(2/pi)`` in expectation (analytic) -- the empirical
  value is ``mean |eps|`` over the cohort.
* Oracle: the exact structural function of the true latents (equals the empirical floor), and a
  cross-validated linear regression on the latents (what a learner with the latents reaches).
* ECG ceiling: what a perfect reader of the ECG could reach. Only the latents the waveform
  expresses (QRS force after attenuation, P and T amplitude, QRS width, axes, strain, heart
  orientation, precordial gain, QTc, PR, rate), noise-free, plus the demographics, into
  gradient-boosted trees (cross-validated on the same folds). The conduction factor, the
  label noise and the split of amplitude between LV mass and attenuation stay hidden, so this is
  the error no ECG model of this cohort can go below (up to the learner's own error); it bounds
  how far any network can get ahead of the ECG-feature baselines.
* Difficulty baselines (ordinary least squares, the paper's folds: sort by LV mass, every fifth):
  demographics only; ECG voltages/intervals only; voltage criteria + demographics. ECG features are
  measured from the written records by :func:`training.synth.features.measure_record` (signal core).
* Classical voltage criteria for LVH (Sokolow-Lyon >= 3.5 mV; Cornell > 2.8 mV men / 2.0 mV women)
  against the label's LVH: sensitivity and specificity.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from training.synth.subjects import lvm_structural_g


def paper_folds(lvm_g: np.ndarray, k: int = 5) -> np.ndarray:
    """Fold number per subject: sort by LV mass and deal every k-th subject into the same fold."""
    folds = np.empty(len(lvm_g), dtype=int)
    folds[np.argsort(lvm_g, kind="stable")] = np.arange(len(lvm_g)) % k
    return folds


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, ignoring nothing (inputs must be finite)."""
    return float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))


def cv_linear_predictions(features: np.ndarray, target: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions of OLS with intercept; missing features imputed by training-fold medians."""
    features = np.asarray(features, dtype=float)
    predictions = np.empty(len(target))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        medians = np.nanmedian(features[train], axis=0)
        filled = np.where(np.isnan(features), medians[None, :], features)
        design = np.column_stack([np.ones(len(target)), filled])
        coef, *_ = np.linalg.lstsq(design[train], target[train], rcond=None)
        predictions[test] = design[test] @ coef
    return predictions


def demographic_features(rows: list[dict]) -> np.ndarray:
    male = np.array([r["sex"] == "M" for r in rows], dtype=float)
    age = np.array([r["age_years"] for r in rows])
    height = np.array([r["height_cm"] for r in rows])
    weight = np.array([r["weight_kg"] for r in rows])
    bsa = np.sqrt(height * weight / 3600.0)
    return np.column_stack([male, age, height, weight, bsa, male * bsa, male * age])


ECG_FEATURES = ("sokolow_lyon_mv", "cornell_mv", "r_aVL_mv", "r_V5_mv", "r_V6_mv", "s_V1_mv", "s_V3_mv",
                "qrs_ms", "r_axis", "t_V5_mv")


def ecg_features(measures: list[dict]) -> np.ndarray:
    columns = [np.array([m[name] for m in measures], dtype=float) for name in ECG_FEATURES]
    sl, cornell = columns[0], columns[1]
    male_free = columns + [sl * columns[7], cornell * columns[7]]  # voltage-duration products (Okin 1995)
    return np.column_stack(male_free)


def voltage_criteria(measures: list[dict], rows: list[dict]) -> dict[str, float]:
    """Sensitivity/specificity of Sokolow-Lyon and Cornell voltage for the label's LVH."""
    lvh = np.array([r["lvh_label"] for r in rows], dtype=bool)
    male = np.array([r["sex"] == "M" for r in rows])
    sl = np.array([m["sokolow_lyon_mv"] for m in measures])
    cornell = np.array([m["cornell_mv"] for m in measures])
    ok = np.isfinite(sl) & np.isfinite(cornell)
    result = {}
    for name, positive in (("sokolow_lyon", sl >= 3.5), ("cornell", cornell > np.where(male, 2.8, 2.0))):
        tp = np.sum(positive & lvh & ok)
        tn = np.sum(~positive & ~lvh & ok)
        result[f"{name}_sensitivity"] = float(tp / max(1, np.sum(lvh & ok)))
        result[f"{name}_specificity"] = float(tn / max(1, np.sum(~lvh & ok)))
    return result


def measure_cohort(out_dir: str | Path, rows: list[dict], progress: bool = True) -> list[dict]:
    """ECG features of every written record, through the signal core."""
    from tqdm import tqdm

    from edge_runtime.formats import read_record
    from training.synth.features import FEATURE_NAMES, measure_record

    measures = []
    for r in tqdm(rows, desc="measure", unit="record", disable=not progress):
        try:
            measures.append(measure_record(read_record(Path(out_dir) / "records" / f"{r['subject_id']}.hea")))
        except (ValueError, RuntimeError) as error:  # a record the chain refuses counts as unmeasured
            measures.append({name: math.nan for name in FEATURE_NAMES} | {"error": str(error)})
    return measures


MIN_SUBJECTS_FOR_CV = 50  # below this a 5-fold linear fit with ~20 features is meaningless


def floor_from_rows(rows: list[dict], measures: list[dict] | None = None) -> dict:
    """Floor, oracle and baseline MAEs (grams) for a cohort's latents (and ECG measurements).

    Cross-validated baselines need at least :data:`MIN_SUBJECTS_FOR_CV` subjects; smaller cohorts
    get the floor and the exact oracle only, with ``cv_baselines`` saying why.
    """
    label = np.array([r["lvm_g"] for r in rows])
    true = np.array([r["lvm_true_g"] for r in rows])
    male = np.array([r["sex"] == "M" for r in rows])
    exact = lvm_structural_g(male, np.array([r["age_years"] for r in rows]),
                             np.array([r["bsa_m2"] for r in rows]), np.array([r["hypertrophy_log"] for r in rows]))
    if len(rows) < MIN_SUBJECTS_FOR_CV:
        return {"n": len(rows), "label_noise_floor_mae_g_empirical": mae(label, true),
                "oracle_exact_mae_g": mae(label, exact),
                "cv_baselines": f"skipped: {len(rows)} subjects < {MIN_SUBJECTS_FOR_CV}"}
    folds = paper_folds(label)
    latents = np.column_stack([male, np.log([r["bsa_m2"] for r in rows]), [r["age_years"] for r in rows],
                               [r["hypertrophy_log"] for r in rows]])
    oracle_linear = np.exp(cv_linear_predictions(latents, np.log(label), folds))
    demographics = demographic_features(rows)
    result = {
        "n": len(rows),
        "label_noise_floor_mae_g_empirical": mae(label, true),
        "oracle_exact_mae_g": mae(label, exact),
        "oracle_linear_cv_mae_g": mae(label, oracle_linear),
        "mean_predictor_mae_g": mae(label, np.full_like(label, np.median(label))),
        "demographics_linear_cv_mae_g": mae(label, cv_linear_predictions(demographics, label, folds)),
    }
    if all(name in rows[0] for name in ECG_CEILING_LATENTS):  # rows with the phenotype's latents, not demographics only
        result["ecg_ceiling_cv_mae_g"] = ecg_ceiling_cv_mae_g(rows)
        result["ecg_ceiling_linear_cv_mae_g"] = ecg_ceiling_linear_cv_mae_g(rows)
    if measures is not None:
        ecg = ecg_features(measures)
        result["ecg_only_linear_cv_mae_g"] = mae(label, cv_linear_predictions(ecg, label, folds))
        result["voltage_demographics_linear_cv_mae_g"] = mae(
            label, cv_linear_predictions(np.column_stack([demographics, ecg, ecg * male[:, None]]), label, folds))
        result["n_unusable_records"] = int(sum(m.get("usable", 0.0) != 1.0 for m in measures))
        result.update(voltage_criteria(measures, rows))
    return result


ECG_CEILING_LATENTS = ("qrs_vector_mv", "voltage_attenuation", "p_gain", "t_gain", "qrs_ms_model",
                       "frontal_axis_deg_model", "posterior_deg_model", "strain", "orientation_x_deg",
                       "orientation_y_deg", "orientation_z_deg", "precordial_gain", "qtc_ms_model", "pr_ms_model",
                       "hr_bpm_model")

# entered above as the amplitudes the leads carry, not on their own
_AMPLITUDE_LATENTS = ("qrs_vector_mv", "voltage_attenuation", "p_gain", "t_gain", "precordial_gain")


def ecg_ceiling_features(rows: list[dict]) -> np.ndarray:
    """What the waveform shows of each subject, noise-free (see the module docstring), plus demographics.

    Amplitudes enter as the products the leads carry (``training.synth.dipole``): the QRS force after
    attenuation, the P wave ``0.15 p_gain`` and the normal T wave ``0.32 t_gain size^0.3`` times the
    attenuation, never the attenuation alone (the ECG cannot see it apart from the waves).
    """
    latent = {name: np.array([float(r[name]) for r in rows]) for name in ECG_CEILING_LATENTS}
    attenuation = latent["voltage_attenuation"]
    log_qrs = np.log(latent["qrs_vector_mv"])
    log_p = np.log(attenuation * latent["p_gain"])
    log_t = np.log(attenuation * latent["t_gain"]) + 0.3 * np.log(latent["qrs_vector_mv"] / attenuation)
    shown = [log_qrs, log_p, log_t, log_qrs - log_p, log_qrs - log_t, np.log(latent["precordial_gain"])]
    shown += [latent[name] for name in ECG_CEILING_LATENTS if name not in _AMPLITUDE_LATENTS]
    return np.column_stack([demographic_features(rows), *shown])


def read_latents(path: str | Path) -> list[dict]:
    """Rows of a cohort's ``latents.csv``, numbers as floats (sex and ids stay text)."""
    import csv

    def number_or_text(text: str):
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="") as handle:
        return [{k: number_or_text(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def ecg_ceiling_cv_mae_g(rows: list[dict], seed: int = 0) -> float:
    """Cross-validated MAE (g) of gradient-boosted trees on :func:`ecg_ceiling_features` (paper folds)."""
    from sklearn.ensemble import HistGradientBoostingRegressor  # training extra

    label = np.array([r["lvm_g"] for r in rows])
    features = ecg_ceiling_features(rows)
    folds = paper_folds(label)
    predictions = np.empty(len(label))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        model = HistGradientBoostingRegressor(loss="absolute_error", learning_rate=0.05, max_iter=300, random_state=seed)
        predictions[test] = model.fit(features[train], label[train]).predict(features[test])
    return mae(label, predictions)


def ecg_ceiling_linear_cv_mae_g(rows: list[dict]) -> float:
    """Cross-validated MAE (g) of a log-linear reader (OLS on log LV mass) of :func:`ecg_ceiling_features`.

    The generator's amplitudes are log-linear in LV mass, so this is the smooth reader the voltage
    responses in docs/training.md are measured with; next to the trees it shows how much of the ceiling
    is the learner's.
    """
    label = np.array([r["lvm_g"] for r in rows])
    log_predictions = cv_linear_predictions(ecg_ceiling_features(rows), np.log(label), paper_folds(label))
    return mae(label, np.exp(log_predictions))


def compute_floor(out_dir: str | Path, rows: list[dict], progress: bool = True) -> dict:
    """Floor + baselines of a written cohort; ECG baselines need :mod:`edge_runtime.preprocess`."""
    try:
        import edge_runtime.preprocess  # noqa: F401
    except ImportError as error:
        result = floor_from_rows(rows)
        result["ecg_baselines"] = f"not computed: signal core unavailable ({error})"
        return result
    measures = measure_cohort(out_dir, rows, progress)
    from training.synth.compare import write_measures

    write_measures(Path(out_dir) / "ecg_features.csv",
                   [{"subject_id": r["subject_id"], **m} for r, m in zip(rows, measures)])
    return floor_from_rows(rows, measures)


def format_floor(floor: dict) -> str:
    """The floor/baseline numbers as printed by ``elvmass synth``."""
    lines = ["floor and difficulty (MAE vs labels, g; OLS, 5 folds by sorted LV mass):"]
    names = [("label_noise_floor_mae_g_empirical", "label-noise floor (empirical mean |eps|)"),
             ("oracle_exact_mae_g", "oracle: structural model on true latents"),
             ("oracle_linear_cv_mae_g", "oracle: linear regression on latents (CV)"),
             ("ecg_ceiling_cv_mae_g", "ECG ceiling: what the ECG shows, noise-free (GBT)"),
             ("ecg_ceiling_linear_cv_mae_g", "  the same, log-linear reader (OLS on log LVM)"),
             ("mean_predictor_mae_g", "predict the median"),
             ("demographics_linear_cv_mae_g", "demographics only (linear)"),
             ("ecg_only_linear_cv_mae_g", "ECG voltages/QRS/axis only (linear)"),
             ("voltage_demographics_linear_cv_mae_g", "voltage criteria + demographics (linear)")]
    floor_g = floor["label_noise_floor_mae_g_empirical"]
    for key, text in names:
        if key in floor:
            lines.append(f"  {text:<46} {floor[key]:6.2f}  ({floor[key] / floor_g:4.2f} x floor)")
    if "sokolow_lyon_sensitivity" in floor:
        lines.append(f"  Sokolow-Lyon >= 3.5 mV: sensitivity {floor['sokolow_lyon_sensitivity']:.2f}, "
                     f"specificity {floor['sokolow_lyon_specificity']:.2f}; Cornell: sensitivity "
                     f"{floor['cornell_sensitivity']:.2f}, specificity {floor['cornell_specificity']:.2f}")
    if "n_unusable_records" in floor:
        lines.append(f"  records the signal core flagged unusable: {floor['n_unusable_records']} of {floor['n']}")
    if "cv_baselines" in floor:
        lines.append(f"  cross-validated baselines {floor['cv_baselines']}")
    if "ecg_baselines" in floor:
        lines.append(f"  ECG baselines {floor['ecg_baselines']}")
    return "\n".join(lines)
