"""Model bundle writer and loader: a bundle round-trips, and every kind of tampering is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import BEAT_LENGTH, IMPUTATION, PREPROCESSING, linear_onnx, make_bundle
from edge_runtime.model_bundle import BundleError, load_bundle, preprocessing_mismatches
from quantization.bundle import BundleModel, write_bundle


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
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest["inputs"]["beat"]["lead_order"][:3] == ["I", "II", "III"]
    assert manifest["inputs"]["demographics"]["features"] == ["age_years", "sex", "height_cm", "weight_kg"]
    assert manifest["output"]["units"] == "g"
    assert len(manifest["files"]["combined_fp32.onnx"]) == 64
    assert "not clinically validated" in bundle.manifest.training_data
    assert bundle.imputation["qrs_ms"] == 95.0 and bundle.manifest.export is None


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
    edit_manifest(bundle, lambda m: m.update(schema_version=1))
    with pytest.raises(BundleError, match="field 'schema_version' is 1: this code reads version 2 only"):
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
    with pytest.raises(BundleError, match="field 'imputation' is missing"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_non_finite_imputation_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    edit_manifest(bundle, lambda m: m["imputation"].pop("t_axis"))
    with pytest.raises(BundleError, match="field 'imputation.t_axis' is missing"):
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
