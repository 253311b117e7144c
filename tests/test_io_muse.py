"""GE MUSE RestingECG XML: round trip through the writer, unit conversions, and clear errors."""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest

from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.formats import detect_format, read_record
from edge_runtime.formats import limits
from edge_runtime.formats.muse_xml import read_muse_xml, write_muse_xml
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.record import STANDARD_LEADS, RecordError

UV_PER_BIT = 4.88


@pytest.fixture(scope="module")
def real_record():
    record = read_wfdb(PTBXL_RECORD, backend="native").to_standard_12()
    record.measurements.update(qrs_ms=92.0, p_axis=61.0, r_axis=-12.0, t_axis=38.0, pr_ms=160.0,
                               qt_ms=380.0, qtc_ms=410.0, heart_rate=64.0)
    return record


@pytest.fixture()
def muse_file(tmp_path, real_record):
    return write_muse_xml(real_record, tmp_path / "ecg.xml", microvolts_per_bit=UV_PER_BIT)


def test_round_trip_keeps_samples_demographics_and_measurements(muse_file, real_record):
    assert detect_format(muse_file) == "muse-xml"
    record = read_record(muse_file)
    assert record.format == "muse-xml" and record.fs == 500.0 and record.lead_names == STANDARD_LEADS
    step_mv = UV_PER_BIT / 1000
    stored = [STANDARD_LEADS.index(n) for n in ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")]
    assert np.abs(record.signals_mv[stored] - real_record.signals_mv[stored]).max() <= step_mv / 2 + 1e-6
    # III, aVR, aVL, aVF are derived from the quantized I and II, as a MUSE viewer does
    np.testing.assert_allclose(record.lead("III"), record.lead("II") - record.lead("I"), atol=1e-6)
    np.testing.assert_allclose(record.lead("aVR"), -(record.lead("I") + record.lead("II")) / 2, atol=1e-6)
    assert np.abs(record.lead("aVF") - real_record.lead("aVF")).max() < 0.05  # the file's own aVF agrees
    assert (record.patient.age_years, record.patient.sex, record.patient.height_cm, record.patient.weight_kg) == (28, "M", 177, 76)
    assert record.measurements == real_record.measurements
    assert not record.amplitudes_normalized and record.notes == []


def _edit(path, old: str, new: str, count: int = 1):
    text = path.read_text(encoding="latin-1")
    assert old in text, old
    path.write_text(text.replace(old, new, count), encoding="latin-1")
    return path


def test_imperial_units_and_age_in_months(muse_file):
    _edit(muse_file, "<HeightCM>177</HeightCM>", "<HeightIN>70</HeightIN>")
    _edit(muse_file, "<WeightKG>76</WeightKG>", "<WeightLBS>165</WeightLBS>")
    _edit(muse_file, "<AgeUnits>YEARS</AgeUnits>", "<AgeUnits>MONTHS</AgeUnits>")
    patient = read_muse_xml(muse_file).patient
    assert patient.height_cm == pytest.approx(177.8) and patient.weight_kg == pytest.approx(74.84, abs=0.01)
    assert patient.age_years == pytest.approx(28 / 12)


def test_millivolt_units_scale_samples(muse_file):
    reference = read_muse_xml(muse_file)
    _edit(muse_file, "<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>", "<LeadAmplitudeUnits>MILLIVOLTS</LeadAmplitudeUnits>")
    record = read_muse_xml(muse_file)
    np.testing.assert_allclose(record.lead("I"), reference.lead("I") * 1000, rtol=1e-6)
    np.testing.assert_allclose(record.lead("II"), reference.lead("II"))


def test_median_used_only_without_rhythm_with_a_note(muse_file):
    _edit(muse_file, "<WaveformType>Rhythm</WaveformType>", "<WaveformType>Median</WaveformType>")
    record = read_muse_xml(muse_file)
    assert any("Median" in note for note in record.notes)


def test_rhythm_preferred_over_median(muse_file, real_record, tmp_path):
    # A file with a short Median waveform first and the Rhythm second reads the Rhythm.
    text = muse_file.read_text(encoding="latin-1")
    start, end = text.index("<Waveform>"), text.index("</Waveform>") + len("</Waveform>")
    median = text[start:end].replace("Rhythm", "Median")
    median = median.replace("<SampleBase>500</SampleBase>", "<SampleBase>250</SampleBase>")
    muse_file.write_text(text[:start] + median + text[start:], encoding="latin-1")
    record = read_muse_xml(muse_file)
    assert record.fs == 500.0 and record.notes == []


def test_sample_exponent(muse_file):
    _edit(muse_file, "<SampleBase>500</SampleBase>", "<SampleBase>50</SampleBase>")
    _edit(muse_file, "<SampleExponent>0</SampleExponent>", "<SampleExponent>1</SampleExponent>")
    assert read_muse_xml(muse_file).fs == 500.0


@pytest.mark.parametrize(
    "old, new, problem",
    [
        ("<LeadID>V3</LeadID>", "<LeadID>V3R</LeadID>", "missing leads V3"),
        ("<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits>", "<LeadAmplitudeUnits>FURLONGS</LeadAmplitudeUnits>", "unknown LeadAmplitudeUnits"),
        ("<LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>", "<LeadAmplitudeUnitsPerBit>nan</LeadAmplitudeUnitsPerBit>", "positive number"),
        ("<WaveFormData>", "<WaveFormData>@@not base64@@", "not valid base64"),
        ("<LeadSampleCountTotal>5000</LeadSampleCountTotal>", "<LeadSampleCountTotal>4000</LeadSampleCountTotal>", "LeadSampleCountTotal"),
        ("<WaveformType>Rhythm</WaveformType>", "<WaveformType>Other</WaveformType>", "no <Waveform>"),
        ("<SampleBase>500</SampleBase>", "<SampleBase>fast</SampleBase>", "SampleBase"),
        ("</RestingECG>", "", "malformed XML"),
    ],
)
def test_corruptions_give_record_errors_naming_the_file(muse_file, old, new, problem):
    _edit(muse_file, old, new)
    with pytest.raises(RecordError, match=problem) as caught:
        read_muse_xml(muse_file)
    assert str(muse_file) in str(caught.value)


def test_unequal_lead_lengths(muse_file):
    text = muse_file.read_text(encoding="latin-1")
    block_start = text.rindex("<LeadData>", 0, text.index("<LeadID>V6</LeadID>"))
    block_end = text.index("</LeadData>", block_start)
    block = text[block_start:block_end]
    begin = block.index("<WaveFormData>") + len("<WaveFormData>")
    end = block.index("</WaveFormData>")
    shorter = base64.b64encode(base64.b64decode(block[begin:end])[:-200]).decode()
    block = block[:begin] + shorter + block[end:]
    block = block.replace("<LeadSampleCountTotal>5000</LeadSampleCountTotal>", "")  # a file that does not declare it
    muse_file.write_text(text[:block_start] + block + text[block_end:], encoding="latin-1")
    with pytest.raises(RecordError, match="unequal lengths"):
        read_muse_xml(muse_file)


def test_entity_expansion_and_external_entities_refused(tmp_path):
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><RestingECG>&b;</RestingECG>')
    with pytest.raises(RecordError, match="unsafe XML"):
        read_record(bomb)
    external = tmp_path / "xxe.xml"
    external.write_text('<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                        "<RestingECG>&e;</RestingECG>")
    with pytest.raises(RecordError, match="unsafe XML"):
        read_record(external)


def test_size_cap(muse_file, monkeypatch):
    monkeypatch.setattr(limits, "MAX_FILE_BYTES", 10_000)
    with pytest.raises(RecordError, match="limit"):
        read_muse_xml(muse_file)


def test_implausible_demographics_are_dropped_with_a_note(muse_file):
    _edit(muse_file, "<PatientAge>28</PatientAge>", "<PatientAge>230</PatientAge>")
    record = read_muse_xml(muse_file)
    assert record.patient.age_years is None and any("age_years=230" in note for note in record.notes)


def test_writer_refuses_int16_overflow(real_record, tmp_path):
    loud = dataclasses.replace(real_record, signals_mv=real_record.signals_mv * 1000)
    with pytest.raises(ValueError, match="int16"):
        write_muse_xml(loud, tmp_path / "loud.xml")
