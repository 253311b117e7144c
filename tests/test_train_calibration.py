"""The exported interval half-width is the split-conformal quantile of out-of-fold residuals."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch")

from training.export import interval_calibration  # noqa: E402


def write_predictions(path, residuals):
    lines = ["subject_id,fold,lvm_g,lvm_g_predicted"]
    lines += [f"s{i},{i % 5},{100.0 + r:.3f},100.000" for i, r in enumerate(residuals)]
    path.write_text("\n".join(lines) + "\n")


def test_halfwidth_is_the_conformal_rank_of_absolute_residuals(tmp_path):
    residuals = [(-1) ** i * float(i) for i in range(1, 20)]  # |r| = 1..19, signs alternate
    write_predictions(tmp_path / "predictions.csv", residuals)
    calibration = interval_calibration(tmp_path, coverage=0.9)
    rank = math.ceil((19 + 1) * 0.9)  # the 18th smallest |residual|
    assert calibration.lvm_halfwidth_g == pytest.approx(float(rank))
    assert calibration.n_calibration == 19 and calibration.method == "split-conformal"
    assert calibration.coverage == 0.9


def test_run_without_predictions_has_no_calibration(tmp_path):
    assert interval_calibration(tmp_path) is None


def test_too_few_residuals_for_the_coverage_is_an_error(tmp_path):
    write_predictions(tmp_path / "predictions.csv", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="too few"):
        interval_calibration(tmp_path, coverage=0.9)
