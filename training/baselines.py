"""Baselines on the same folds as eLVMass-Net.

* ``lvm_ai_cnn``: LVM-AI-like plain CNN on the full 10 s ECG + age, sex, BMI (torch, same trainer).
* ``ecg_ai_gbt``: ECG-AI-like interval/amplitude features from OUR delineation (+ age, sex, height,
  weight) -> gradient-boosted trees (sklearn HistGradientBoostingRegressor, absolute-error loss).
* ``voltage_linear``: Sokolow-Lyon, Cornell voltage, Cornell product, Peguero-Lo Presti +
  demographics -> linear regression.
* ``demographics_linear``: age, sex, height, weight, BSA -> linear regression.

Amplitudes are measured on the signal core's middle beat inside its QRS onset/offset, relative to
the PR-segment level just before QRS onset; nothing is re-filtered or re-delineated here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from edge_runtime.contract import DEMOGRAPHIC_COLUMN, DEMOGRAPHIC_FEATURES
from training.dataset import EcgDataset
from training.folds import paper_folds
from training.metrics import LvhThresholds, bsa_mosteller, score_fold, summarize_folds

LEAD = {name: i for i, name in enumerate(("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"))}
BASELINES = ("lvm_ai_cnn", "ecg_ai_gbt", "voltage_linear", "demographics_linear")


def qrs_amplitudes(dataset: EcgDataset) -> tuple[np.ndarray, np.ndarray]:
    """R (max above baseline) and S (depth below baseline) in mV, each (n, 12), inside the QRS of the middle beat."""
    n, _, length = dataset.beats.shape
    r_amp, s_amp = np.zeros((n, 12)), np.zeros((n, 12))
    pr_window = max(1, int(round(0.02 * dataset.preprocess.fs)))  # 20 ms before QRS onset
    for i in range(n):
        onset = int(np.clip(dataset.qrs_onset[i], pr_window, length - 2))
        offset = int(np.clip(dataset.qrs_offset[i], onset + 1, length - 1))
        beat = dataset.beats[i].astype(np.float64)
        baseline = np.median(beat[:, onset - pr_window:onset], axis=1)
        qrs = beat[:, onset:offset + 1] - baseline[:, None]
        r_amp[i], s_amp[i] = np.maximum(qrs.max(axis=1), 0.0), np.maximum(-qrs.min(axis=1), 0.0)
    return r_amp, s_amp


def voltage_criteria(dataset: EcgDataset) -> np.ndarray:
    """(n, 4): Sokolow-Lyon (mV), Cornell voltage (mV), Cornell product (mV*ms), Peguero-Lo Presti (mV)."""
    r_amp, s_amp = qrs_amplitudes(dataset)
    sokolow = s_amp[:, LEAD["V1"]] + np.maximum(r_amp[:, LEAD["V5"]], r_amp[:, LEAD["V6"]])
    cornell = r_amp[:, LEAD["aVL"]] + s_amp[:, LEAD["V3"]]
    product = cornell * dataset.parameters[:, 0]  # QRS duration from the signal core (NaN stays NaN)
    peguero = s_amp.max(axis=1) + s_amp[:, LEAD["V4"]]
    return np.column_stack([sokolow, cornell, product, peguero])


def demographic_features(dataset: EcgDataset) -> np.ndarray:
    """(n, 5): age, sex (1=M), height, weight, BSA (Mosteller); NaN where unknown."""
    d = dataset.demographics
    return np.column_stack([d, bsa_mosteller(d[:, 2], d[:, 3])])


def ecg_ai_features(dataset: EcgDataset) -> np.ndarray:
    """Interval/amplitude features: R and S per lead, T-wave peak per lead, intervals, axes (sin/cos), demographics."""
    r_amp, s_amp = qrs_amplitudes(dataset)
    n, _, length = dataset.beats.shape
    t_peak = np.zeros((n, 12))
    for i in range(n):  # largest |deflection| between QRS offset and the end of the beat window (ST-T)
        offset = int(np.clip(dataset.qrs_offset[i], 0, length - 2))
        t_peak[i] = np.abs(dataset.beats[i, :, offset + 1:]).max(axis=1)
    axes = np.radians(dataset.parameters[:, 1:4])
    return np.column_stack([r_amp, s_amp, t_peak, dataset.parameters[:, :1], dataset.extra_parameters,
                            np.sin(axes), np.cos(axes), demographic_features(dataset)])


def _impute_columns(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    medians = np.nanmedian(train, axis=0)
    medians = np.where(np.isfinite(medians), medians, 0.0)
    return np.where(np.isnan(train), medians, train), np.where(np.isnan(test), medians, test)


def fit_predict_tabular(name: str, features: np.ndarray, lvm_g: np.ndarray, train: np.ndarray,
                        test: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fit one tabular baseline on ``train`` rows and predict ``test`` rows."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from threadpoolctl import threadpool_limits

    if name == "ecg_ai_gbt":  # trees take NaN natively
        model = HistGradientBoostingRegressor(loss="absolute_error", learning_rate=0.05, max_iter=400,
                                              max_leaf_nodes=15, min_samples_leaf=20, l2_regularization=1.0,
                                              random_state=seed)
        with threadpool_limits(1):  # OpenMP threads spin-wait on a shared machine (as torch's do)
            return model.fit(features[train], lvm_g[train]).predict(features[test])
    x_train, x_test = _impute_columns(features[train], features[test])
    return LinearRegression().fit(x_train, lvm_g[train]).predict(x_test)


@dataclass(frozen=True)
class LvmAiConfig:
    """LVM-AI-like CNN: strided Conv1d stages on the 10 s ECG, global pooling, + age/sex/BMI."""

    channels: int = 16
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self) -> "LvmAiNet":
        return LvmAiNet(self)


class LvmAiNet(nn.Module):
    """Same call signature as ElvMassNet: ``(ecg, demographics, parameters) -> lvm_g``; uses age, sex, BMI only."""

    def __init__(self, config: LvmAiConfig = LvmAiConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        stages, n_in = [], 12
        for kernel, stride in ((16, 4), (9, 4), (9, 4), (5, 2)):
            stages += [nn.Conv1d(n_in, c, kernel, stride=stride, padding=kernel // 2), nn.BatchNorm1d(c), nn.ReLU()]
            n_in = c
        self.cnn = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Linear(c + 3, 32), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(32, 1))
        self.register_buffer("ecg_scale", torch.ones(1, 12, 1))
        self.register_buffer("demo_mean", torch.zeros(3))
        self.register_buffer("demo_std", torch.ones(3))
        self.register_buffer("target_mean", torch.zeros(1))
        self.register_buffer("target_std", torch.ones(1))

    @staticmethod
    def _age_sex_bmi(demographics: torch.Tensor) -> torch.Tensor:
        age, sex, height, weight = (demographics[:, DEMOGRAPHIC_COLUMN[name]] for name in DEMOGRAPHIC_FEATURES)
        return torch.stack([age, sex, weight / (height / 100.0) ** 2], dim=1)

    def fit_normalization(self, ecg: np.ndarray, demographics: np.ndarray, parameters: np.ndarray,
                          lvm_g: np.ndarray) -> None:
        scale = np.sqrt(np.mean(np.square(ecg, dtype=np.float64), axis=(0, 2))).reshape(1, 12, 1)
        self.ecg_scale.copy_(torch.as_tensor(np.maximum(scale, 1e-3), dtype=torch.float32))
        asb = self._age_sex_bmi(torch.as_tensor(demographics, dtype=torch.float32))
        self.demo_mean.copy_(asb.mean(0))
        self.demo_std.copy_(asb.std(0).clamp_min(1e-3))
        self.target_mean.fill_(float(np.mean(lvm_g)))
        self.target_std.fill_(max(float(np.std(lvm_g)), 1e-3))

    def forward(self, ecg: torch.Tensor, demographics: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        h = self.cnn(ecg / self.ecg_scale).mean(dim=2)
        asb = (self._age_sex_bmi(demographics) - self.demo_mean) / self.demo_std
        return self.head(torch.cat([h, asb], dim=1)) * self.target_std + self.target_mean


def run_baselines(dataset: EcgDataset, *, names: tuple[str, ...] = BASELINES, n_folds: int = 5, seed: int = 0,
                  cnn_epochs: int = 40, workers: int = 2, thresholds: LvhThresholds = LvhThresholds(),
                  noise_floor_mae: float | None = None, progress: bool = True, log=None) -> dict:
    """Every baseline on the paper's folds: ``{name: {"folds": [...], "summary": {...}, "prediction": array}}``."""
    from training.trainer import TrainConfig, cross_validate

    folds = paper_folds(dataset.lvm_g, n_folds)
    tabular = {"ecg_ai_gbt": ecg_ai_features, "voltage_linear": lambda d: np.column_stack(
        [voltage_criteria(d), demographic_features(d)]), "demographics_linear": demographic_features}
    results = {}
    for name in names:
        if name == "lvm_ai_cnn":
            cv = cross_validate(dataset, LvmAiConfig(), TrainConfig(input_mode="full", epochs=cnn_epochs, seed=seed),
                                n_folds=n_folds, train_final=False, workers=workers, thresholds=thresholds,
                                noise_floor_mae=noise_floor_mae, log=log, progress=progress)
            results[name] = {"folds": cv.fold_metrics, "summary": cv.summary, "prediction": cv.prediction}
            continue
        features = tabular[name](dataset)
        prediction = np.full(len(dataset), np.nan)
        fold_metrics = []
        for k in range(n_folds):
            train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            prediction[test] = fit_predict_tabular(name, features, dataset.lvm_g, train, test, seed)
            fold_metrics.append({"fold": k, **score_fold(dataset.lvm_g[test], prediction[test],
                                                         dataset.demographics[test], thresholds, noise_floor_mae)})
        results[name] = {"folds": fold_metrics, "summary": summarize_folds(fold_metrics), "prediction": prediction}
    return results


