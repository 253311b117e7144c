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
                  "records/b.hea,150,60,M,170,70,S1\n"  # a second ECG of patient S1: allowed
                  "records/a.hea,150,60,M,170,70,S2\n"
                  "records/b.hea,abc,60,M,170,70,S2\n")
    with pytest.raises(LabelTableError) as caught:
        read_label_table(path)
    assert caught.value.problems == ["row 4: record 'records/a.hea' already listed in row 2",
                                     "row 5: lvm_g='abc' is not a number"]


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


def test_several_ecgs_of_one_patient_share_a_subject_id(tmp_path):
    path = _table(tmp_path, HEADER + ",subject_id\nrecords/a.hea,150,60,M,170,70,P1\nrecords/b.hea,152,60,M,170,70,P1\n")
    first, second = read_label_table(path)
    assert first.subject_id == second.subject_id == "P1" and not first.subject_id_from_file


def test_file_names_that_look_like_repeated_patients_warn_without_subject_id(tmp_path):
    from edge_runtime.formats.labels import RepeatedPatientWarning, patient_stem

    assert [patient_stem(s) for s in ("P12_1", "P12-ecg2", "A01_2019-03-04", "JS00001", "syn00012", "100")] == \
        ["P12", "P12", "A01", "JS00001", "syn00012", "100"]
    path = _table(tmp_path, HEADER + "\nrecords/P12_1.hea,150,60,M,170,70\nrecords/P12_2.hea,150,60,M,170,70\n",
                  records=("P12_1.hea", "P12_2.hea"))
    with pytest.warns(RepeatedPatientWarning, match="P12_1, P12_2"):
        entries = read_label_table(path)
    assert [e.subject_id for e in entries] == ["P12_1", "P12_2"] and entries[0].subject_id_from_file
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # distinct patients: no warning
        (tmp_path / "x").mkdir()
        read_label_table(_table(tmp_path / "x", HEADER + "\nrecords/a.hea,150,60,M,170,70\nrecords/b.hea,150,60,M,170,70\n"))


def test_same_file_stem_in_two_folders_needs_a_subject_id(tmp_path):
    for folder in ("site1", "site2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "001.hea").write_text("stub\n")
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "\nsite1/001.hea,150,60,M,170,70\nsite2/001.hea,150,60,M,170,70\n")
    with pytest.raises(LabelTableError, match="from the file name.*give subject_id"):
        read_label_table(path)


def test_closest_ecg_rule_keeps_one_ecg_per_lv_mass_measurement(tmp_path):
    names = ("e1.hea", "e2.hea", "e3.hea", "e4.hea", "e5.hea")
    path = _table(tmp_path, HEADER + ",subject_id,ecg_time,lvm_time\n"
                  "records/e1.hea,150,60,M,170,70,P1,2020-01-01,2020-03-01\n"
                  "records/e2.hea,150,60,M,170,70,P1,2020-02-20T10:00,2020-03-01\n"  # 9 days before: kept
                  "records/e3.hea,150,60,M,170,70,P1,2020-03-15,2020-03-01\n"
                  "records/e4.hea,170,62,M,170,70,P1,2022-05-01,2022-05-03\n"  # a second CT of P1: its own ECG
                  "records/e5.hea,99,50,F,160,60,P2,2021-01-01,2021-01-01\n", records=names)
    assert len(read_label_table(path)) == 5  # the rule is an option
    kept = read_label_table(path, closest_ecg=True)
    assert [e.record_path.name for e in kept] == ["e2.hea", "e4.hea", "e5.hea"]
    assert kept[0].ecg_time.day == 20 and kept[0].lvm_time.month == 3


def test_closest_ecg_rule_names_missing_times_and_conflicting_masses(tmp_path):
    path = _table(tmp_path, HEADER + ",subject_id,ecg_time,lvm_time\n"
                  "records/a.hea,150,60,M,170,70,P1,2020-01-01,2020-01-02\n"
                  "records/b.hea,151,60,M,170,70,P1,2020-01-03,2020-01-02\n")
    with pytest.raises(LabelTableError, match="row 3: LV mass 151 g differs from row 2"):
        read_label_table(path, closest_ecg=True)
    path = _table(tmp_path, HEADER + ",ecg_time\nrecords/a.hea,150,60,M,170,70,yesterday\n")
    with pytest.raises(LabelTableError, match="ecg_time='yesterday' is not an ISO 8601"):
        read_label_table(path)
    path = _table(tmp_path, HEADER + "\nrecords/a.hea,150,60,M,170,70\n")
    with pytest.raises(LabelTableError, match="closest-ECG rule needs subject_id, ecg_time, lvm_time"):
        read_label_table(path, closest_ecg=True)
