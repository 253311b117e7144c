"""``elvmass info`` on each supported format, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from edge_runtime.assets import LUDB_ANNOTATED_RECORD, PTBXL_RECORD
from edge_runtime.formats.hl7_aecg import write_hl7_aecg
from edge_runtime.formats.muse_xml import write_muse_xml
from edge_runtime.formats.tabular import write_csv, write_npz
from edge_runtime.formats.wfdb_reader import read_wfdb

RUN_CLI = "import sys; from elvmass.cli import main; sys.exit(main(sys.argv[1:]))"


def elvmass(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", RUN_CLI, *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("info")
    record = read_wfdb(PTBXL_RECORD, backend="native").to_standard_12()
    record.measurements.update(qrs_ms=94.0, p_axis=50.0, r_axis=70.0, t_axis=45.0)
    np.save(folder / "ecg.npy", record.signals_mv)
    return {
        "wfdb": PTBXL_RECORD,
        "muse-xml": write_muse_xml(record, folder / "muse.xml"),
        "hl7-aecg": write_hl7_aecg(record, folder / "hl7.xml"),
        "csv": write_csv(record, folder / "ecg.csv"),
        "npz": write_npz(record, folder / "ecg.npz"),
        "npy": folder / "ecg.npy",
    }


@pytest.mark.parametrize("kind", ["wfdb", "muse-xml", "hl7-aecg", "csv", "npz"])
def test_info_prints_a_summary_for_each_format(files, kind):
    result = elvmass("info", files[kind])
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["format"] == {"npz": "npy"}.get(kind, kind)
    assert lines["rate"].startswith("500 Hz, 5000 samples, 10 s")
    assert lines["leads"] == "12: I II III aVR aVL aVF V1 V2 V3 V4 V5 V6  (standard 12-lead)"
    assert lines["amplitude"].startswith("peak-to-peak ")
    if kind in ("wfdb", "muse-xml"):
        assert lines["patient"] == "age_years=28, sex=M, height_cm=177, weight_kg=76, bsa_m2=1.933"
    if kind == "muse-xml":
        assert lines["measured"] == "qrs_ms=94, p_axis=50, r_axis=70, t_axis=45"


def test_info_npy_needs_rate_and_lead_names(files):
    result = elvmass("info", files["npy"])
    assert result.returncode == 1 and "pass fs and lead_names" in result.stderr
    result = elvmass("info", files["npy"], "--fs", "500", "--lead-names", "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["fs_hz"] == 500.0 and summary["standard_12_lead"] and summary["amplitudes_normalized"] is False


def test_info_json_flags_ludb_normalized_amplitudes():
    summary = json.loads(elvmass("info", LUDB_ANNOTATED_RECORD, "--json").stdout)
    assert summary["amplitudes_normalized"] is True
    assert set(summary["peak_to_peak_mv"].values()) == {1.0}
    assert "amplitudes appear normalized per lead; voltages are not physiological" in summary["notes"]


def test_info_reports_bad_files_clearly(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<RestingECG><Waveform>")
    result = elvmass("info", broken)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"elvmass info: {broken}: malformed XML")
    assert "Traceback" not in result.stderr
    result = elvmass("info", tmp_path / "missing.hea")
    assert result.returncode == 1 and result.stderr.strip().endswith("missing.hea: file not found")
    (tmp_path / "ecg.edf").write_bytes(b"0       ")
    result = elvmass("info", tmp_path / "ecg.edf")
    assert result.returncode == 1 and "unknown ECG file type" in result.stderr


def test_info_renders_nothing_heavy(files):
    code = (
        "import sys\nfrom elvmass.cli import main\n"
        + "".join(f"main(['info', {str(files[kind])!r}])\n" for kind in ("wfdb", "muse-xml", "hl7-aecg", "csv", "npz"))
        + "print(sorted(m for m in ('wfdb', 'pandas', 'matplotlib', 'torch') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
