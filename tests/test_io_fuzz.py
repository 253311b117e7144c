"""Property/fuzz tests: whatever bytes a reader is given, only RecordError may escape it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.assets import PHILIPS_XML_RECORD
from edge_runtime.formats import read_record
from edge_runtime.formats.dicom_ecg import read_dicom_ecg, write_dicom_ecg
from edge_runtime.formats.philips_xml import read_philips_xml
from edge_runtime.formats.hl7_aecg import read_hl7_aecg, write_hl7_aecg
from edge_runtime.formats.labels import read_label_table
from edge_runtime.formats.muse_xml import read_muse_xml, write_muse_xml
from edge_runtime.formats.tabular import read_csv, read_npy, write_csv, write_npz
from edge_runtime.formats.wfdb_native import parse_header
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.formats.xml_safe import parse_xml_bytes
from edge_runtime.record import STANDARD_LEADS, EcgRecord, PatientContext, RecordError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


class Templates(dict):
    """Small valid files of each format, to mutate (a short repr keeps Hypothesis reports readable)."""

    def __repr__(self) -> str:
        return f"Templates({sorted(self)})"


@pytest.fixture(scope="module")
def templates(work):
    rng = np.random.default_rng(1)
    record = EcgRecord((rng.standard_normal((12, 40)) * 0.5).astype(np.float32), 500.0, STANDARD_LEADS,
                       patient=PatientContext(60.0, "F", 165.0, 70.0), measurements={"qrs_ms": 90.0})
    (work / "t.dat").write_bytes((rng.integers(-300, 300, (40, 2))).astype("<i2").tobytes())
    (work / "t.hea").write_text("t 2 500 40\nt.dat 16 200(0)/mV 16 0 0 0 0 I\nt.dat 16 200(0)/mV 16 0 0 0 0 II\n# Age: 60\n")
    return Templates({
        "muse": write_muse_xml(record, work / "muse.xml").read_bytes(),
        "hl7": write_hl7_aecg(record, work / "hl7.xml", birth_date="19640101").read_bytes(),
        "csv": write_csv(record, work / "t.csv").read_bytes(),
        "npz": write_npz(record, work / "t.npz").read_bytes(),
        "hea": (work / "t.hea").read_bytes(),
        "philips": PHILIPS_XML_RECORD.read_bytes(),
    })


@pytest.fixture(scope="module")
def dicom_template(work):
    pytest.importorskip("pydicom", reason="the dicom extra (pydicom) is part of dev")

    rng = np.random.default_rng(2)
    record = EcgRecord((rng.standard_normal((12, 40)) * 0.5).astype(np.float32), 500.0, STANDARD_LEADS,
                       patient=PatientContext(60.0, "F", 165.0, 70.0))
    return write_dicom_ecg(record, work / "template.dcm").read_bytes()


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, delete count, insert bytes) edits."""
    out = bytearray(data)
    for position, delete, insert in edits:
        at = position % (len(out) + 1)
        out[at : at + delete] = insert
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.binary(max_size=12)), min_size=1, max_size=6)
# Tokens that reach deep parser branches more often than random bytes do.
xml_tokens = st.sampled_from([b"<", b">", b"&", b"&a;", b"<!ENTITY a 'x'>", b"<!DOCTYPE x [", b"]>", b"-1", b"0",
                              b"nan", b"1e308", b"=", b"==", b'"', b"</LeadData>", b"<LeadData>", b"</sequence>",
                              b"\xff\xfe", b"\x00", b"MICROVOLTS", b"V1", b"unit=\"mV\""])
token_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 30), xml_tokens), min_size=1, max_size=6)


def _only_record_errors(reader, path, data: bytes, **kwargs):
    path.write_bytes(data)
    try:
        record = reader(path, **kwargs)
    except RecordError:
        return
    assert isinstance(record, EcgRecord) and np.all(np.isfinite(record.signals_mv))


@FUZZ
@given(data=st.binary(max_size=400))
def test_xml_parser_random_bytes(data):
    try:
        parse_xml_bytes(data, "fuzz.xml")
    except RecordError:
        pass


@FUZZ
@given(changes=st.one_of(edits, token_edits))
def test_mutated_muse(work, templates, changes):
    _only_record_errors(read_muse_xml, work / "m.xml", _mutate(templates["muse"], changes))


