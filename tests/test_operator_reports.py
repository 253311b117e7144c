"""What the operator reads (issue 18): patient provenance and conflicts, the three-state verdict, the stored
row and its migration, the printable report, exit codes, clear one-line errors and plain-language texts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from conftest import REPO_ROOT
from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.config import ClinicConfig
from edge_runtime.flags import Flag
from edge_runtime.record import PatientContext
from edge_runtime.runtime.estimate import Estimate, ModelInfo, index_interval, three_state_verdict
from edge_runtime.runtime.patient import (
    PatientConflictError, operator_only, patient_from_operator, resolve_patient,
)
from edge_runtime.runtime.report import add_patient_provenance, build_report, summary_lines
from conftest import make_runtime_bundle

MODEL = ModelInfo("demo-1", "cd" * 32, interval_halfwidth_g=20.0, interval_coverage=0.9)
FILE_PATIENT = PatientContext(77.0, "F", None, None)  # what E07505's header says


def elvmass(*args: str, timeout: float = 180.0, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "elvmass", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_runtime_bundle(tmp_path_factory.mktemp("operator_bundle"))


# --- patient provenance -------------------------------------------------------------------------

def test_file_and_operator_values_each_keep_their_source():
    data = resolve_patient(patient_from_operator(height=160, weight=68, patient_id="P-1"), FILE_PATIENT)
    assert data.sources == {"age_years": "file", "sex": "file", "height_cm": "operator", "weight_kg": "operator"}
    assert data.patient.age_years == 77.0 and data.patient.sex == "F" and not data.conflicts
    # the same value on both sides (within rounding) is no conflict; the operator's entry is used
    same = resolve_patient(patient_from_operator(age=77.4, sex="female"), FILE_PATIENT)
    assert not same.conflicts and same.sources["sex"] == "operator"
    assert data.sources_after(["height_cm"]) == data.sources  # known values are never "imputed"
    assert operator_only(PatientContext(sex="M")).sources_after(["age_years"])["age_years"] == "imputed"


def test_conflict_is_refused_by_default_naming_both_values():
    entered = patient_from_operator(age=60, sex="M", height=175, weight=80)
    with pytest.raises(PatientConflictError) as refused:
        resolve_patient(entered, FILE_PATIENT)
    message = str(refused.value)
    assert "sex: file F, entered M" in message and "age: file 77 y, entered 60 y" in message
    assert "--prefer file" in message and "--prefer operator" in message
    by_file = resolve_patient(entered, FILE_PATIENT, prefer="file")
    assert by_file.patient.sex == "F" and by_file.sources["sex"] == "file" and by_file.sources["height_cm"] == "operator"
    by_operator = resolve_patient(entered, FILE_PATIENT, prefer="operator")
    assert by_operator.patient.sex == "M" and [c.field for c in by_operator.conflicts] == ["age_years", "sex"]


def test_report_carries_sources_bsa_and_a_prominent_conflict():
    data = resolve_patient(patient_from_operator(age=60, sex="M", height=175, weight=80), FILE_PATIENT,
                           prefer="operator")
    estimate = Estimate("ok", lvm_g=130.0, lvm_interval_g=(110.0, 150.0), n_beats=9, lvm_index_g_m2=66.0,
                        lvh=False, lvh_threshold_g_m2=72.0)
    report = add_patient_provenance(build_report(estimate, data.patient, MODEL, ClinicConfig()), data)
    assert report["patient_sources"]["sex"] == "operator" and report["patient"]["bsa_m2"] == pytest.approx(1.972, abs=1e-3)
    assert report["patient_conflicts"][0] == {"field": "age_years", "file": 77.0, "operator": 60.0, "used": "operator"}
    assert "patient_data_conflict" in {f["name"] for f in report["flags"]}
    lines = summary_lines(report)
    assert any(line.startswith("CONFLICT") and "sex: file F, entered M (used the entered value)" in line
               for line in lines)
    assert any("BSA 1.97 m2" in line and "sex M (operator)" in line for line in lines)
    json.dumps(report)


def test_analyze_refuses_a_conflict_then_prefer_decides(bundle_dir):
    args = ("analyze", str(CINC_LVH_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32", "--sex", "M",
            "--age", "60", "--height", "175", "--weight", "80")
    refused = elvmass(*args)
    assert refused.returncode == 2 and "sex: file F, entered M" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
    used = json.loads(elvmass(*args, "--prefer", "file", "--json").stdout)
    assert used["patient"]["sex"] == "F" and used["patient_sources"]["sex"] == "file"
    assert used["patient_conflicts"][1]["field"] == "sex" and used["patient_prefer"] == "file"


# --- three-state verdict -------------------------------------------------------------------------

def test_borderline_when_the_index_interval_spans_the_threshold():
    band = index_interval((84.0, 125.0), 1.74)
    assert band == pytest.approx((48.3, 71.8), abs=0.1)
    assert three_state_verdict(60.0, band, 55.0) == "borderline"
    assert three_state_verdict(80.0, (70.0, 90.0), 55.0) == "LVH"
    assert three_state_verdict(40.0, (30.0, 50.0), 55.0) == "no LVH"
    assert three_state_verdict(60.0, None, 55.0) == "LVH"  # no interval: the point against the threshold
    assert three_state_verdict(60.0, band, None) is None and index_interval(None, 1.7) is None


def test_analyze_json_and_text_give_index_interval_and_verdict(bundle_dir):
    out = elvmass("analyze", str(CINC_LVH_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32",
                  "--height", "160", "--weight", "68", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    low, high = report["lvm_index_interval_g_m2"]
    bsa = report["patient"]["bsa_m2"]
    assert low == pytest.approx(report["lvm_interval_g"][0] / bsa, abs=0.1)
    assert high == pytest.approx(report["lvm_interval_g"][1] / bsa, abs=0.1)
    expected = "borderline" if low <= 55.0 < high else ("LVH" if report["lvm_index_g_m2"] > 55 else "no LVH")
    assert report["lvh_verdict"] == expected and report["lvh_verdict_text"].startswith(expected)
    text = elvmass("analyze", str(CINC_LVH_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32",
                   "--height", "160", "--weight", "68").stdout
    assert f"-> {expected}" in text and "age 77 y (file)" in text and "height 160 cm (operator)" in text


def test_lvh_unknown_names_only_what_is_missing(bundle_dir):
    report = json.loads(elvmass("analyze", str(CINC_LVH_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32",
                                "--json").stdout)
    assert report["lvh_verdict"] is None and report["patient_sources"]["height_cm"] == "imputed"
    lvh_unknown = next(f for f in report["flags"] if f["name"] == "lvh_unknown")
    assert lvh_unknown["operator_text"] == "Enter height and weight to get an LVH verdict."
    text = "\n".join(summary_lines(report))
    assert "sex" not in text.split("LVH", 1)[1].splitlines()[0]  # sex is known (from the file)


# --- the stored row and the schema migration -------------------------------------------------------

V1_SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recorded_utc TEXT NOT NULL, stored_utc TEXT NOT NULL, patient_id TEXT,
    age_years REAL, sex TEXT, height_cm REAL, weight_kg REAL, estimate_status TEXT NOT NULL,
    lvm_g REAL, lvm_low_g REAL, lvm_high_g REAL, lvm_index_g_m2 REAL, lvh INTEGER, n_beats INTEGER NOT NULL,
    flags TEXT NOT NULL, model_id TEXT, model_sha256 TEXT, source TEXT, window_fs REAL NOT NULL,
    window_leads TEXT NOT NULL, window_n_samples INTEGER NOT NULL, window_codec TEXT NOT NULL,
    window BLOB NOT NULL, report TEXT NOT NULL)"""  # schema 1, as elvmass wrote it before issue 18


