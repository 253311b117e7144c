"""The cart formats through the commands a user runs: ``info``, ``analyze`` and training's record loader."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from edge_runtime.assets import PHILIPS_XML_RECORD, PTBXL_RECORD
from edge_runtime.formats.dicom_ecg import write_dicom_ecg
from edge_runtime.formats.labels import LabelEntry
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.preprocess import PreprocessConfig

pytest.importorskip("pydicom", reason="the dicom extra (pydicom) is part of dev")

RUN_CLI = "import sys; from elvmass.cli import main; sys.exit(main(sys.argv[1:]))"


def elvmass(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def dicom_file(tmp_path_factory):
    record = read_wfdb(PTBXL_RECORD, backend="native").to_standard_12()
    return write_dicom_ecg(record, tmp_path_factory.mktemp("dcm") / "HR06004.dcm")


def test_info_on_dicom_and_philips(dicom_file):
    for path, kind in ((dicom_file, "dicom-ecg"), (PHILIPS_XML_RECORD, "philips-xml")):
        result = elvmass("info", path, "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["format"] == kind and summary["standard_12_lead"]


def test_analyze_dicom_matches_the_original_record(dicom_file):
    reports = []
    for path in (PTBXL_RECORD, dicom_file):
        result = elvmass("analyze", path, "--json")
        assert result.returncode == 0, result.stderr
        reports.append(json.loads(result.stdout))
    original, from_dicom = reports
    assert from_dicom["estimate_status"] == original["estimate_status"]
    # 1 uV quantization of the DICOM copy moves the estimate by far less than a gram
    assert from_dicom["lvm_g"] == pytest.approx(original["lvm_g"], abs=0.5)


def test_analyze_philips_gives_a_report():
    result = elvmass("analyze", PHILIPS_XML_RECORD, "--age", "50", "--sex", "M", "--height", "178", "--weight", "82",
                     "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["estimate_status"] in ("ok", "outside_population", "no_estimate")
    assert report["n_beats"] >= 1 or report["estimate_status"] == "no_estimate"


def test_training_loader_reads_dicom_like_wfdb(dicom_file):
    dataset = pytest.importorskip("training.dataset", reason="training extra")

    patient = read_wfdb(PTBXL_RECORD, backend="native").patient
    rows = [dataset.analyze_entry(LabelEntry(path, 150.0, patient, {}, "s", 2), PreprocessConfig(), False)
            for path in (PTBXL_RECORD, dicom_file)]
    assert "error" not in rows[0] and "error" not in rows[1]
    np.testing.assert_allclose(rows[1]["beat"], rows[0]["beat"], atol=2e-3)


def test_info_on_unknown_xml_names_the_root(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text("<?xml version='1.0'?><MortaraECG/>")
    result = elvmass("info", path)
    assert result.returncode == 1 and "root element <MortaraECG>" in result.stderr
