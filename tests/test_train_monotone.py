"""The voltage-monotonicity penalty (training/monotone.py): its pairs, its hinge, and that training with it
makes a network answer raised voltage with a raised estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from training.monotone import (GAIN_RANGE, SLOPE_EVERY_LEAD_G, SLOPE_QRS_G, monotone_hinge,  # noqa: E402
                               qrs_gain_profile, raised_voltage)


def test_qrs_profile_is_one_inside_the_widened_qrs_tapers_and_is_zero_elsewhere():
    profile = qrs_gain_profile(np.array([100, 150]), np.array([150, 190]), 400, fs=500.0)
    assert profile.shape == (2, 400) and profile.dtype == np.float32
    assert np.all(profile[0, 95:156] == 1.0)  # 10 ms = 5 samples of widening on each side
    assert np.all(profile[0, :90] == 0.0) and np.all(profile[0, 161:] == 0.0)
    ramp = profile[0, 90:96]
    assert np.all(np.diff(ramp) > 0) and 0.0 < ramp[3] < 1.0  # a cosine taper, not a step
    assert np.all(profile[1, 145:196] == 1.0) and profile[1, 100] == 0.0


def test_raised_voltage_scales_every_lead_on_even_rows_and_only_the_qrs_on_odd_rows():
    rng = np.random.default_rng(0)
    beats = torch.from_numpy(rng.normal(size=(4, 12, 400)).astype(np.float32))
    profile = torch.from_numpy(qrs_gain_profile(np.full(4, 150), np.full(4, 200), 400, fs=500.0))
    raised, margin = raised_voltage(beats, profile, np.random.default_rng(1))
    gains = (raised[:, :, 170] / beats[:, :, 170]).numpy()  # inside every QRS
    assert np.allclose(gains, gains[:, :1], rtol=1e-5)  # one gain per row, all leads
    assert np.all((gains >= GAIN_RANGE[0] - 1e-5) & (gains <= GAIN_RANGE[1] + 1e-5))
    assert torch.allclose(raised[0], beats[0] * float(gains[0, 0]))  # even row: every sample
    assert torch.equal(raised[1, :, :130], beats[1, :, :130]) and torch.equal(raised[1, :, 220:], beats[1, :, 220:])
    slopes = np.array([SLOPE_EVERY_LEAD_G, SLOPE_QRS_G, SLOPE_EVERY_LEAD_G, SLOPE_QRS_G])
    assert margin.numpy() == pytest.approx(slopes * np.log(gains[:, 0]), rel=1e-4)


def test_hinge_is_zero_once_the_estimate_rises_by_the_margin():
    estimate = torch.tensor([100.0, 100.0, 100.0])
    penalty = monotone_hinge(estimate, torch.tensor([99.0, 100.5, 103.0]), torch.tensor([1.0, 1.0, 1.0]))
    assert penalty.tolist() == pytest.approx([2.0, 0.5, 0.0])


def test_training_with_the_penalty_makes_raised_voltage_raise_the_estimate(tiny_cohort, trained_run):
    """Same data, seed and epochs with and without the penalty: with it (weight 20) the estimate of a raised beat
    exceeds the plain beat's on >= 90 % of the training beats (measured: 100 %); without it 11 % here."""
    from training.dataset import build_dataset
    from training.model import ModelConfig
    from training.trainer import TrainConfig, impute, train_model

    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    fit, val = ds.subset(np.arange(0, len(ds) - 8)), ds.subset(np.arange(len(ds) - 8, len(ds)))

    def share_rising(weight: float) -> float:
        model, medians, _, _ = train_model(ModelConfig(), TrainConfig(epochs=6, seed=3, monotone_weight=weight), fit, val)
        demo, params = impute(fit.demographics, fit.parameters, medians)
        beats = torch.from_numpy(fit.beats)
        profile = torch.from_numpy(qrs_gain_profile(fit.qrs_onset, fit.qrs_offset, beats.shape[2], fit.preprocess.fs))
        raised, margin = raised_voltage(beats, profile, np.random.default_rng(5))
        with torch.no_grad():
            args = torch.from_numpy(demo), torch.from_numpy(params)
            change = (model(raised, *args) - model(beats, *args)).squeeze(1)
        return float(torch.mean((change > 0).float()))

    with_penalty, without = share_rising(20.0), share_rising(0.0)
    assert with_penalty >= 0.9 and with_penalty > without
    with pytest.raises(ValueError, match="monotone_weight"):
        TrainConfig(monotone_weight=-1.0)
    with pytest.raises(ValueError, match="monotone_weight"):
        TrainConfig(monotone_weight=1.0, input_mode="full")
    assert math.isfinite(SLOPE_EVERY_LEAD_G) and SLOPE_QRS_G > SLOPE_EVERY_LEAD_G
