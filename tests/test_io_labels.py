"""The label table (interface 2): valid tables load; each kind of bad row is named with its row."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_runtime.formats.labels import LabelEntry, LabelTableError, read_label_table
from edge_runtime.record import PatientContext

HEADER = "record,lvm_g,age_years,sex,height_cm,weight_kg"


def _table(tmp_path: Path, text: str, records=("a.hea", "b.hea")) -> Path:
    for name in records:
        (tmp_path / "records").mkdir(exist_ok=True)
        (tmp_path / "records" / name).write_text("stub header\n")
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_valid_table_with_optional_columns(tmp_path):
    path = _table(tmp_path, HEADER + ",subject_id,qrs_ms,p_axis,r_axis,t_axis,site_note\n"
                  "records/a.hea,152.5,63,M,178,82,S001,96,55,-10,40,anything\n"
                  "records/b.hea,98,,F,,,S002,,,,,\n")
    first, second = read_label_table(path)
    assert first == LabelEntry(tmp_path / "records/a.hea", 152.5, PatientContext(63.0, "M", 178.0, 82.0),
                               {"qrs_ms": 96.0, "p_axis": 55.0, "r_axis": -10.0, "t_axis": 40.0}, "S001", 2)
    assert second.patient == PatientContext(sex="F") and second.row == 3 and second.subject_id == "S002"
    assert set(second.parameters) == {"qrs_ms", "p_axis", "r_axis", "t_axis"}
    assert all(math.isnan(v) for v in second.parameters.values())


def test_subject_id_defaults_to_record_stem(tmp_path):
    path = _table(tmp_path, HEADER + "\nrecords/a.hea,150,60,M,170,70\n")
    assert read_label_table(path)[0].subject_id == "a"


def test_missing_column_names_row_one(tmp_path):
    path = _table(tmp_path, "record,age_years,sex,height_cm,weight_kg\nrecords/a.hea,60,M,170,70\n")
    with pytest.raises(LabelTableError, match=r"labels.csv: row 1: missing column\(s\) lvm_g"):
        read_label_table(path)


@pytest.mark.parametrize(
    "row, problem",
    [
        ("records/a.hea,heavy,60,M,170,70", "row 2: lvm_g='heavy' is not a number"),
        ("records/a.hea,,60,M,170,70", "row 2: lvm_g is empty"),
        ("records/a.hea,0,60,M,170,70", "row 2: lvm_g=0 outside"),
        ("records/a.hea,1500,60,M,170,70", "row 2: lvm_g=1500 outside"),
        ("records/a.hea,150,-3,M,170,70", "row 2: age_years=-3.0 outside"),
        ("records/a.hea,150,60,X,170,70", "row 2: sex='X'"),
        ("records/a.hea,150,60,M,17,70", "row 2: height_cm=17.0 outside"),
        ("records/a.hea,150,60,M,170,900", "row 2: weight_kg=900.0 outside"),
        ("records/a.hea,150,60,M,170,inf", "row 2: weight_kg='inf' is not finite"),
        ("records/missing.hea,150,60,M,170,70", "row 2: record file .*missing.hea not found"),
        ("records/a.hea,150,60,M,170,70,extra", "row 2: more cells"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, problem):
    path = _table(tmp_path, f"{HEADER}\n{row}\n")
    with pytest.raises(LabelTableError, match=problem):
        read_label_table(path)


def test_every_problem_is_listed_and_duplicates_found(tmp_path):
    path = _table(tmp_path, HEADER + ",subject_id\n"
                  "records/a.hea,150,60,M,170,70,S1\n"
                  "records/b.hea,150,60,M,170,70,S1\n"
                  "records/a.hea,abc,60,M,170,70,S2\n")
    with pytest.raises(LabelTableError) as caught:
        read_label_table(path)
    assert caught.value.problems == ["row 3: subject_id 'S1' already used in row 2", "row 4: lvm_g='abc' is not a number"]


def test_bad_parameter_value(tmp_path):
    path = _table(tmp_path, HEADER + ",qrs_ms\nrecords/a.hea,150,60,M,170,70,wide\n")
    with pytest.raises(LabelTableError, match="row 2: qrs_ms='wide'"):
        read_label_table(path)


def test_record_check_can_be_skipped_and_empty_table_refused(tmp_path):
    path = _table(tmp_path, HEADER + "\nelsewhere/x.hea,150,60,M,170,70\n", records=())
    assert read_label_table(path, require_records=False)[0].record_path == tmp_path / "elsewhere/x.hea"
    path.write_text(HEADER + "\n")
    with pytest.raises(LabelTableError, match="no data rows"):
        read_label_table(path)
