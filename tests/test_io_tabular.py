"""CSV and NumPy ECG files: explicit rate and leads, units, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.formats import limits, read_record
from edge_runtime.formats.tabular import read_csv, read_npy, write_csv, write_npz
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.record import STANDARD_LEADS, EcgRecord, RecordError


@pytest.fixture()
def small_record():
    rng = np.random.default_rng(0)
    signals = (rng.standard_normal((12, 250)) * np.linspace(0.2, 1.5, 12)[:, None]).astype(np.float32)
    return EcgRecord(signals, 250.0, STANDARD_LEADS)


def test_csv_round_trip_in_uv(tmp_path, small_record):
    path = write_csv(small_record, tmp_path / "ecg.csv", units="uV")
    record = read_record(path)
    assert record.format == "csv" and record.fs == 250.0 and record.lead_names == STANDARD_LEADS
    np.testing.assert_allclose(record.signals_mv, small_record.signals_mv, rtol=1e-6, atol=1e-9)


def test_csv_fs_argument_header_and_time_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("time,I,II\n0.000,0.1,0.2\n0.002,0.3,-0.4\n")
    with pytest.raises(RecordError, match="sampling rate unknown"):
        read_csv(path)
    record = read_csv(path, fs=500)
    assert record.lead_names == ("I", "II") and record.fs == 500.0
    np.testing.assert_allclose(record.signals_mv, [[0.1, 0.3], [0.2, -0.4]], rtol=1e-6)
    path.write_text("# fs=360\ntime,I,II\n0,0.1,0.2\n")
    with pytest.raises(RecordError, match="fs=500 given but the file says fs=360"):
        read_csv(path, fs=500)


def test_csv_without_header_needs_lead_names(tmp_path):
    path = tmp_path / "bare.csv"
    path.write_text("# fs=500\n0.1,0.2\n0.3,0.4\n")
    with pytest.raises(RecordError, match="no header row"):
        read_csv(path)
    assert read_csv(path, lead_names=["I", "II"]).signals_mv.shape == (2, 2)


@pytest.mark.parametrize(
    "body, problem",
    [
        ("# fs=500\n# units=furlongs\nI,II\n1,2\n", "unknown units"),
        ("# fs=fast\nI,II\n1,2\n", "not a number"),
        ("# fs=500\nI,II\n1,2\n3\n", "line 4: 1 cells"),
        ("# fs=500\nI,II\n1,2\n3,abc\n", "line 4: a cell is empty or not a number"),
        ("# fs=500\nI,II\n1,2\n3,\n", "line 4"),
        ("# fs=500\nI,II\n1,nan\n", "line 3: NaN"),
        ("# fs=500\nI,II\n", "no samples"),
        ("# fs=500\nI,I\n1,2\n", "duplicate lead names"),
        ("# fs=-5\nI,II\n1,2\n", "positive"),
    ],
)
def test_csv_errors(tmp_path, body, problem):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(RecordError, match=problem):
        read_csv(path)


def test_npz_round_trip_and_npy_needs_rate_and_leads(tmp_path, small_record):
    record = read_record(write_npz(small_record, tmp_path / "ecg.npz"))
    assert record.format == "npy" and record.fs == 250.0 and record.lead_names == STANDARD_LEADS
    np.testing.assert_array_equal(record.signals_mv, small_record.signals_mv)
    np.save(tmp_path / "ecg.npy", small_record.signals_mv)
    with pytest.raises(RecordError, match="pass fs and lead_names"):
        read_record(tmp_path / "ecg.npy")
    again = read_record(tmp_path / "ecg.npy", fs=250, lead_names=list(STANDARD_LEADS))
    np.testing.assert_array_equal(again.signals_mv, small_record.signals_mv)


@pytest.mark.parametrize(
    "array, problem",
    [
        (np.zeros((250, 12), dtype=np.float32), "leads x samples"),
        (np.zeros(12), "2-D numeric"),
        (np.array([["a"] * 3] * 12), "2-D numeric"),
        (np.full((12, 3), np.nan), "NaN"),
    ],
)
def test_npy_errors(tmp_path, array, problem):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(RecordError, match=problem):
        read_npy(tmp_path / "bad.npy", fs=500, lead_names=list(STANDARD_LEADS))


def test_npy_refuses_pickles_and_npz_needs_its_arrays(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RecordError, match="not a readable NumPy file"):
        read_npy(tmp_path / "obj.npy", fs=500, lead_names=["I"])
    np.savez(tmp_path / "partial.npz", signals=np.zeros((2, 5)))
    with pytest.raises(RecordError, match="lacks arrays"):
        read_npy(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RecordError):
        read_npy(tmp_path / "junk.npz")


def test_size_cap_applies_to_every_reader(tmp_path, small_record, monkeypatch):
    csv_path = write_csv(small_record, tmp_path / "ecg.csv")
    npz_path = write_npz(small_record, tmp_path / "ecg.npz")
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 1000)
    for read in (lambda: read_csv(csv_path), lambda: read_npy(npz_path), lambda: read_wfdb(PTBXL_RECORD, backend="native")):
        with pytest.raises(RecordError, match="over the 1,000-byte limit"):
            read()
