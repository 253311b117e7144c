"""The model contract end to end: one set of feature names, one imputer, one typed export/bundle spec.

A model trained for a few steps goes through ``elvmass export`` -> ``quantize`` -> the runtime, and the
runtime's number is the torch model's number on the inputs the contract builds. Bundles and exports
that break the spec (features in another order, an older version, an unknown key) are refused with
the field named.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import IMPUTATION, PREPROCESSING, REPO_ROOT, export_spec, make_bundle
from edge_runtime import contract
from edge_runtime.bundle_spec import (
    EXPORT_SPEC_VERSION,
    MANIFEST_SCHEMA_VERSION,
    BundleManifest,
    ExportSpec,
    InputSpec,
    SpecError,
)
from edge_runtime.config import ClinicConfig
from edge_runtime.formats import read_record
from edge_runtime.formats.labels import read_label_table
from edge_runtime.model_bundle import DEMO_BUNDLE_DIR, BundleError, load_bundle
from edge_runtime.preprocess import MEASURED_PARAMETERS
from edge_runtime.record import PatientContext
from edge_runtime.runtime.pipeline import Analyzer, analyze_file_record
from quantization.run_export import read_run_export
from quantization.upgrade_manifest import upgrade_v1


# --- the contract module ------------------------------------------------------------------------------

def test_model_inputs_follow_the_contract_order_and_name_what_is_unknown():
    patient = PatientContext(age_years=61.0, sex="F", height_cm=None, weight_kg=70.0)
    demo, params, missing = contract.model_inputs(patient, {"qrs_ms": 96.0, "p_axis": float("nan"), "r_axis": 12.0,
                                                            "t_axis": 40.0, "heart_rate_bpm": 70.0})
    assert demo.dtype == np.float32 and params.dtype == np.float32
    assert demo[contract.SEX_COLUMN] == 0.0 and demo[contract.DEMOGRAPHIC_COLUMN["age_years"]] == 61.0
    assert params.tolist()[0] == 96.0 and np.isnan(params[contract.MODEL_PARAMETERS.index("p_axis")])
    assert missing == ["height_cm", "p_axis"]
    _, _, missing = contract.model_inputs(PatientContext(), {})
    assert missing == list(contract.DEMOGRAPHIC_FEATURES + contract.MODEL_PARAMETERS)


def test_model_parameters_are_a_subset_of_what_the_signal_core_measures():
    assert set(contract.MODEL_PARAMETERS) < set(MEASURED_PARAMETERS)
    assert "sex" not in contract.IMPUTED_FEATURES and len(contract.IMPUTED_FEATURES) == 7


def test_impute_fills_everything_but_sex_and_refuses_gaps_it_cannot_fill():
    demo = np.array([[np.nan, np.nan, np.nan, 80.0]])
    params = np.array([[np.nan, 1.0, 2.0, np.nan]])
    filled_demo, filled_params = contract.impute(demo, params, IMPUTATION)
    assert np.isnan(filled_demo[0, contract.SEX_COLUMN])
    assert filled_demo[0].tolist()[2:] == [170.0, 80.0] and filled_params[0].tolist() == [95.0, 1.0, 2.0, 45.0]
    with pytest.raises(ValueError, match="t_axis is unknown .* no value"):
        contract.impute(demo, params, {k: v for k, v in IMPUTATION.items() if k != "t_axis"})
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        contract.impute(demo[:, :3], params, IMPUTATION)


def test_no_bare_column_index_into_demographics_outside_the_contract():
    # The sex column (and every other) is named through edge_runtime.contract, never a bare [:, 1].
    pattern = re.compile(r"\b(demographics|demo)\[:, *\d")
    offenders = []
    for package in ("training", "quantization", "edge_runtime", "evaluation"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# --- the bundle and export specification ----------------------------------------------------------------

def demo_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DEMO_BUNDLE_DIR, tmp_path / "demo", ignore=shutil.ignore_patterns("__pycache__")))


def edit(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_the_committed_demo_manifest_is_the_current_spec_written_as_the_writer_writes_it():
    text = (DEMO_BUNDLE_DIR / "manifest.json").read_text()
    manifest = BundleManifest.from_dict(json.loads(text))
    assert json.dumps(manifest.to_dict(), indent=2) + "\n" == text
    assert json.loads(text)["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert manifest.export.to_dict()["spec_version"] == EXPORT_SPEC_VERSION
    assert manifest.export.model_config["grouping"] == "electrical" and not manifest.export.sex_specific


@pytest.mark.parametrize("section", ["demographics", "parameters"])
def test_bundle_naming_features_in_another_order_is_refused(tmp_path, section):
    bundle = demo_copy(tmp_path)
    edit(bundle, lambda m: m["inputs"][section]["features"].reverse())
    with pytest.raises(BundleError, match=rf"field 'inputs.{section}.features' .*\(order matters"):
        load_bundle(bundle)


def test_bundle_with_another_lead_order_is_refused(tmp_path):
    bundle = demo_copy(tmp_path)
    edit(bundle, lambda m: m["inputs"]["beat"]["lead_order"].reverse())
    with pytest.raises(BundleError, match="field 'inputs.beat.lead_order'"):
        load_bundle(bundle)


def test_older_spec_versions_are_refused_naming_the_field(tmp_path):
    bundle = demo_copy(tmp_path)
    edit(bundle, lambda m: m.update(schema_version=1))
    with pytest.raises(BundleError, match="field 'schema_version' is 1: .*reads version 2 only .*upgrade_manifest"):
        load_bundle(bundle)
    edit(bundle, lambda m: m.update(schema_version=2) or m["export"].update(spec_version=0))
    with pytest.raises(BundleError, match=r"manifest.json \(export\): field 'spec_version' is 0"):
        load_bundle(bundle)


@pytest.mark.parametrize("where", ["top", "export", "calibration", "model entry"])
def test_unknown_keys_are_refused_naming_the_field(tmp_path, where):
    bundle = demo_copy(tmp_path)
    target = {"top": lambda m: m, "export": lambda m: m["export"], "calibration": lambda m: m["calibration"],
              "model entry": lambda m: m["models"][1]}[where]
    edit(bundle, lambda m: target(m).update(halfwidth_g=20.0))
    with pytest.raises(BundleError, match=r"field '(export\.|calibration\.|models\[1\]\.)?halfwidth_g' is not part"):
        load_bundle(bundle)


def test_missing_and_non_finite_values_are_refused_naming_the_field(tmp_path):
    bundle = make_bundle(tmp_path)
    edit(bundle, lambda m: m.pop("training_ranges"))
    with pytest.raises(BundleError, match="field 'training_ranges' is missing"):
        load_bundle(bundle, preprocessing=PREPROCESSING)
    (tmp_path / "b").mkdir()
    bundle = make_bundle(tmp_path / "b")
    edit(bundle, lambda m: m["imputation"].update(qrs_ms=float("nan")))
    with pytest.raises(BundleError, match="field 'imputation.qrs_ms' must be a finite number"):
        load_bundle(bundle, preprocessing=PREPROCESSING)


def test_manifest_must_agree_with_the_export_it_embeds(tmp_path):
    bundle = demo_copy(tmp_path)
    edit(bundle, lambda m: m["export"]["imputation"].update(qrs_ms=1.0))
    with pytest.raises(BundleError, match="field 'imputation' differs from the export"):
        load_bundle(bundle)


def test_export_spec_round_trips_and_names_the_first_bad_field():
    spec = export_spec()
    assert ExportSpec.from_dict(spec.to_dict()) == spec
    document = spec.to_dict()
    document["inputs"]["beat"]["length"] = 0
    with pytest.raises(SpecError, match="field 'inputs.beat.length' must be a positive integer") as caught:
        ExportSpec.from_dict(document)
    assert caught.value.field == "inputs.beat.length"
    assert InputSpec.from_dict(InputSpec(400).to_dict(), "x") == InputSpec(400)


def test_upgrade_refuses_a_manifest_that_is_not_schema_1():
    with pytest.raises(ValueError, match="schema_version is 2, not 1"):
        upgrade_v1(DEMO_BUNDLE_DIR)


# --- export -> bundle -> runtime on a model trained for a few steps -------------------------------------

@pytest.fixture(scope="module")
def exported_and_quantized(trained_run, tmp_path_factory):
    pytest.importorskip("onnx")
    from quantization.pipeline import quantize_run  # lazy: heavy (onnx, onnxruntime quantization)
    from training.export import export_run  # lazy: heavy (torch)

    run_dir, _ = trained_run
    work = tmp_path_factory.mktemp("round_trip")
    run_copy = Path(shutil.copytree(run_dir, work / "run"))
    spec = export_run(run_copy)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(work)  # the quantizer's dataset cache (runs/cache) goes here, not into the checkout
    try:
        result = quantize_run(read_run_export(run_copy), work / "bundle", tflite=False, log=lambda *_: None)
    finally:
        monkeypatch.undo()
    return run_copy, spec, result


def test_export_writes_the_spec_and_the_bundle_embeds_it(exported_and_quantized):
    run_dir, spec, result = exported_and_quantized
    written = json.loads((run_dir / "export.json").read_text())
    assert ExportSpec.from_dict(written) == spec and written["spec_version"] == EXPORT_SPEC_VERSION
    assert set(written["imputation"]) == set(contract.IMPUTED_FEATURES)
    manifest = load_bundle(result.bundle.path).manifest
    assert manifest.export == spec and manifest.model_id == spec.model_id
    assert manifest.imputation == spec.imputation and manifest.calibration == spec.calibration
    assert manifest.metrics["cv_mae_g"] == spec.metrics["cv_summary"]["mae_g"]["mean"]
    assert {(m.format, m.precision) for m in manifest.models} == {("onnx", "fp32"), ("onnx", "int8")}
    assert any("fold 0 of the paper's 5 folds" in note for note in result.notes)  # no holdout exists


def test_runtime_number_is_the_trained_models_number_on_the_contracts_inputs(exported_and_quantized, tiny_cohort):
    import torch  # lazy: heavy

    from training.export import load_models  # lazy: heavy (torch)

    run_dir, spec, result = exported_and_quantized
    models, medians = load_models(run_dir / "model.pt")
    assert medians == spec.imputation
    analyzer = Analyzer(ClinicConfig(), bundle_path=result.bundle.path, backend="onnxruntime", precision="fp32")
    checked = 0
    for entry in read_label_table(tiny_cohort / "labels.csv"):
        # One with every value known, one whose height the bundle has to impute.
        patient = entry.patient if checked == 0 else dataclasses.replace(entry.patient, height_cm=None)
        best, _ = analyze_file_record(analyzer, read_record(entry.record_path), patient)
        if best.report["lvm_g"] is None:
            continue
        beats = best.analysis.beats[best.estimate.beat_rows]
        demo, params, _ = contract.model_inputs(patient, best.analysis.parameters)
        demo, params = contract.impute(np.repeat(demo[None], len(beats), 0), np.repeat(params[None], len(beats), 0),
                                       medians)
        with torch.no_grad():
            expected = models["combined"](torch.from_numpy(beats), torch.from_numpy(demo), torch.from_numpy(params))
        assert best.report["lvm_g"] == pytest.approx(float(np.median(expected.numpy())), abs=0.06)
        assert best.report["model"]["id"] == spec.model_id
        checked += 1
        if checked == 2:
            break
    assert checked == 2
