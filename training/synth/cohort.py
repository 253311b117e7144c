"""Generate a synthetic cohort and write it as a site would store its data.

Layout of ``out_dir``::

    labels.csv          record,lvm_g,age_years,sex,height_cm,weight_kg,subject_id
    latents.csv         every latent of every subject (structural, phenotype, rhythm, leads, noise)
    records/<id>.hea    WFDB, 500 Hz, 10 s, 12 standard leads, mV, format 16 at 0.5 uV/LSB
    cohort.json         seed, n, generator version, settings, label-noise SD and floor, summary

Subject ``i`` draws from ``SeedSequence(seed, spawn_key=(i, stream))`` with one stream per
part (demographics, phenotype, rhythm+leads, noise), so chunking and worker count do not change
any file, and changing the noise level changes only the noise.
"""

from __future__ import annotations

import csv
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.record import STANDARD_LEADS
from training.synth.dipole import subject_vcg
from training.synth.leads import ADC_GAIN_PER_MV, jittered_dower, project_independent, to_digital_12
from training.synth.noise import lead_noise
from training.synth.phenotype import PhenotypeModel, draw_phenotype
from training.synth.presets import DEFAULT_DIFFICULTY, difficulty_models
from training.synth.subjects import SubjectModel, draw_subject

GENERATOR_VERSION = "1.3.0"  # 1.1: difficulty presets ("easy" writes the 1.0 records byte for byte); 1.2: P/T amplitude spread;
# 1.3: "paper" women's chest leads attenuated with BMI (breast / chest-wall fat)
LABEL_COLUMNS = ("record", "lvm_g", "age_years", "sex", "height_cm", "weight_kg", "subject_id")
_STREAM_SUBJECT, _STREAM_PHENOTYPE, _STREAM_WAVEFORM, _STREAM_NOISE = range(4)


@dataclass(frozen=True)
class CohortConfig:
    """Everything that determines a cohort's files (default: the ``paper`` difficulty).

    ``difficulty`` names the preset the models came from (:mod:`training.synth.presets`); use
    :meth:`for_difficulty` to build a config from a preset.
    """

    n: int = 1459
    seed: int = 0
    fs: float = 500.0
    duration_s: float = 10.0
    noise_level: float = 1.0
    mains_hz: float = 50.0
    subjects: SubjectModel = field(default_factory=lambda: difficulty_models(DEFAULT_DIFFICULTY)[0])
    phenotype: PhenotypeModel = field(default_factory=lambda: difficulty_models(DEFAULT_DIFFICULTY)[1])
    difficulty: str = DEFAULT_DIFFICULTY

    @classmethod
    def for_difficulty(cls, difficulty: str, **settings) -> "CohortConfig":
        """A config with the subject and phenotype models of a named difficulty (``paper``, ``easy``)."""
        subjects, phenotype = difficulty_models(difficulty)
        return cls(subjects=subjects, phenotype=phenotype, difficulty=difficulty, **settings)

    def to_dict(self) -> dict:
        return {"n": self.n, "seed": self.seed, "difficulty": self.difficulty, "fs": self.fs,
                "duration_s": self.duration_s,
                "noise_level": self.noise_level, "mains_hz": self.mains_hz,
                "subject_model": self.subjects.to_dict(), "phenotype_model": self.phenotype.to_dict()}


@dataclass
class SyntheticSubject:
    subject_id: str
    digital: np.ndarray  # (12, n) int32 at ADC_GAIN_PER_MV
    latents: dict

    @property
    def signals_mv(self) -> np.ndarray:
        return (self.digital / ADC_GAIN_PER_MV).astype(np.float32)


def subject_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The generator of one part of one subject, independent of every other subject."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def subject_id(index: int) -> str:
    return f"syn{index:05d}"


