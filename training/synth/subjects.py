"""Synthetic subjects: demographics, body size and a structural LV-mass model with every latent.

Model (one subject; all draws from the subject's own generator so cohorts are chunk-invariant)::

    sex      ~ Bernoulli(p_male)
    age      ~ Normal(mean_sex, sd_sex)            clipped to 25..88 years
    height   ~ Normal(h_sex - 0.08 (age-55), sd)   (secular trend: older adults are shorter)
    BMI      ~ LogNormal(median_sex, 0.14)        clipped to 16..50 kg/m2
    weight   = BMI * (height/100)^2
    BSA      = sqrt(height * weight / 3600)        (Mosteller 1987)
    h_norm   ~ Normal(0, sd_norm)                  individual normal variation of LV size
    remodel  ~ Bernoulli(p_ht), logit p_ht linear in age and BMI: hypertension-like remodelling
    h_ht     = remodel * Gamma(2, mean_ht / 2)     its size, right-skewed
    log LVM_true = log(LVMI0_sex) + log(BSA) + b_age (age - 55) + h_norm + h_ht
    eps      ~ Normal(0, label_noise_sd_g)         CT segmentation error, independent of everything
    LVM_label = LVM_true + eps

Sources for the numbers (orders of magnitude, chosen to resemble a CCTA referral cohort with mean
CT LV mass near 110 g as in Pan et al., Eur Heart J Digit Health 2025):

* Indexed LV mass reference values, men ~60-65 g/m2, women ~50-55 g/m2, with coefficients of
  variation ~15-20 %: Kawel-Boehm et al., J Cardiovasc Magn Reson 2015;17:29 (MR reference values);
  CT LV mass agrees with MR within a few grams, Stojanovska/Juergens-type CT-vs-MR comparisons
  (e.g. Juergens et al., Radiology 2004;233:322).  LVH cut-offs 72 g/m2 (men) / 55 g/m2 (women)
  as in the eLVMass-Net paper.
* LV mass rises with age and blood pressure; hypertension prevalence in adult clinic populations
  30-60 % rising with age and BMI (e.g. NHANES; Levy et al., Framingham, Ann Intern Med 1988;108:7).
* Body size: adult height/BMI distributions of the order of WHO/NCD-RisC summaries
  (NCD Risk Factor Collaboration, Lancet 2016;387:1377 for BMI; eLife 2016;5:e13410 for height).
* BSA: Mosteller, N Engl J Med 1987;317:1098.
* CT LV-mass reproducibility: inter-observer SD of the order of 5-10 g (Juergens 2004; Stojanovska
  et al., AJR 2015) -> default label-noise SD 8 g; floor MAE = SD * sqrt(2/pi).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SubjectModel:
    """Every parameter of the subject model (defaults: CCTA-like adult clinic cohort)."""

    p_male: float = 0.57
    age_mean_m: float = 57.0
    age_sd_m: float = 11.0
    age_mean_f: float = 60.0
    age_sd_f: float = 10.5
    height_mean_m: float = 174.0
    height_sd_m: float = 7.0
    height_mean_f: float = 161.0
    height_sd_f: float = 6.5
    bmi_median_m: float = 26.5
    bmi_median_f: float = 26.0
    bmi_log_sd: float = 0.14
    lvmi0_m: float = 61.0  # g/m2, before remodelling, at age 55
    lvmi0_f: float = 46.0
    b_age_per_year: float = 0.003
    h_norm_sd: float = 0.11
    p_ht_at_55: float = 0.35  # probability of hypertension-like remodelling at age 55, BMI 26
    logit_ht_per_decade: float = 0.35  # remodelling becomes likelier with age ...
    logit_ht_per_bmi: float = 0.06  # ... and with BMI (per kg/m2)
    ht_mean_log: float = 0.14  # mean size of remodelling in log LV mass
    label_noise_sd_g: float = 8.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def label_noise_floor_mae_g(self) -> float:
        """E|eps| for eps ~ N(0, sd): the MAE even a perfect model has against the labels."""
        return self.label_noise_sd_g * math.sqrt(2.0 / math.pi)


def bsa_mosteller(height_cm: np.ndarray | float, weight_kg: np.ndarray | float) -> np.ndarray:
    """Body surface area (m2) by Mosteller (1987): sqrt(height_cm * weight_kg / 3600)."""
    return np.sqrt(np.asarray(height_cm, dtype=float) * np.asarray(weight_kg, dtype=float) / 3600.0)


def lvm_structural_g(sex_male: np.ndarray, age_years: np.ndarray, bsa_m2: np.ndarray,
                     hypertrophy_log: np.ndarray, model: SubjectModel = SubjectModel()) -> np.ndarray:
    """True LV mass (g) from body size, sex, age and the total latent hypertrophy (log units).

    This is the exact structural function: given the latents it reproduces ``lvm_true_g``, which
    is what the oracle regressor uses.
    """
    sex_male = np.asarray(sex_male, dtype=bool)
    lvmi0 = np.where(sex_male, model.lvmi0_m, model.lvmi0_f)
    log_lvm = (np.log(lvmi0) + np.log(np.asarray(bsa_m2, dtype=float))
               + model.b_age_per_year * (np.asarray(age_years, dtype=float) - 55.0)
               + np.asarray(hypertrophy_log, dtype=float))
    return np.exp(log_lvm)


def draw_subject(rng: np.random.Generator, model: SubjectModel = SubjectModel()) -> dict[str, float | str]:
    """One subject's demographics, LV mass and latents, drawn from ``rng``.

    Returns
    -------
    dict
        ``sex`` ('M'/'F'), ``age_years``, ``height_cm``, ``weight_kg``, ``bmi``, ``bsa_m2``,
        ``h_norm``, ``remodelling`` (0/1), ``h_ht``, ``hypertrophy_log``, ``lvm_true_g``,
        ``label_noise_g``, ``lvm_g`` (the label), ``lvmi_true_g_m2``, ``lvmi_label_g_m2``,
        ``lvh_label`` (0/1 by the 72/55 g/m2 rule on the label).
    """
    male = bool(rng.random() < model.p_male)
    if male:
        age = rng.normal(model.age_mean_m, model.age_sd_m)
    else:
        age = rng.normal(model.age_mean_f, model.age_sd_f)
    age = float(np.clip(age, 25.0, 88.0))
    h_mean, h_sd = (model.height_mean_m, model.height_sd_m) if male else (model.height_mean_f, model.height_sd_f)
    height = float(np.clip(rng.normal(h_mean - 0.08 * (age - 55.0), h_sd), 140.0, 205.0))
    bmi_median = model.bmi_median_m if male else model.bmi_median_f
    bmi = float(np.clip(bmi_median * math.exp(rng.normal(0.0, model.bmi_log_sd)), 16.0, 50.0))
    weight = bmi * (height / 100.0) ** 2
    bsa = float(bsa_mosteller(height, weight))

    h_norm = rng.normal(0.0, model.h_norm_sd)
    logit = (math.log(model.p_ht_at_55 / (1 - model.p_ht_at_55))
             + model.logit_ht_per_decade * (age - 55.0) / 10.0
             + model.logit_ht_per_bmi * (bmi - 26.0))
    p_ht = 1.0 / (1.0 + math.exp(-logit))
    remodelling = bool(rng.random() < p_ht)
    h_ht = rng.gamma(2.0, model.ht_mean_log / 2.0) if remodelling else 0.0
    hypertrophy_log = h_norm + h_ht
    lvm_true = float(lvm_structural_g(male, age, bsa, hypertrophy_log, model))
    label_noise = rng.normal(0.0, model.label_noise_sd_g)
    lvm_label = lvm_true + label_noise
    lvmi_label = lvm_label / bsa
    threshold = 72.0 if male else 55.0
    return {
        "sex": "M" if male else "F",
        "age_years": age,
        "height_cm": height,
        "weight_kg": weight,
        "bmi": bmi,
        "bsa_m2": bsa,
        "h_norm": float(h_norm),
        "p_remodelling": p_ht,
        "remodelling": int(remodelling),
        "h_ht": float(h_ht),
        "hypertrophy_log": float(hypertrophy_log),
        "lvm_true_g": lvm_true,
        "label_noise_g": float(label_noise),
        "lvm_g": lvm_label,
        "lvmi_true_g_m2": lvm_true / bsa,
        "lvmi_label_g_m2": lvmi_label,
        "lvh_label": int(lvmi_label > threshold),
    }
