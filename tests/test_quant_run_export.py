"""Reading an exported run for ``elvmass quantize``: the typed export spec, clear errors, the command's refusals."""

from __future__ import annotations

import json

import pytest

from conftest import export_spec
from elvmass.cli import main
from quantization.run_export import RunExportError, read_run_export


def write_run(tmp_path, export: dict, files=("model.onnx",)):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "export.json").write_text(json.dumps(export))
    for name in files:
        (run / name).write_bytes(b"onnx")
    return run


def test_missing_export_json_names_the_command_to_run(tmp_path):
    with pytest.raises(RunExportError, match="run 'elvmass export"):
        read_run_export(tmp_path)


def test_malformed_export_json_is_refused(tmp_path):
    run = write_run(tmp_path, {})
    (run / "export.json").write_text("{not json")
    with pytest.raises(RunExportError, match="not valid JSON"):
        read_run_export(run)


def test_run_without_its_onnx_files_is_refused(tmp_path):
    with pytest.raises(RunExportError, match="no fp32 ONNX model at .*model.onnx"):
        read_run_export(write_run(tmp_path, export_spec().to_dict(), files=()))


def test_model_files_labels_and_provenance_come_from_the_spec(tmp_path):
    spec = export_spec(model_files={"male": "model_male.onnx", "female": "model_female.onnx"})
    run = read_run_export(write_run(tmp_path, spec.to_dict(), files=("model_male.onnx", "model_female.onnx")))
    assert sorted(run.onnx_files) == ["female", "male"] and run.spec.sex_specific
    assert str(run.labels_path) == "/data/cohort/labels.csv"
    assert run.spec == spec and run.spec.model_id == "elvmass-electrical-ecg_demo_params-01234567"


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("model_id"), "model_id"),
    (lambda d: d.update(medians=d.pop("imputation")), "imputation"),  # an old alternative name is not guessed
    (lambda d: d.update(holdout=[]), "holdout"),
    (lambda d: d.update(spec_version=0), "spec_version"),
    (lambda d: d["inputs"]["parameters"].update(features=["p_axis", "qrs_ms", "r_axis", "t_axis"]),
     "inputs.parameters.features"),
    (lambda d: d.update(training_data="synthetic cohort"), "training_data"),
    (lambda d: d.update(model_files={"combined": "model.onnx", "male": "m.onnx"}), "model_files"),
])
def test_export_that_breaks_the_spec_is_refused_naming_the_field(tmp_path, change, field):
    document = export_spec().to_dict()
    change(document)
    with pytest.raises(RunExportError, match=f"field '{field}'"):
        read_run_export(write_run(tmp_path, document))


def test_quantize_command_reports_a_missing_run_cleanly(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "nowhere"), "--out", str(tmp_path / "bundle")]) == 2
    assert "export.json not found" in capsys.readouterr().err


def test_quantize_command_reports_a_broken_export_cleanly(tmp_path, capsys):
    document = export_spec().to_dict()
    document["inputs"]["demographics"]["features"] = ["sex", "age_years", "height_cm", "weight_kg"]
    run = write_run(tmp_path, document)
    assert main(["quantize", str(run), "--out", str(tmp_path / "bundle")]) == 2
    assert "field 'inputs.demographics.features'" in capsys.readouterr().err