def _version_1_database(path) -> None:
    legacy_window = zlib.compress(np.arange(120, dtype="<i2").tobytes(), level=1)  # int16-uV-zlib, as then

    db = sqlite3.connect(path)
    db.execute(V1_SCHEMA)
    for k in range(3):
        db.execute("INSERT INTO results (recorded_utc, stored_utc, patient_id, age_years, sex, height_cm, weight_kg, "
                   "estimate_status, lvm_g, lvm_low_g, lvm_high_g, lvm_index_g_m2, lvh, n_beats, flags, model_id, "
                   "model_sha256, source, window_fs, window_leads, window_n_samples, window_codec, window, report) "
                   "VALUES (?, ?, ?, 60, 'M', 175, 80, 'ok', ?, 1, 2, 70, 0, 9, '[]', 'm', 's', 'x', 500, ?, 10, "
                   "'int16-uV-zlib', ?, '{}')",
                   (f"2026-01-0{k + 1}", "2026", f"OLD-{k}", 150.0 + k, " ".join(["I"] * 12),
                    legacy_window))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()


def test_migration_keeps_every_version_1_row_and_stores_the_new_columns(tmp_path):
    from edge_runtime.runtime.store import SCHEMA_VERSION, ResultStore

    path = tmp_path / "old.sqlite"
    _version_1_database(path)
    data = resolve_patient(patient_from_operator(age=60, sex="M", height=175, weight=80), FILE_PATIENT,
                           prefer="operator")
    estimate = Estimate("ok", lvm_g=130.0, lvm_interval_g=(110.0, 150.0), n_beats=9, lvm_index_g_m2=66.0,
                        lvh=False, lvh_threshold_g_m2=72.0, lvm_index_interval_g_m2=(55.8, 76.1),
                        lvh_verdict="borderline")
    report = add_patient_provenance(build_report(estimate, data.patient, MODEL, ClinicConfig()), data)
    with ResultStore(path) as store:
        new_id = store.add(report, np.zeros((12, 50), dtype=np.float32), 500.0, ("I",) * 12)
        rows = store.results()
        np.testing.assert_array_equal(store.window(1).signals_mv, np.arange(120, dtype=np.float32).reshape(12, 10) / 1000.0)
        assert store.window(new_id).signals_mv.shape == (12, 50)
    assert [row["patient_id"] for row in rows[:3]] == ["OLD-0", "OLD-1", "OLD-2"]
    assert [row["lvm_g"] for row in rows[:3]] == [150.0, 151.0, 152.0]
    assert rows[0]["lvh_verdict"] is None and rows[0]["patient_sources"] is None  # not recorded then
    new = rows[3]
    assert new["id"] == new_id and new["lvh_verdict"] == "borderline" and new["bsa_m2"] == pytest.approx(1.972, abs=1e-3)
    assert (new["lvm_index_low_g_m2"], new["lvm_index_high_g_m2"]) == (55.8, 76.1)
    assert new["patient_sources"]["sex"] == "operator" and new["patient_conflicts"][1]["file"] == "F"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with ResultStore(path) as again:  # reopening a migrated database changes nothing
        assert len(again.results()) == 4
    table = elvmass("results", "--db", str(path))
    assert table.returncode == 0 and "borderline" in table.stdout and "PATIENT DATA CONFLICT" in table.stdout
    csv_text = elvmass("results", "--db", str(path), "--format", "csv").stdout
    assert csv_text.splitlines()[0].endswith("lvh_verdict,patient_sources,patient_conflicts")


