"""Model bundle writer and loader: a bundle round-trips, and every kind of tampering is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.model_bundle import BundleError, load_bundle, preprocessing_mismatches
from quantization.bundle import BundleModel, write_bundle

BEAT_LENGTH = 40
PREPROCESSING = {"fs": 500.0, "highpass_hz": 0.5, "lowpass_hz": 40.0, "notch_hz": 50.0,
                 "beat_pre_ms": 30.0, "beat_post_ms": 50.0}
IMPUTATION = {"age_years": 60.0, "height_cm": 170.0, "weight_kg": 75.0,
              "qrs_ms": 95.0, "p_axis": 50.0, "r_axis": 40.0, "t_axis": 45.0}


def linear_onnx(path: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny ONNX model with the interface-5 inputs: lvm_g = beat.w_b + demo.w_d + params.w_p + b."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {
        "w_beat": rng.normal(0, 0.1, (12 * BEAT_LENGTH, 1)).astype(np.float32),
        "w_demo": np.array([[0.5], [20.0], [0.3], [0.8]], dtype=np.float32),
        "w_params": np.array([[0.4], [0.01], [0.02], [0.01]], dtype=np.float32),
        "bias": np.array([10.0], dtype=np.float32),
    }
    nodes = [
        helper.make_node("Flatten", ["beat"], ["beat_flat"], axis=1),
        helper.make_node("MatMul", ["beat_flat", "w_beat"], ["from_beat"]),
        helper.make_node("MatMul", ["demographics", "w_demo"], ["from_demo"]),
        helper.make_node("MatMul", ["parameters", "w_params"], ["from_params"]),
        helper.make_node("Sum", ["from_beat", "from_demo", "from_params", "bias"], ["lvm_g"]),
    ]
    graph = helper.make_graph(
        nodes, "linear_lvm",
        [helper.make_tensor_value_info("beat", TensorProto.FLOAT, ["batch", 12, BEAT_LENGTH]),
         helper.make_tensor_value_info("demographics", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("parameters", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("lvm_g", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, weights


def make_bundle(tmp_path: Path, variants: tuple[str, ...] = ("combined",)) -> Path:
    models = []
    for i, variant in enumerate(variants):
        source, _ = linear_onnx(tmp_path / f"src_{variant}.onnx", seed=i)
        models.append(BundleModel(source=source, file=f"{variant}_fp32.onnx", format="onnx", precision="fp32", variant=variant))
    out = tmp_path / "bundle"
    write_bundle(out, models, model_id="test-linear", training_data="unit-test weights; not clinically validated",
                 preprocessing=PREPROCESSING, imputation=IMPUTATION, beat_length=BEAT_LENGTH,
                 metrics={"cv_mae_g": 1.0})
    return out


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_written_bundle_loads_with_its_manifest(tmp_path):
    bundle = load_bundle(make_bundle(tmp_path), preprocessing=PREPROCESSING)
    assert bundle.model_id == "test-linear"
    assert bundle.lvh_thresholds_g_m2 == {"M": 72.0, "F": 55.0}
    assert bundle.select("onnx", "fp32").path.name == "combined_fp32.onnx"
    manifest = bundle.manifest
    assert manifest["inputs"]["beat"]["lead_order"][:3] == ["I", "II", "III"]
    assert manifest["inputs"]["demographics"]["features"] == ["age_years", "sex", "height_cm", "weight_kg"]
    assert manifest["output"]["units"] == "g"
    assert len(manifest["files"]["combined_fp32.onnx"]) == 64
    assert "not clinically validated" in manifest["training_data"]
    assert bundle.imputation["qrs_ms"] == 95.0


def test_writer_refuses_a_bundle_without_the_validation_disclaimer(tmp_path):
    source, _ = linear_onnx(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="not clinically validated"):
        write_bundle(tmp_path / "b", [BundleModel(source, "m.onnx", "onnx", "fp32")], model_id="x",
                     training_data="synthetic cohort", preprocessing=PREPROCESSING, imputation=IMPUTATION,
                     beat_length=BEAT_LENGTH)


def test_changed_model_file_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    model = bundle / "combined_fp32.onnx"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="combined_fp32.onnx has SHA-256 .* manifest says"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_missing_model_file_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "combined_fp32.onnx").unlink()
    with pytest.raises(BundleError, match="combined_fp32.onnx is listed in the manifest but missing"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_unlisted_file_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "extra.onnx").write_bytes(b"not hashed")
    with pytest.raises(BundleError, match="not covered by the manifest's hashes: extra.onnx"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_other_schema_version_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    edit_manifest(bundle, lambda m: m.update(schema_version=2))
    with pytest.raises(BundleError, match="schema version 2 is not supported"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


@pytest.mark.parametrize("text", ["{", "", "[1, 2]", "\xff\xfe"])
def test_malformed_manifest_is_refused(tmp_path, text):
    bundle = make_bundle(tmp_path)
    (bundle / "manifest.json").write_text(text, encoding="latin-1")
    with pytest.raises(BundleError, match="manifest.json"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_missing_manifest_and_missing_directory_are_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(bundle, preprocessing=PREPROCESSING)
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nowhere", preprocessing=PREPROCESSING)


def test_manifest_lacking_a_required_key_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    edit_manifest(bundle, lambda m: m.pop("imputation"))
    with pytest.raises(BundleError, match="lacks imputation"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_non_finite_imputation_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    edit_manifest(bundle, lambda m: m["imputation"].pop("t_axis"))
    with pytest.raises(BundleError, match="imputation value for t_axis"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_other_preprocessing_settings_are_refused_naming_each_difference(tmp_path):
    bundle = make_bundle(tmp_path)
    runtime = dict(PREPROCESSING, beat_pre_ms=20.0, lowpass_hz=100.0)
    with pytest.raises(BundleError, match=r"beat_pre_ms: bundle 30.0 != runtime 20.0; lowpass_hz: bundle 40.0 != runtime 100.0"):
        load_bundle(bundle, preprocessing=runtime)


def test_clinic_mains_notch_may_differ_only_above_the_low_pass(tmp_path):
    bundle = make_bundle(tmp_path)
    assert load_bundle(bundle, preprocessing=dict(PREPROCESSING, notch_hz=60.0)).preprocessing["notch_hz"] == 50.0
    with pytest.raises(BundleError, match="notch_hz: bundle 50.0 != runtime None"):
        load_bundle(bundle, preprocessing=dict(PREPROCESSING, notch_hz=None))
    with pytest.raises(BundleError, match="notch_hz: bundle 50.0 != runtime 30.0"):
        load_bundle(bundle, preprocessing=dict(PREPROCESSING, notch_hz=30.0))


def test_preprocessing_comparison_tolerates_json_round_trip_but_not_missing_keys():
    assert preprocessing_mismatches({"fs": 500, "notch_hz": None}, {"fs": 500.0, "notch_hz": None}) == []
    assert preprocessing_mismatches({"fs": 500.0}, {"fs": 500.0, "notch_hz": 50.0}) == [
        "notch_hz: missing in bundle (runtime uses 50.0)"]
    assert preprocessing_mismatches({"fs": 500.0, "x": 1}, {"fs": 500.0}) == [
        "x: bundle sets 1, unknown to this runtime"]
    assert preprocessing_mismatches({"notch_hz": None}, {"notch_hz": 50.0}) != []


def test_file_name_escaping_the_bundle_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    edit_manifest(bundle, lambda m: m["files"].update({"../outside.onnx": "0" * 64}))
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_loader_parses_no_pickle():
    source = (Path(__file__).resolve().parents[1] / "edge_runtime" / "model_bundle.py").read_text()
    assert "pickle" not in source.replace("no pickle", "").replace("No pickle", "")
    assert "torch.load" not in source and "np.load" not in source
