"""How a subject's LV mass, body and nuisance latents set the parameters of the cardiac dipole.

Directions use Frank's axes: X to the subject's left, Y to the feet, Z to the back (the axes of the
Dower matrix). Effects, each a documented finding:

* QRS vector magnitude grows with LV mass (Sokolow & Lyon, Am Heart J 1949;37:161; Casale et al.,
  Circulation 1987;75:565 / Cornell voltage, JACC 1985;6:572): ``|QRS| ~ mass_ratio ** 0.9``.
* QRS prolongs with LV mass (Okin et al., Hypertension 1995 / Dollar & Roberts 1991: ~+10-20 ms
  for doubled mass) and is ~6 ms longer in men at equal mass (Macfarlane et al., J Electrocardiol).
* The frontal QRS axis shifts leftward with LV mass, age and obesity (left-axis tendency in LVH;
  Bowers/Frank; age ~-0.3 deg/year; obesity ~-1 deg per kg/m2).
* Repolarization "strain" (lateral ST depression, T inversion, T vector turning away from the
  QRS vector) appears at high indexed mass (Romhilt-Estes 1968; Okin et al., Circulation 2004).
* Body habitus attenuates all voltages (~2.5 % per kg/m2 of BMI; Abergel et al., Hypertension
  1996; Okin et al., Am J Cardiol 1996), and at equal mass women's voltages are ~10 % lower
  (Cornell sex-specific thresholds; Okin 1995).
* Heart rate 50-110 bpm with respiratory sinus arrhythmia, QT by the Framingham correction
  QT = QTc + 0.154 (1000 - RR) ms (Sagie et al., Am J Cardiol 1992;70:797); PR 120-220 ms.
* A few percent have a conduction delay widening the QRS by 20-45 ms (bundle-branch block
  prevalence of a few percent in adults; Eriksson et al., Circulation 1998;98:2494).
* Occasional premature ventricular beats (~8 % of adults in a 10 s ECG carry one or more;
  Simpson et al., Am Heart J 2002).

Every drawn value is returned so the cohort records it in ``latents.csv``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

REFERENCE_LVM_G = 110.0  # mass at which mass_ratio = 1


@dataclass(frozen=True)
class PhenotypeModel:
    """Strength of each effect (see the module docstring for sources)."""

    qrs_mv_at_ref: float = 1.55  # main QRS force for a 110 g heart, BMI 26, age 55, man
    mass_voltage_exponent: float = 1.1
    voltage_log_sd: float = 0.24  # conduction/chest-geometry variation no demographic explains
    bmi_attenuation_per_unit: float = 0.025
    age_attenuation_per_year: float = 0.005
    female_voltage_factor: float = 0.90
    qrs_ms_male: float = 91.0
    qrs_ms_female: float = 85.0
    qrs_ms_per_doubling: float = 16.0
    qrs_ms_sd: float = 8.0
    p_conduction_delay: float = 0.04  # incomplete/complete bundle-branch block-like widening
    conduction_delay_ms: tuple[float, float] = (20.0, 45.0)
    axis_deg_at_ref: float = 40.0
    axis_deg_per_doubling: float = -35.0
    axis_deg_per_year: float = -0.3
    axis_deg_per_bmi: float = -1.0
    axis_sd_deg: float = 24.0
    posterior_deg_at_ref: float = 20.0
    posterior_deg_per_doubling: float = 25.0
    posterior_sd_deg: float = 12.0
    strain_onset_g_m2: float = 12.0  # strain grows above (LVH threshold + this) ...
    strain_onset_sd_g_m2: float = 8.0  # ... with a subject-specific onset
    strain_width_g_m2: float = 6.0
    orientation_sd_deg: float = 8.0
    hr_median_bpm: float = 70.0
    hr_log_sd: float = 0.16
    qtc_ms_male: float = 390.0
    qtc_ms_female: float = 402.0
    qtc_sd_ms: float = 15.0
    qtc_ms_per_doubling: float = 10.0
    pr_ms_mean: float = 158.0
    pr_ms_sd: float = 20.0
    p_ectopy: float = 0.08
    # Precordial-only gain of this subject (chest-wall thickness, breast tissue, lung between heart
    # and chest electrodes: Feldman et al. / Rautaharju et al.); 0 = none. Limb leads do not see it,
    # which is why Cornell (R aVL + S V3) tracks LV mass better than Sokolow-Lyon (S V1 + R V5/6).
    precordial_log_sd: float = 0.0
    precordial_bmi_per_unit: float = 0.0  # extra precordial attenuation per kg/m2 of BMI above 26
    precordial_log_sd_female_extra: float = 0.0  # breast tissue: more variable chest-lead voltage in women
    # Women only, on top of precordial_bmi_per_unit: breast and chest-wall fat grow with BMI and lie
    # between the heart and the chest electrodes (not the limb electrodes), so in heavier women --
    # who also have the larger hearts -- chest-lead voltage falls (obesity lowers Sokolow-Lyon's
    # sensitivity but not Cornell's: Abergel et al. 1996, Okin et al. 1996).
    precordial_bmi_per_unit_female: float = 0.0
    # P and T amplitudes vary between people for reasons of their own (atrial size, repolarization
    # heterogeneity). With 0 (easy) they are fixed, so P/QRS and T/QRS ratios cancel the body's
    # attenuation and hand a waveform model the QRS force, i.e. the LV mass.
    p_amplitude_log_sd: float = 0.0
    t_amplitude_log_sd: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


# Dower rows of leads I and aVF (= II - I/2) on Frank X, Y: used so that a frontal angle means
# the hexaxial QRS axis a cart would measure, not a Frank-plane angle.
_I_AVF_FROM_XY = np.array([[0.632, -0.235], [0.235 - 0.316, 1.066 + 0.1175]])


def direction(frontal_deg: float, posterior_deg: float) -> np.ndarray:
    """Unit vector whose projection on leads I/aVF has axis ``frontal_deg``, tilted back by ``posterior_deg``."""
    f, p = math.radians(frontal_deg), math.radians(posterior_deg)
    xy = np.linalg.solve(_I_AVF_FROM_XY, np.array([math.cos(f), math.sin(f)]))
    xy /= np.linalg.norm(xy)
    return np.array([xy[0] * math.cos(p), xy[1] * math.cos(p), math.sin(p)])


def rotation_matrix(angles_deg: np.ndarray) -> np.ndarray:
    """Rotation by small angles about X, Y, Z (applied in that order)."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Phenotype:
    """Subject-level dipole parameters (times in ms, vectors in mV, Frank axes)."""

    qrs_mv: float
    qrs_ms: float
    frontal_axis_deg: float
    posterior_deg: float
    attenuation: float
    strain: float
    rotation: np.ndarray  # (3, 3) heart orientation
    precordial_gain: float
    hr_bpm: float
    qtc_ms: float
    pr_ms: float
    n_ectopic: int
    latents: dict[str, float]
    p_gain: float = 1.0  # P-wave amplitude factor
    t_gain: float = 1.0  # normal T-wave amplitude factor