def test_a_newer_schema_is_refused_not_rewritten(tmp_path):
    from edge_runtime.runtime.store import ResultStore, StoreError

    path = tmp_path / "future.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=9")
    db.close()
    with pytest.raises(StoreError, match="newer elvmass"):
        ResultStore(path)


# --- one clear line instead of a traceback ---------------------------------------------------------

def test_results_on_a_non_database_file_or_a_folder_is_one_clear_line(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not a database\n" * 100)
    for target in (text_file, tmp_path):
        out = elvmass("results", "--db", str(target))
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and str(target) in out.stderr
    assert text_file.read_text().startswith("this is not a database")  # untouched


def test_permission_denied_is_one_clear_line(tmp_path):
    from edge_runtime.runtime.store import ResultStore

    with ResultStore(tmp_path / "r.sqlite"):
        pass
    if os.geteuid() == 0:  # root ignores file modes; sysfs refuses new files even to root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("running as root without /sys: no place that refuses a write")
        target = "/sys/kernel/elvmass-export.csv"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "x.csv")
    for command in (["results", "--db", str(tmp_path / "r.sqlite"), "--out", target],
                    ["run", "--replay", str(CINC_LVH_RECORD), "--height", "160", "--weight", "68", "--db", str(target),
                     "--max-windows", "1"]):
        out = elvmass(*command)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "Permission denied" in out.stderr or "cannot" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_results_out_into_a_missing_folder_is_one_clear_line(tmp_path):
    from edge_runtime.runtime.store import ResultStore

    with ResultStore(tmp_path / "r.sqlite"):
        pass
    out = elvmass("results", "--db", str(tmp_path / "r.sqlite"), "--out", str(tmp_path / "no" / "such" / "x.csv"))
    assert out.returncode == 1 and "Traceback" not in out.stderr and "No such file or directory" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["info"], ["beats"], ["analyze", "--height", "160", "--weight", "68"]])
