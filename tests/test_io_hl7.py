"""HL7 aECG: round trip through the writer, scale/origin/units, 8-lead files, and clear errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.formats import detect_format, read_record
from edge_runtime.formats.hl7_aecg import read_hl7_aecg, write_hl7_aecg
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.record import STANDARD_LEADS, RecordError


@pytest.fixture(scope="module")
def real_record():
    return read_wfdb(CINC_LVH_RECORD, backend="native").to_standard_12()


@pytest.fixture()
def aecg_file(tmp_path, real_record):
    return write_hl7_aecg(real_record, tmp_path / "ecg.xml", scale_uv=1.0, birth_date="19470601", recorded_date="20240601")


def _edit(path, pattern: str, replacement: str, count: int = 1):
    text = path.read_text()
    new, n = re.subn(pattern, replacement, text, count=count)
    assert n, pattern
    path.write_text(new)
    return path


def test_round_trip(aecg_file, real_record):
    assert detect_format(aecg_file) == "hl7-aecg"
    record = read_record(aecg_file)
    assert record.format == "hl7-aecg" and record.fs == 500.0 and record.lead_names == STANDARD_LEADS
    assert np.abs(record.signals_mv - real_record.signals_mv).max() <= 0.0005 + 1e-7  # half a 1 uV step
    assert record.patient.sex == "F" and record.patient.age_years == pytest.approx(77.0, abs=0.01)
    assert record.notes == []


def test_millivolt_scale_and_origin(aecg_file, real_record):
    # Rewrite lead I as origin 0.1 mV + 0.002 mV per digit: the reader must apply both.
    text = aecg_file.read_text()
    lead_i = text.index('code="MDC_ECG_LEAD_I"')
    start = text.index("<origin", lead_i)
    digits_start = text.index("<digits>", lead_i) + len("<digits>")
    digits_end = text.index("</digits>", digits_start)
    counts = np.round((real_record.lead("I").astype(np.float64) - 0.1) / 0.002).astype(int)
    value_xml = '<origin value="0.1" unit="mV" />\n<scale value="0.002" unit="mV" />\n<digits>'
    text = text[:start] + value_xml + " ".join(map(str, counts)) + text[digits_end:]
    aecg_file.write_text(text)
    record = read_hl7_aecg(aecg_file)
    assert np.abs(record.lead("I") - real_record.lead("I")).max() <= 0.001 + 1e-6


def test_time_increment_in_milliseconds_and_absolute_time(aecg_file):
    _edit(aecg_file, r'<increment value="[^"]+" unit="s" />', '<increment value="2" unit="ms" />')
    _edit(aecg_file, 'code="TIME_RELATIVE"', 'code="TIME_ABSOLUTE"')
    assert read_hl7_aecg(aecg_file).fs == 500.0


def test_eight_lead_file_derives_limb_leads(aecg_file):
    text = aecg_file.read_text()
    for lead in ("III", "AVR", "AVL", "AVF"):
        start = text.index(f'code="MDC_ECG_LEAD_{lead}"')
        block_start = text.rindex("<component>", 0, start)
        block_end = text.index("</component>", start) + len("</component>")
        text = text[:block_start] + text[block_end:]
    aecg_file.write_text(text)
    record = read_hl7_aecg(aecg_file)
    np.testing.assert_allclose(record.lead("aVL"), record.lead("I") - record.lead("II") / 2, atol=1e-6)


@pytest.mark.parametrize(
    "pattern, replacement, problem",
    [
        ('code="MDC_ECG_LEAD_V4"', 'code="MDC_ECG_LEAD_V4R"', "missing leads V4"),
        ('<scale value="1" unit="uV" />', '<scale value="1" unit="furlong" />', "unknown unit"),
        ('<origin value="0" unit="uV" />', '<origin value="NaN" unit="uV" />', "not a finite number"),
        (r"<digits>(-?\d+)", r"<digits>\1.5", "other than integers"),
        ('<increment value="[^"]+" unit="s" />', '<increment value="0" unit="s" />', "positive"),
        ('code="TIME_RELATIVE"', 'code="TIME_WHENEVER"', "sampling rate unknown"),
        ('xsi:type="SLIST_PQ"', 'xsi:type="SLIST_INT"', "expected SLIST_PQ"),
        ("</AnnotatedECG>", "", "malformed XML"),
    ],
)
def test_corruptions_give_record_errors(aecg_file, pattern, replacement, problem):
    _edit(aecg_file, pattern, replacement)
    with pytest.raises(RecordError, match=problem) as caught:
        read_hl7_aecg(aecg_file)
    assert str(aecg_file) in str(caught.value)


def test_unequal_lead_lengths(aecg_file):
    _edit(aecg_file, r"<digits>(-?\d+) ", "<digits>")  # first lead loses a sample
    with pytest.raises(RecordError, match="unequal lengths"):
        read_hl7_aecg(aecg_file)


def test_wrong_namespace_refused(aecg_file):
    _edit(aecg_file, 'xmlns="urn:hl7-org:v3"', 'xmlns="urn:example"')
    with pytest.raises(RecordError, match="not <AnnotatedECG>"):
        read_hl7_aecg(aecg_file)


def test_external_entity_refused(tmp_path):
    path = tmp_path / "xxe.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE AnnotatedECG [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                    '<AnnotatedECG xmlns="urn:hl7-org:v3">&e;</AnnotatedECG>')
    with pytest.raises(RecordError, match="unsafe XML"):
        read_record(path)