@FUZZ
@given(changes=st.one_of(edits, token_edits))
def test_mutated_hl7(work, templates, changes):
    _only_record_errors(read_hl7_aecg, work / "h.xml", _mutate(templates["hl7"], changes))


@FUZZ
@given(changes=st.one_of(edits, token_edits))
def test_mutated_philips(work, templates, changes):
    _only_record_errors(read_philips_xml, work / "p.xml", _mutate(templates["philips"], changes))


# Bytes that land on DICOM lengths, VRs and counts: huge lengths, wrong VR letters, truncation.
dicom_tokens = st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"UL", b"US", b"DS", b"OB", b"SQ", b"UN",
                                b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"1e308", b"nan", b"-1", b"uV", b"MB"])
dicom_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8), dicom_tokens), min_size=1, max_size=6)


@FUZZ
@given(changes=st.one_of(edits, dicom_edits), truncate=st.integers(0, 2000))
def test_mutated_dicom(work, dicom_template, changes, truncate):
    data = _mutate(dicom_template, changes)
    _only_record_errors(read_dicom_ecg, work / "d.dcm", data[: len(data) - truncate] if truncate else data)


@FUZZ
@given(changes=edits)
def test_mutated_csv(work, templates, changes):
    _only_record_errors(read_csv, work / "c.csv", _mutate(templates["csv"], changes))


@FUZZ
@given(changes=edits)
def test_mutated_npz(work, templates, changes):
    _only_record_errors(read_npy, work / "n.npz", _mutate(templates["npz"], changes))


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".npy", ".xml", ".csv", ".npz", ".dcm"]))
def test_random_bytes_any_format(work, data, suffix):
    # read_record dispatches on the suffix; .xml also runs the sniffer.
    _only_record_errors(read_record, work / f"r{suffix}", data, fs=500.0, lead_names=["I", "II"])


header_lines = st.lists(
    st.one_of(
        st.text(alphabet="t0123456789 ./+x:()-#abcdefmuV", max_size=40),
        st.sampled_from(["t 2 500 40", "t 1", "t.dat 212 200 11 1024", "t.dat 16x1+24 1000.0(0)/mV 16 0 -68 1250 0 I",
                         "t.dat 80", "t.dat 61 100/uV", "t.dat 32 0", "# Age: 300", "# Sex: X", "t 2 0", "t 1 500 99999"]),
    ),
    max_size=6,
)


@FUZZ
@given(lines=header_lines, mutate=st.booleans(), changes=edits)
def test_random_wfdb_headers(work, templates, lines, mutate, changes):
    text = "\n".join(lines) if not mutate else _mutate(templates["hea"], changes).decode("latin-1")
    try:
        parse_header(text, "fuzz.hea")
    except RecordError:
        pass
    (work / "t.hea").write_text(text, encoding="latin-1")
    try:
        record = read_wfdb(work / "t.hea", backend="native")
    except RecordError:
        return
    assert np.all(np.isfinite(record.signals_mv))


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(list("recordlvm_gagesxhitwkjb,.\n0123456789-MF \"")), max_size=300))
def test_random_label_tables(work, text):
    path = work / "labels.csv"
    path.write_text("record,lvm_g,age_years,sex,height_cm,weight_kg\n" + text)
    try:
        read_label_table(path, require_records=False)
    except RecordError:
        pass


def test_unmutated_dicom_template_reads(work, dicom_template):
    (work / "d.dcm").write_bytes(dicom_template)
    assert read_dicom_ecg(work / "d.dcm").signals_mv.shape == (12, 40)


def test_unmutated_templates_read(work, templates):
    # The fuzz tests start from files that do read: mutations then probe every layer of the parser.
    for reader, name, key in [(read_muse_xml, "m.xml", "muse"), (read_hl7_aecg, "h.xml", "hl7"),
                              (read_csv, "c.csv", "csv"), (read_npy, "n.npz", "npz")]:
        (work / name).write_bytes(templates[key])
        assert reader(work / name).signals_mv.shape[1] == 40
    (work / "p.xml").write_bytes(templates["philips"])
    assert read_philips_xml(work / "p.xml").n_samples == 5264
    (work / "t.hea").write_bytes(templates["hea"])
    assert read_wfdb(work / "t.hea", backend="native").patient.age_years == 60
