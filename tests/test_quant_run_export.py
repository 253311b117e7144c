"""Reading an exported run for ``elvmass quantize``: clear errors, provenance, the command's refusals."""

from __future__ import annotations

import json

import pytest

from elvmass.cli import main
from quantization.run_export import RunExportError, read_run_export


def write_run(tmp_path, export: dict, files=("model.onnx",), config: dict | None = None):
    run = tmp_path / "run"
    run.mkdir(parents=True)
    (run / "export.json").write_text(json.dumps(export))
    for name in files:
        (run / name).write_bytes(b"onnx")
    if config is not None:
        (run / "config.json").write_text(json.dumps(config))
    return run


def test_missing_export_json_names_the_command_to_run(tmp_path):
    with pytest.raises(RunExportError, match="run 'elvmass export"):
        read_run_export(tmp_path)


def test_malformed_export_json_is_refused(tmp_path):
    run = write_run(tmp_path, {})
    (run / "export.json").write_text("{not json")
    with pytest.raises(RunExportError, match="not valid JSON"):
        read_run_export(run)


def test_run_without_onnx_files_is_refused(tmp_path):
    with pytest.raises(RunExportError, match="no fp32 ONNX model"):
        read_run_export(write_run(tmp_path, {"model_files": {"combined": "model.onnx"}}, files=()))


def test_model_files_labels_and_provenance_from_the_export(tmp_path):
    export = {"model_files": {"male": "model_male.onnx", "female": "model_female.onnx"},
              "training_data": "synthetic cohort seed 0, n = 1459", "lead_grouping": "electrical",
              "features": "ecg+demo+params", "data_hash": "0123456789abcdef"}
    run = read_run_export(write_run(tmp_path, export, files=("model_male.onnx", "model_female.onnx"),
                                    config={"labels": "/data/cohort/labels.csv", "train": {"seed": 0}}))
    assert sorted(run.onnx_files) == ["female", "male"]
    assert str(run.labels_path) == "/data/cohort/labels.csv"
    assert run.model_id == "elvmass-electrical-ecg_demo_params-01234567"
    assert run.training_description == "synthetic cohort seed 0, n = 1459; not clinically validated"


def test_training_description_from_a_dict_keeps_the_disclaimer_once(tmp_path):
    export = {"training_data": {"description": "synthetic cohort", "seed": 0, "n": 1459}}
    run = read_run_export(write_run(tmp_path, export))
    assert run.training_description == "synthetic cohort, seed 0, n = 1459; not clinically validated"
    export = {"training_data": "site data; not clinically validated"}
    assert read_run_export(write_run(tmp_path / "b", export)).training_description.count("not clinically") == 1


def test_quantize_command_reports_a_missing_run_cleanly(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "nowhere"), "--out", str(tmp_path / "bundle")]) == 2
    assert "export.json not found" in capsys.readouterr().err