def draw_phenotype(subject: dict, rng: np.random.Generator, model: PhenotypeModel = PhenotypeModel()) -> Phenotype:
    """Dipole parameters for one subject (``subject`` from :func:`training.synth.subjects.draw_subject`)."""
    male = subject["sex"] == "M"
    mass_ratio = subject["lvm_true_g"] / REFERENCE_LVM_G
    doublings = math.log2(mass_ratio)
    conduction = math.exp(rng.normal(0.0, model.voltage_log_sd))
    attenuation = (math.exp(-model.bmi_attenuation_per_unit * (subject["bmi"] - 26.0))
                   * math.exp(-model.age_attenuation_per_year * (subject["age_years"] - 55.0))
                   * (1.0 if male else model.female_voltage_factor) * conduction)
    qrs_mv = model.qrs_mv_at_ref * mass_ratio ** model.mass_voltage_exponent
    qrs_ms = ((model.qrs_ms_male if male else model.qrs_ms_female)
              + model.qrs_ms_per_doubling * doublings + rng.normal(0.0, model.qrs_ms_sd))
    delay = rng.uniform(*model.conduction_delay_ms) if rng.random() < model.p_conduction_delay else 0.0
    qrs_ms = float(np.clip(qrs_ms, 70.0, 125.0)) + delay
    axis = (model.axis_deg_at_ref + model.axis_deg_per_doubling * doublings
            + model.axis_deg_per_year * (subject["age_years"] - 55.0)
            + model.axis_deg_per_bmi * (subject["bmi"] - 26.0) + rng.normal(0.0, model.axis_sd_deg))
    axis = float(np.clip(axis, -45.0, 110.0))
    posterior = (model.posterior_deg_at_ref + model.posterior_deg_per_doubling * doublings
                 + rng.normal(0.0, model.posterior_sd_deg))
    threshold = 72.0 if male else 55.0
    onset = threshold + model.strain_onset_g_m2 + rng.normal(0.0, model.strain_onset_sd_g_m2)
    strain = 1.0 / (1.0 + math.exp(-(subject["lvmi_true_g_m2"] - onset) / model.strain_width_g_m2))
    orientation_deg = rng.normal(0.0, model.orientation_sd_deg, size=3)
    hr = float(np.clip(model.hr_median_bpm * math.exp(rng.normal(0.0, model.hr_log_sd)), 50.0, 110.0))
    qtc = ((model.qtc_ms_male if male else model.qtc_ms_female) + model.qtc_ms_per_doubling * doublings
           + rng.normal(0.0, model.qtc_sd_ms))
    pr = float(np.clip(rng.normal(model.pr_ms_mean + 0.4 * (subject["age_years"] - 55.0), model.pr_ms_sd), 110.0, 230.0))
    n_ectopic = int(1 + rng.poisson(0.5)) if rng.random() < model.p_ectopy else 0
    # drawn last so that every earlier draw (and so the "easy" cohort) is unchanged
    precordial_bmi = model.precordial_bmi_per_unit + (0.0 if male else model.precordial_bmi_per_unit_female)
    precordial_sd = math.hypot(model.precordial_log_sd, 0.0 if male else model.precordial_log_sd_female_extra)
    precordial_gain = float(np.clip(math.exp(precordial_sd * rng.normal(0.0, 1.0)
                                             - precordial_bmi * (subject["bmi"] - 26.0)),
                                    0.4, 2.0))  # beyond these a cart's chest leads would be implausible
    p_gain = float(np.clip(math.exp(model.p_amplitude_log_sd * rng.normal(0.0, 1.0)), 0.3, 3.0))
    t_gain = float(np.clip(math.exp(model.t_amplitude_log_sd * rng.normal(0.0, 1.0)), 0.3, 3.0))
    latents = {
        "mass_ratio": mass_ratio, "conduction_factor": conduction, "voltage_attenuation": attenuation,
        "qrs_vector_mv": qrs_mv * attenuation, "qrs_ms_model": qrs_ms, "conduction_delay_ms": delay, "frontal_axis_deg_model": axis,
        "posterior_deg_model": posterior, "strain_onset_g_m2": onset, "strain": strain,
        "orientation_x_deg": orientation_deg[0], "orientation_y_deg": orientation_deg[1],
        "orientation_z_deg": orientation_deg[2], "hr_bpm_model": hr, "qtc_ms_model": qtc,
        "pr_ms_model": pr, "n_ectopic": n_ectopic, "precordial_gain": precordial_gain,
        "p_gain": p_gain, "t_gain": t_gain,
    }
    return Phenotype(qrs_mv=qrs_mv, qrs_ms=qrs_ms, frontal_axis_deg=axis, posterior_deg=posterior,
                     attenuation=attenuation, strain=strain, rotation=rotation_matrix(orientation_deg),
                     precordial_gain=precordial_gain, p_gain=p_gain, t_gain=t_gain,
                     hr_bpm=hr, qtc_ms=float(qtc), pr_ms=pr, n_ectopic=n_ectopic, latents=latents)
