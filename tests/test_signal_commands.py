"""``elvmass beats`` and ``elvmass bench-signal`` end to end."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from conftest import shared_path

from edge_runtime.assets import LUDB_ANNOTATED_RECORD, PTBXL_RECORD, RECORDS_DIR
from elvmass.cli import main
from evaluation.scoring import wave_boundaries


def beats_json(path: Path, capsys) -> dict:
    assert main(["beats", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_beats_json_has_exactly_the_agreed_keys(capsys):
    out = beats_json(PTBXL_RECORD, capsys)
    assert list(out) == ["fs", "r_peaks", "qrs_onset", "qrs_offset", "flags", "parameters"]
    assert list(out["parameters"]) == ["qrs_ms", "p_axis", "r_axis", "t_axis"]
    assert out["fs"] == 500.0 and out["flags"] == []
    assert 10 <= len(out["r_peaks"]) <= 15
    assert len(out["qrs_onset"]) == len(out["qrs_offset"]) == len(out["r_peaks"])
    assert all(isinstance(r, int) and 0 <= r < 5000 for r in out["r_peaks"])
    assert all(math.isfinite(v) for v in out["parameters"].values())


def test_beats_r_peaks_are_in_record_time(capsys):
    import wfdb  # lazy: heavy

    out = beats_json(LUDB_ANNOTATED_RECORD, capsys)
    ann = wfdb.rdann(str(LUDB_ANNOTATED_RECORD.with_suffix("")), "ii")
    reference = wave_boundaries(ann.sample, ann.symbol)
    for onset, peak, offset in reference:
        nearest = min(out["r_peaks"], key=lambda r: abs(r - peak))
        assert onset - 5 <= nearest <= offset + 5


def test_beats_text_and_errors(capsys):
    assert main(["beats", str(PTBXL_RECORD)]) == 0
    text = capsys.readouterr().out
    assert "r_peak" in text and "qrs_ms=" in text
    assert main(["beats", "/nonexistent/record.hea"]) == 1
    assert "beats" in capsys.readouterr().err


@pytest.mark.shared
def test_beats_on_two_lead_record(capsys):
    out = beats_json(shared_path("cpsc2021", "data_21_7.hea"), capsys)
    assert out["fs"] == 200.0 and len(out["r_peaks"]) > 50
    assert out["parameters"]["r_axis"] is None
    assert "no_delineation" in [f["name"] for f in out["flags"]]


@pytest.mark.slow
def test_bench_signal_on_bundled_records(tmp_path, capsys):
    # A miniature data folder from the bundled records: LUDB delineation + throughput sections.
    (tmp_path / "ludb" / "data").mkdir(parents=True)
    (tmp_path / "cinc2021").mkdir()
    for file in RECORDS_DIR.glob("ludb_1.*"):
        os.symlink(file, tmp_path / "ludb" / "data" / file.name)
    for stem in ("E07505", "HR06004"):
        for file in RECORDS_DIR.glob(f"{stem}.*"):
            os.symlink(file, tmp_path / "cinc2021" / file.name)
    assert main(["bench-signal", "--data", str(tmp_path), "--no-reference"]) == 0
    text = capsys.readouterr().out
    assert "LUDB lead II beat detection" in text and "ours (12-lead)" in text
    assert "x real time" in text
