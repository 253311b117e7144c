"""The committed demo bundle (edge_runtime/assets/model): verified, small, and every artifact runs.

The TFLite files are run with the LiteRT interpreter (``ai-edge-litert``, the ``litert`` extra,
installed in CI); the ONNX files with onnxruntime. Inputs are real beats of the bundled records
through the device's own preprocessing.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
from edge_runtime.contract import SEX_COLUMN, model_inputs
from edge_runtime.inference import load_predictor
from edge_runtime.formats import read_record
from edge_runtime.model_bundle import DEMO_BUNDLE_DIR, load_bundle
from edge_runtime.preprocess import analyze_record
from quantization import verify



@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


@pytest.fixture(scope="module")
def real_inputs(bundle):
    beats, demo, params = [], [], []
    for path in (PTBXL_RECORD, CINC_LVH_RECORD):
        record = read_record(path)
        analysis = analyze_record(record)
        row_demo, row_params, _ = model_inputs(record.patient, analysis.parameters)
        assert not np.isnan(row_demo[SEX_COLUMN])  # both bundled records name the sex
        beats.append(analysis.beats)
        demo.append(np.repeat(row_demo[None, :], len(analysis.beats), axis=0))
        params.append(np.repeat(row_params[None, :], len(analysis.beats), axis=0))
    return np.concatenate(beats).astype(np.float32), np.concatenate(demo), np.concatenate(params)


def test_demo_bundle_loads_with_this_runtimes_preprocessing(bundle):
    assert bundle.path == DEMO_BUNDLE_DIR
    manifest = bundle.manifest
    assert "not clinically validated" in manifest.training_data
    assert manifest.preprocessing["fs"] == 500.0 and manifest.beat_length == 400
    assert set(manifest.files) == {m.file for m in manifest.models}
    assert manifest.export is not None and manifest.export.model_id == manifest.model_id


def test_demo_bundle_has_every_artifact_and_each_is_small(bundle):
    kinds = {(m.format, m.precision) for m in bundle.models}
    assert kinds == {("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8")}
    for model in bundle.models:
        assert model.path.stat().st_size < 1_000_000, model.path.name
        if model.precision == "int8":
            fp32 = bundle.select(model.format, "fp32", model.variant)
            assert model.path.stat().st_size < fp32.path.stat().st_size


def test_recorded_verification_meets_the_thresholds(bundle):
    verification = bundle.manifest.verification
    assert verification["parity_max_abs_diff_g"], "no parity recorded"
    for name, diff in verification["parity_max_abs_diff_g"].items():
        assert diff < verify.PARITY_MAX_G, name
    scores = verification["int8_vs_fp32"]
    assert {s["artifact"].rsplit(".", 1)[1] for s in scores} == {"onnx", "tflite"}
    for score in scores:
        assert score["mae_change_g"] <= verify.MAE_CHANGE_MAX_G, score
        assert score["lvh_agreement"] >= verify.LVH_AGREEMENT_MIN, score


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnxruntime_and_litert_agree_on_real_beats(bundle, real_inputs, precision):
    beats, demo, params = real_inputs
    onnx_g = load_predictor(bundle, backend="onnxruntime", precision=precision).predict(beats, demo, params)
    litert_g = load_predictor(bundle, backend="litert", precision=precision).predict(beats, demo, params)
    assert np.isfinite(onnx_g).all() and np.isfinite(litert_g).all()
    assert ((onnx_g > 20) & (onnx_g < 600)).all()  # grams of a human heart, not a scaling slip
    # fp32: the same graph, so parity. INT8: two quantizers, each within its own recorded max |diff|
    # of fp32 on the held-out rows, so at most the sum of the two apart.
    if precision == "fp32":
        limit = verify.PARITY_MAX_G
    else:
        limit = sum(s["max_abs_diff_g"] for s in bundle.manifest.verification["int8_vs_fp32"])
    assert np.max(np.abs(onnx_g - litert_g)) < limit


@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_int8_stays_close_to_fp32_on_real_beats(bundle, real_inputs, backend):
    beats, demo, params = real_inputs
    fp32 = load_predictor(bundle, backend=backend, precision="fp32").predict(beats, demo, params)
    int8 = load_predictor(bundle, backend=backend, precision="int8").predict(beats, demo, params)
    recorded = {s["artifact"]: s for s in bundle.manifest.verification["int8_vs_fp32"]}
    artifact = bundle.select("onnx" if backend == "onnxruntime" else "tflite", "int8").path.name
    # Real beats of the bundled records: the INT8 error stays within what the held-out rows showed.
    assert np.max(np.abs(int8 - fp32)) <= recorded[artifact]["max_abs_diff_g"]