def simulate_subject(index: int, config: CohortConfig) -> SyntheticSubject:
    """Subject ``index`` of the cohort: demographics, LV mass, 12-lead ECG and all latents."""
    subject = draw_subject(subject_rng(config.seed, index, _STREAM_SUBJECT), config.subjects)
    return render_subject(subject, index, config)


def render_subject(subject: dict, index: int, config: CohortConfig) -> SyntheticSubject:
    """The ECG of ``subject`` (a :func:`draw_subject` dict) with subject ``index``'s nuisance draws.

    Separate from :func:`simulate_subject` so a study can change one latent (e.g. LV mass) and
    keep heart orientation, rhythm, electrode placement and noise identical.
    """
    ph = draw_phenotype(subject, subject_rng(config.seed, index, _STREAM_PHENOTYPE), config.phenotype)
    wave_rng = subject_rng(config.seed, index, _STREAM_WAVEFORM)
    vcg, rhythm = subject_vcg(ph, config.fs, config.duration_s, wave_rng)
    lead_matrix, lead_latents = jittered_dower(wave_rng)
    independent = project_independent(vcg, lead_matrix)
    if ph.precordial_gain != 1.0:  # exactly 1 in the "easy" preset: its records stay byte-identical
        independent[2:] *= ph.precordial_gain
    noise, noise_latents = lead_noise(independent.shape[1], config.fs,
                                      subject_rng(config.seed, index, _STREAM_NOISE),
                                      config.noise_level, config.mains_hz)
    digital = to_digital_12(independent + noise)
    sid = subject_id(index)
    latents = {"subject_id": sid, **subject, **ph.latents, **rhythm, **lead_latents, **noise_latents}
    return SyntheticSubject(sid, digital, latents)


def write_wfdb(subject: SyntheticSubject, records_dir: Path, fs: float) -> Path:
    """Write one subject as WFDB (format 16, mV); demographics go in the header comments."""
    import wfdb

    lat = subject.latents
    comments = [f"Age: {lat['age_years']:.1f}", f"Sex: {'Male' if lat['sex'] == 'M' else 'Female'}",
                f"Height: {lat['height_cm']:.1f}", f"Weight: {lat['weight_kg']:.1f}",
                f"Synthetic: elvmass synth {GENERATOR_VERSION} (not a real patient)"]
    n_leads = len(STANDARD_LEADS)
    wfdb.wrsamp(subject.subject_id, fs=fs, units=["mV"] * n_leads, sig_name=list(STANDARD_LEADS),
                d_signal=np.ascontiguousarray(subject.digital.T), fmt=["16"] * n_leads,
                adc_gain=[ADC_GAIN_PER_MV] * n_leads, baseline=[0] * n_leads, comments=comments,
                write_dir=str(records_dir))
    return records_dir / f"{subject.subject_id}.hea"


def label_row(latents: dict) -> dict[str, str]:
    sid = latents["subject_id"]
    return {"record": f"records/{sid}.hea", "lvm_g": f"{latents['lvm_g']:.1f}",
            "age_years": f"{latents['age_years']:.1f}", "sex": latents["sex"],
            "height_cm": f"{latents['height_cm']:.1f}", "weight_kg": f"{latents['weight_kg']:.1f}",
            "subject_id": sid}


def _write_chunk(args: tuple[int, int, CohortConfig, str]) -> list[dict]:
    start, stop, config, out_dir = args
    records_dir = Path(out_dir) / "records"
    rows = []
    for index in range(start, stop):
        subject = simulate_subject(index, config)
        write_wfdb(subject, records_dir, config.fs)
        rows.append(subject.latents)
    return rows


