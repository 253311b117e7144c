"""edge_runtime.inference on tiny ONNX bundles: numbers, imputation, sex routing, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import BEAT_LENGTH, IMPUTATION, PREPROCESSING, linear_onnx, make_bundle
from edge_runtime.contract import impute
from edge_runtime.inference import InferenceError, load_predictor
from edge_runtime.model_bundle import BundleError, load_bundle


def expected_lvm(weights, beats, demographics, parameters):
    flat = beats.reshape(len(beats), -1)
    return (flat @ weights["w_beat"] + demographics @ weights["w_demo"] + parameters @ weights["w_params"]
            + weights["bias"]).ravel()


def inputs(n: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    beats = rng.normal(0, 0.5, (n, 12, BEAT_LENGTH)).astype(np.float32)
    demographics = np.column_stack([rng.uniform(30, 80, n), rng.integers(0, 2, n), rng.uniform(150, 190, n),
                                    rng.uniform(50, 100, n)]).astype(np.float32)
    parameters = np.column_stack([rng.uniform(80, 120, n), rng.uniform(0, 80, n), rng.uniform(-30, 90, n),
                                  rng.uniform(0, 80, n)]).astype(np.float32)
    return beats, demographics, parameters


def predictor(tmp_path, variants=("combined",)):
    bundle = load_bundle(make_bundle(tmp_path, variants), preprocessing=PREPROCESSING)
    return load_predictor(bundle, backend="auto", precision="fp32")


def test_onnxruntime_prediction_matches_the_model_arithmetic(tmp_path):
    p = predictor(tmp_path)
    assert p.backend == "onnxruntime"
    _, weights = linear_onnx(tmp_path / "again.onnx", seed=0)
    beats, demographics, parameters = inputs()
    lvm_g = p.predict(beats, demographics, parameters)
    assert lvm_g.shape == (5,) and lvm_g.dtype == np.float32
    np.testing.assert_allclose(lvm_g, expected_lvm(weights, beats, demographics, parameters), rtol=1e-5, atol=1e-3)


def test_missing_values_are_imputed_with_the_manifest_medians(tmp_path):
    p = predictor(tmp_path)
    beats, demographics, parameters = inputs()
    holes_demo, holes_params = demographics.copy(), parameters.copy()
    holes_demo[0, 0] = np.nan
    holes_params[2, 3] = np.nan
    filled_demo, filled_params = demographics.copy(), parameters.copy()
    filled_demo[0, 0] = IMPUTATION["age_years"]
    filled_params[2, 3] = IMPUTATION["t_axis"]
    np.testing.assert_allclose(p.predict(beats, holes_demo, holes_params),
                               p.predict(beats, filled_demo, filled_params), rtol=1e-6)


def test_impute_leaves_sex_unknown_and_refuses_infinity(tmp_path):
    values = np.array([[np.nan, np.nan, 170.0, 70.0]], dtype=np.float32)
    params = np.array([[np.nan, 10.0, 20.0, 30.0]], dtype=np.float32)
    out, out_params = impute(values, params, IMPUTATION)
    assert out[0, 0] == IMPUTATION["age_years"] and np.isnan(out[0, 1]) and out_params[0, 0] == IMPUTATION["qrs_ms"]
    assert np.isnan(values[0, 0]) and np.isnan(params[0, 0])  # inputs untouched
    with pytest.raises(ValueError, match="infinite"):
        impute(np.array([[np.inf, 1, 170, 70]], dtype=np.float32), params, IMPUTATION)
    beats, demographics, parameters = inputs(n=1)
    demographics[0, 0] = np.inf
    with pytest.raises(InferenceError, match="infinite value among age_years"):
        predictor(tmp_path).predict(beats, demographics, parameters)


def test_unknown_sex_gives_an_error_not_a_guess(tmp_path):
    p = predictor(tmp_path)
    beats, demographics, parameters = inputs()
    demographics[1, 1] = np.nan
    with pytest.raises(InferenceError, match="sex is unknown"):
        p.predict(beats, demographics, parameters)
    demographics[1, 1] = 2.0
    with pytest.raises(InferenceError, match="sex must be 1"):
        p.predict(beats, demographics, parameters)


def test_sex_specific_bundle_routes_rows_by_sex(tmp_path):
    p = predictor(tmp_path, variants=("male", "female"))
    assert sorted(p.backends) == ["female", "male"]
    _, male_weights = linear_onnx(tmp_path / "m.onnx", seed=0)
    _, female_weights = linear_onnx(tmp_path / "f.onnx", seed=1)
    beats, demographics, parameters = inputs(n=6)
    demographics[:, 1] = [1, 0, 1, 0, 0, 1]
    lvm_g = p.predict(beats, demographics, parameters)
    male = demographics[:, 1] == 1
    np.testing.assert_allclose(lvm_g[male], expected_lvm(male_weights, beats[male], demographics[male], parameters[male]), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lvm_g[~male], expected_lvm(female_weights, beats[~male], demographics[~male], parameters[~male]), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("shape", [(2, 12, BEAT_LENGTH + 1), (2, 8, BEAT_LENGTH), (12, BEAT_LENGTH)])
def test_wrong_beat_shape_is_refused(tmp_path, shape):
    p = predictor(tmp_path)
    _, demographics, parameters = inputs(n=2)
    with pytest.raises(InferenceError, match="beats must have shape"):
        p.predict(np.zeros(shape, np.float32), demographics, parameters)


def test_non_finite_beat_and_wrong_feature_shapes_are_refused(tmp_path):
    p = predictor(tmp_path)
    beats, demographics, parameters = inputs(n=2)
    beats[0, 3, 7] = np.nan
    with pytest.raises(InferenceError, match="NaN or infinite samples"):
        p.predict(beats, demographics, parameters)
    with pytest.raises(InferenceError, match="demographics must have shape"):
        p.predict(inputs(n=2)[0], demographics[:, :3], parameters)
    with pytest.raises(InferenceError, match="parameters must have shape"):
        p.predict(inputs(n=2)[0], demographics, parameters[:1])


def test_absent_precision_or_backend_is_a_bundle_error(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path), preprocessing=PREPROCESSING)
    with pytest.raises(BundleError, match="no int8 model"):
        load_predictor(bundle, precision="int8")
    with pytest.raises(BundleError, match="no auto tflite/fp32 model"):
        load_predictor(bundle, backend="litert", precision="fp32")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_predictor(bundle, backend="tensorrt", precision="fp32")
