"""WFDB: the native reader parses headers and formats 16/212/+offset, and equals the wfdb library."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, SHARED_DATA
from edge_runtime.assets import CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD, PTBXL_RECORD, RECORDS_DIR
from edge_runtime.formats.wfdb_native import INVALID_SAMPLE, UnsupportedWfdbFeature, _decode, parse_header, read_physical
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.record import RecordError


def _all_shared_headers() -> list:
    headers = sorted(SHARED_DATA.glob("*/*.hea")) + sorted(SHARED_DATA.glob("ludb/data/*.hea"))
    return headers


def test_header_defaults_and_fields():
    header = parse_header(
        "rec 2 360 100\n"
        "rec.dat 212 200 11 1024 995 0 0 MLII\n"
        "rec.dat 212 0/uV 11 1024\n"
        "# 69 M x1\n"
    )
    assert header.fs == 360.0 and header.n_samples == 100 and header.comments == ("69 M x1",)
    first, second = header.signals
    assert (first.fmt, first.gain, first.baseline, first.units, first.name) == (212, 200.0, 1024, "mV", "MLII")
    assert (second.gain, second.baseline, second.units, second.name) == (200.0, 1024, "uV", "")
    mat = parse_header("E 1 500 5000\nE.mat 16x1+24 1000.0(0)/mV 16 0 -68 1250 0 I\n").signals[0]
    assert (mat.fmt, mat.byte_offset, mat.gain, mat.baseline) == (16, 24, 1000.0, 0)
    assert parse_header("r 1\nr.dat 16\n").fs == 250.0  # WFDB default rate


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "no record line"),
        ("r/2 1 500\n", "multi-segment"),
        ("r 2 500 10\nr.dat 16 200 16 0 0 0 0 I\n", "declares 2 signals"),
        ("r 1 500 10\nr.dat 310 200\n", "not supported"),
        ("r 1 500 10\nr.dat 16x2 200\n", "sample per frame"),
        ("r 1 500 10\nr.dat 16 abc\n", "gain"),
        ("r 1 -5 10\nr.dat 16 200\n", "positive"),
        ("r x 500\n", "integer"),
    ],
)
def test_header_errors_are_record_errors(text, problem):
    with pytest.raises(RecordError, match=problem):
        parse_header(text, "test.hea")


def test_format_212_decodes_twelve_bit_pairs():
    # samples 0x123=291 and -2 (0xFFE): byte0 = 0x23, byte1 = 0xF1 (high nibbles), byte2 = 0xFE
    values = _decode(bytes([0x23, 0xF1, 0xFE, 0x00, 0x08]), 212)
    assert values.tolist() == [291, -2, -2048]  # trailing half pair: 0x800 = -2048 (the invalid marker)
    assert INVALID_SAMPLE[212] == -2048


def test_native_reads_offset_and_marks_invalid_samples(tmp_path):
    samples = np.array([[100, -50], [INVALID_SAMPLE[16], 7], [300, 20]], dtype="<i2")
    (tmp_path / "r.mat").write_bytes(b"\x00" * 24 + samples.tobytes())
    (tmp_path / "r.hea").write_text("r 2 500 3\nr.mat 16+24 100(10)/mV 16 0 0 0 0 I\nr.mat 16+24 200/uV 16 0 0 0 0 II\n")
    physical, header = read_physical(tmp_path / "r.hea")
    assert np.isnan(physical[1, 0])
    np.testing.assert_array_equal(physical[[0, 2], 0], [0.9, 2.9])
    np.testing.assert_array_equal(physical[:, 1], [-0.25, 0.035, 0.1])
    with pytest.raises(RecordError, match="NaN"):
        read_wfdb(tmp_path / "r.hea", backend="native")


def test_native_refuses_truncated_signal_file(tmp_path):
    (tmp_path / "r.dat").write_bytes(np.zeros(7, dtype="<i2").tobytes())
    (tmp_path / "r.hea").write_text("r 1 500 10\nr.dat 16 200 16 0 0 0 0 I\n")
    with pytest.raises(RecordError, match="header says 10"):
        read_wfdb(tmp_path / "r.hea", backend="native")
    (tmp_path / "r.hea").write_text("r 1 500 10\n../r.dat 16 200 16 0 0 0 0 I\n")
    with pytest.raises(RecordError, match="directory"):
        read_wfdb(tmp_path / "r.hea", backend="native")


@pytest.mark.parametrize("header", [PTBXL_RECORD, CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD], ids=lambda p: p.stem)
def test_bundled_records_native_equals_wfdb(header):
    pytest.importorskip("wfdb")
    _assert_same(read_wfdb(header, backend="wfdb"), read_wfdb(header, backend="native"))


@pytest.mark.shared
@pytest.mark.slow
def test_every_shared_record_native_equals_wfdb():
    pytest.importorskip("wfdb")
    headers = _all_shared_headers()
    if not headers:
        pytest.skip(f"needs WFDB records under {SHARED_DATA}")
    for header in headers:
        _assert_same(read_wfdb(header, backend="wfdb"), read_wfdb(header, backend="native"))


def _assert_same(library, native):
    assert native.lead_names == library.lead_names
    assert native.fs == library.fs
    assert native.patient == library.patient
    assert native.notes == library.notes
    np.testing.assert_array_equal(native.signals_mv, library.signals_mv, err_msg=library.source)


def test_bundled_ptbxl_units_and_demographics():
    record = read_wfdb(PTBXL_RECORD, backend="native")
    assert record.lead_names[:3] == ("I", "II", "III") and record.fs == 500.0 and record.n_samples == 5000
    assert (record.patient.age_years, record.patient.sex, record.patient.height_cm, record.patient.weight_kg) == (28, "M", 177, 76)
    assert 0.2 < np.ptp(record.lead("II")) < 5.0  # mV, not ADC counts or volts
    assert not record.amplitudes_normalized


def test_auto_backend_works_without_wfdb_installed():
    # The device has no wfdb: block the import and read the bundled records anyway.
    code = (
        "import sys; sys.modules['wfdb'] = None\n"
        "from edge_runtime.formats import read_record\n"
        f"r = read_record({str(PTBXL_RECORD)!r}); print(r.format, r.fs, r.signals_mv.shape)\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.split() == ["wfdb", "500.0", "(12,", "5000)", "False"]


def test_auto_backend_imports_nothing_heavy_even_with_wfdb_installed():
    code = (
        "import sys\n"
        "from edge_runtime.formats import read_record\n"
        f"read_record({str(CINC_LVH_RECORD)!r})\n"
        "print(sorted(m for m in ('wfdb', 'pandas', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_auto_falls_back_to_wfdb_for_formats_the_native_reader_lacks(tmp_path):
    pytest.importorskip("wfdb")
    samples = np.array([[1000, -2000], [70000, 5], [-300000, 12]])  # needs 24 bits
    packed = b"".join(int(v).to_bytes(3, "little", signed=True) for v in samples.reshape(-1))
    (tmp_path / "r.dat").write_bytes(packed)
    (tmp_path / "r.hea").write_text("r 2 500 3\nr.dat 24 1000/mV 24 0 0 0 0 I\nr.dat 24 1000/mV 24 0 0 0 0 II\n")
    with pytest.raises(UnsupportedWfdbFeature):
        read_wfdb(tmp_path / "r.hea", backend="native")
    record = read_wfdb(tmp_path / "r.hea")
    np.testing.assert_allclose(record.signals_mv, samples.T / 1000.0, rtol=1e-6)


def test_missing_header_and_records_dir():
    with pytest.raises(RecordError, match="not found"):
        read_wfdb(RECORDS_DIR / "nope.hea")