def generate_cohort(out_dir: str | Path, config: CohortConfig = CohortConfig(), *, chunk_size: int = 64,
                    workers: int = 1, progress: bool = True) -> list[dict]:
    """Write ``labels.csv``, ``latents.csv`` and ``records/`` for ``config`` into ``out_dir``.

    Returns the latents of every subject (in subject order). ``cohort.json`` is written by
    :func:`write_cohort_json` once the floor has been computed.
    """
    if config.n < 1:
        raise ValueError(f"cohort size must be positive, got n={config.n}")
    if not 0.0 <= config.noise_level <= 10.0:
        raise ValueError(f"noise level must be within 0..10, got {config.noise_level}")
    if config.mains_hz not in (50.0, 60.0):
        raise ValueError(f"mains frequency must be 50 or 60 Hz, got {config.mains_hz}")
    out_dir = Path(out_dir)
    (out_dir / "records").mkdir(parents=True, exist_ok=True)
    chunks = [(s, min(s + chunk_size, config.n), config, str(out_dir)) for s in range(0, config.n, chunk_size)]
    from tqdm import tqdm

    bar = tqdm(total=config.n, unit="subject", desc="synth", disable=not progress)
    rows: list[dict] = []
    if workers <= 1:
        for chunk in chunks:
            rows.extend(_write_chunk(chunk))
            bar.update(chunk[1] - chunk[0])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for chunk, chunk_rows in zip(chunks, pool.map(_write_chunk, chunks)):
                rows.extend(chunk_rows)
                bar.update(chunk[1] - chunk[0])
    bar.close()
    _write_csv(out_dir / "labels.csv", LABEL_COLUMNS, [label_row(r) for r in rows])
    latent_columns = list(rows[0].keys())
    _write_csv(out_dir / "latents.csv", latent_columns, [{k: _fmt(r[k]) for k in latent_columns} for r in rows])
    return rows


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _write_csv(path: Path, columns, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def cohort_summary(rows: list[dict]) -> dict:
    """Descriptive numbers of a generated cohort (means by sex, LVH prevalence)."""
    lvm = np.array([r["lvm_g"] for r in rows])
    male = np.array([r["sex"] == "M" for r in rows])
    lvh = np.array([r["lvh_label"] for r in rows])

    def mean(x, mask):
        return float(np.mean(x[mask])) if mask.any() else float("nan")

    return {"n_male": int(male.sum()), "n_female": int((~male).sum()),
            "lvm_g_mean": float(lvm.mean()), "lvm_g_sd": float(lvm.std(ddof=1)) if lvm.size > 1 else 0.0,
            "lvm_g_mean_male": mean(lvm, male), "lvm_g_mean_female": mean(lvm, ~male),
            "lvh_prevalence": float(lvh.mean()), "lvh_prevalence_male": mean(lvh, male),
            "lvh_prevalence_female": mean(lvh, ~male),
            "n_with_ectopy": int(sum(r["n_ectopic_in_window"] > 0 for r in rows))}


def write_cohort_json(out_dir: str | Path, config: CohortConfig, rows: list[dict], extra: dict) -> dict:
    """Write ``cohort.json``: seed, n, version, settings, label-noise SD/floor, oracle and ``extra``.

    ``label_noise_floor_mae_g`` is the analytic floor, ``label_noise_floor_mae_g_empirical`` the
    cohort's mean |eps| and ``oracle_mae_g`` the MAE of the structural model on the true latents.
    ``extra`` may hold ``floor`` (from :func:`training.synth.floor.compute_floor`) and ``timing``.
    """
    from training.synth.floor import floor_from_rows

    floor = extra.get("floor") or floor_from_rows(rows)
    document = {
        "generator": "elvmass synth", "generator_version": GENERATOR_VERSION,
        "seed": config.seed, "n": config.n, "config": config.to_dict(),
        "label_noise_sd_g": config.subjects.label_noise_sd_g,
        "label_noise_floor_mae_g": config.subjects.label_noise_floor_mae_g,
        "label_noise_floor_mae_g_empirical": floor["label_noise_floor_mae_g_empirical"],
        "oracle_mae_g": floor["oracle_exact_mae_g"],
        "summary": cohort_summary(rows), **extra,
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with open(Path(out_dir) / "cohort.json", "w") as handle:
        json.dump(document, handle, indent=2, default=float)
    return document