def test_piping_into_head_ends_quietly(command, bundle_dir):
    extra = ["--bundle", str(bundle_dir), "--precision", "fp32"] if command[0] == "analyze" else []
    line = " ".join([sys.executable, "-m", "elvmass", command[0], str(CINC_LVH_RECORD), *command[1:], *extra])
    # `head -c 0` exits at once, so the pipe is closed before elvmass (a second to start) writes a byte.
    out = subprocess.run(f"{line} | head -c 0; echo \"rc=${{PIPESTATUS[0]}}\"", shell=True,
                         executable="/bin/bash", capture_output=True, text=True, cwd=REPO_ROOT, timeout=180)
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr
    assert out.stdout.strip() == "rc=141" and out.stderr == ""


# --- exit codes ------------------------------------------------------------------------------------

def test_exit_codes_tell_an_estimate_from_no_estimate_and_outside_population(bundle_dir, tmp_path):
    from edge_runtime.commands import exit_codes
    from edge_runtime.assets import LUDB_ANNOTATED_RECORD as LUDB_RECORD  # normalized amplitudes

    ok = elvmass("analyze", str(CINC_LVH_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32")
    assert ok.returncode == exit_codes.ESTIMATE == 0
    none = elvmass("analyze", str(LUDB_RECORD), "--bundle", str(bundle_dir), "--precision", "fp32")
    assert none.returncode == exit_codes.NO_ESTIMATE == 3 and "NO ESTIMATE" in none.stdout
    usage = elvmass("analyze", str(CINC_LVH_RECORD), "--bogus")
    assert usage.returncode == exit_codes.USAGE == 2
    missing = elvmass("analyze", str(tmp_path / "none.hea"), "--bundle", str(bundle_dir))
    assert missing.returncode == exit_codes.ERROR == 1
    assert exit_codes.for_status("outside_population") == exit_codes.OUTSIDE_POPULATION == 4
    assert exit_codes.for_session(["no_estimate", "outside_population"]) == 4
    assert exit_codes.for_session(["no_estimate", "ok"]) == 0 and exit_codes.for_session([]) == 3


def test_outside_population_exits_4(tmp_path):
    pytest.importorskip("onnx")
    from edge_runtime.preprocess import PreprocessConfig
    from quantization.bundle import BundleModel, write_bundle
    from conftest import CALIBRATION, IMPUTATION, amplitude_onnx
    from edge_runtime.bundle_spec import IntervalCalibration

    config = PreprocessConfig()
    source = amplitude_onnx(tmp_path / "amplitude.onnx", config.beat_length)
    models = [BundleModel(source=source, file=f"combined_{p}.onnx", format="onnx", precision=p) for p in ("fp32", "int8")]
    write_bundle(tmp_path / "bundle", models, model_id="ranges",
                          training_data="unit-test formula; not clinically validated",
                          preprocessing=config.to_dict(), imputation=IMPUTATION, beat_length=config.beat_length,
                          metrics={"cv_mae_g": 15.0}, overwrite=True,
                          calibration=IntervalCalibration(**CALIBRATION), training_ranges={"age_years": (18, 70)})
    out = elvmass("analyze", str(CINC_LVH_RECORD), "--bundle", str(tmp_path / "bundle"), "--precision",
                  "fp32", "--json")
    assert "Traceback" not in out.stderr, out.stderr
    report = json.loads(out.stdout)
    assert report["estimate_status"] == "outside_population" and out.returncode == 4


# --- run pre-flight ----------------------------------------------------------------------------------

def test_run_refuses_a_missing_sex_and_a_missing_port_at_once(bundle_dir, tmp_path):
    started = time.monotonic()
    no_sex = elvmass("run", "--port", "/dev/ttyUSB0", "--bundle", str(bundle_dir), "--precision", "fp32")
    assert no_sex.returncode == 2 and "--sex M" in no_sex.stderr and "Traceback" not in no_sex.stderr
    no_port = elvmass("run", "--port", str(tmp_path / "ttyNOPE"), "--sex", "F", "--bundle", str(bundle_dir),
                      "--precision", "fp32", "--no-db")
    assert no_port.returncode == 1 and "does not exist" in no_port.stderr and "Serial ports found:" in no_port.stderr
    assert time.monotonic() - started < 60  # no reconnect loop (the commands' own start-up is most of it)
    from edge_runtime.commands.run import missing_port_message, serial_ports

    listed = serial_ports()
    message = missing_port_message(str(tmp_path / "ttyNOPE"))
    assert all(port.split(" ")[0] in message for port in listed)
    assert missing_port_message("socket://127.0.0.1:9") is None and missing_port_message(str(CINC_LVH_RECORD)) is None


# --- the live status line ----------------------------------------------------------------------------

def test_status_line_asks_to_attach_an_electrode_off_for_seconds_and_speaks_plainly():
    from edge_runtime.runtime.display import LEAD_OFF_PROMPT_S, LiveDisplay, last_window_text
    from edge_runtime.runtime.session import SessionSummary, device_text
    from edge_runtime.runtime.window import WindowAssembler
    from firmware_bridge.frames import DeviceInfo

    class Session:
        assembler = WindowAssembler(fs=500)
        lead_off = frozenset({"V3"})
        lead_off_since = time.monotonic()
        summary = SessionSummary()
        streaming = True

    display = LiveDisplay()
    assert "electrode off: V3" in display.line(Session()) and "[" in display.line(Session())
    Session.lead_off_since = time.monotonic() - LEAD_OFF_PROMPT_S - 0.5
    line = display.line(Session())
    assert line.startswith("ATTACH ELECTRODE V3") and "[" not in line and "/10 s" not in line
    estimate = Estimate("no_estimate", flags=[Flag("lead_off", "front-end reported V3 off", where="V3"),
                                              Flag("needs_12_leads", "no signal on V3", where="V3")])
    report = build_report(estimate, PatientContext(sex="F"), MODEL, ClinicConfig())
    text = last_window_text(report)
    assert text == "no estimate: Electrode off or loose: V3." and "_" not in text
    info = device_text(DeviceInfo())
    assert "lsb" not in info.lower() and "DeviceInfo" not in info and "500 samples/s" in info


# --- plain-language messages (issue 18 item 7) -----------------------------------------------------

def test_developer_detail_stays_out_of_the_text_report():
    estimate = Estimate("no_estimate", flags=[Flag("noise", "222 narrow spikes not locked to the beats")])
    report = build_report(estimate, PatientContext(sex="F"), MODEL, ClinicConfig())
    text = "\n".join(summary_lines(report))
    assert "narrow spikes" not in text and "Too much movement or muscle noise" in text
    assert report["flags"][0]["reason"].startswith("222 narrow spikes")  # still in the JSON for developers
    sex = build_report(Estimate("no_estimate", flags=[Flag("sex_unknown", "no sex")]), PatientContext(), MODEL,
                       ClinicConfig())
    assert "--sex M" in "\n".join(summary_lines(sex))


def test_an_unreadable_philips_xml_and_an_empty_csv_get_the_right_message(tmp_path):
    philips = tmp_path / "ecg.xml"
    philips.write_text('<?xml version="1.0"?>\n<restingecgdata xmlns="http://www3.medical.philips.com">'
                       "</restingecgdata>\n")
    out = elvmass("info", str(philips))  # the Philips reader names what is wrong (here: no waveforms)
    assert out.returncode == 1 and "Philips" in out.stderr and "neither" not in out.stderr and "Traceback" not in out.stderr
    utf16 = tmp_path / "ecg16.xml"
    utf16.write_bytes('<?xml version="1.0" encoding="utf-16"?>\n<restingecgdata/>\n'.encode("utf-16"))
    out = elvmass("info", str(utf16))
    assert out.returncode == 1 and "Philips" in out.stderr and "Traceback" not in out.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out = elvmass("info", str(empty))
    assert out.returncode == 1 and "holds no samples" in out.stderr and "sampling rate" not in out.stderr


def test_demo_patient_is_printed_in_words():
    from edge_runtime.commands.demo import demo_patient_text

    text = demo_patient_text()
    assert "{" not in text and "woman" in text and "160 cm" in text and "assumed" in text


# --- the printable report --------------------------------------------------------------------------

def _texts(figure) -> list[tuple[str, float, float]]:
    return [(t.get_text(), t.get_fontsize(), t.get_position()[1]) for t in figure.texts]


def test_printable_report_leads_with_the_result_and_shares_one_mv_scale():
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot as plt
    from edge_runtime.runtime.report import draw_report

    data = resolve_patient(patient_from_operator(height=160, weight=68), FILE_PATIENT)
    estimate = Estimate("ok", lvm_g=104.0, lvm_interval_g=(84.0, 125.0), n_beats=5, lvm_index_g_m2=60.0, lvh=True,
                        lvh_threshold_g_m2=55.0, lvm_index_interval_g_m2=(48.3, 71.8), lvh_verdict="borderline")
    report = add_patient_provenance(build_report(estimate, data.patient, MODEL, ClinicConfig()), data)
    report["window_of"] = "window 2 of 3 (10-20 s of the file): the first with a number; --json lists every window"
    t = np.arange(5000) / 500.0
    signals = np.stack([np.sin(2 * np.pi * 1.2 * t) * (0.2 + 0.2 * k) for k in range(12)]).astype(np.float32)
    signals[8] = 0.0  # V3 absent
    beats = np.stack([signals[:, 100 * i:100 * i + 400] for i in range(5)])
    figure = draw_report(report, signals, 500.0, beats=beats)
    texts = _texts(figure)
    top = max(texts, key=lambda item: item[2])
    assert top[0].startswith("RESULT: ESTIMATE")
    mass = next(item for item in texts if item[0].startswith("LV mass 104 g"))
    verdict = next(item for item in texts if item[0].startswith("Index 60 g/m2"))
    assert mass[1] >= 18 and verdict[1] >= 14 and "BORDERLINE" in verdict[0] and "48-72" in verdict[0]
    assert mass[2] > 0.85 and verdict[2] > 0.8  # the top of the page
    patient = next(item for item in texts if item[0].startswith("Patient:"))
    assert "age 77 y (file)" in patient[0] and "height 160 cm (operator)" in patient[0] and "BSA" in patient[0]
    assert any("window 2 of 3" in item[0] for item in texts)
    beat_axes = [axis for axis in figure.axes if axis.get_title() in ("I", "V1", "V6", "V3")]
    assert len({axis.get_ylim() for axis in beat_axes}) == 1  # one mV scale for every panel
    trace_texts = [text.get_text() for axis in figure.axes for text in axis.texts]
    assert trace_texts.count("not recorded") == 2  # V3 on the grid and its beat panel
    plt.close(figure)


def test_run_replay_stores_where_each_patient_value_came_from(bundle_dir, tmp_path):
    from edge_runtime.runtime.store import ResultStore

    out = elvmass("run", "--replay", str(CINC_LVH_RECORD), "--speed", "50", "--height", "160", "--weight", "68",
                  "--bundle", str(bundle_dir), "--precision", "fp32", "--db", str(tmp_path / "r.sqlite"),
                  "--max-windows", "1", "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["results"][0]
    assert result["patient_sources"] == {"age_years": "file", "sex": "file", "height_cm": "operator",
                                         "weight_kg": "operator"}
    with ResultStore(tmp_path / "r.sqlite") as store:
        row = store.results()[0]
    assert row["patient_sources"] == result["patient_sources"] and row["lvh_verdict"] == result["lvh_verdict"]
    assert row["bsa_m2"] == pytest.approx(1.74, abs=0.01) and row["patient_conflicts"] == []
    assert row["lvm_index_low_g_m2"] == result["lvm_index_interval_g_m2"][0]
    conflict = elvmass("run", "--replay", str(CINC_LVH_RECORD), "--sex", "M", "--bundle", str(bundle_dir),
                       "--no-db", "--max-windows", "1", "--quiet")
    assert conflict.returncode == 2 and "sex: file F, entered M" in conflict.stderr


def test_run_log_gets_the_developer_detail_the_screen_does_not(bundle_dir, tmp_path):
    log = tmp_path / "run.log"
    out = elvmass("run", "--replay", str(CINC_LVH_RECORD), "--speed", "50", "--height", "160", "--weight", "68",
                  "--bundle", str(bundle_dir), "--precision", "fp32", "--no-db", "--max-windows", "1",
                  "--report-dir", str(tmp_path / "reports"), "--log", str(log))
    assert out.returncode == 0, out.stderr
    text = log.read_text()
    assert "elvmass.runtime connected: replay" in text and "wrote" in text and "result_" in text
    assert "wrote" not in out.stderr and "reports in" in out.stderr
