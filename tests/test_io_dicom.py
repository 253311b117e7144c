"""DICOM ECG waveforms: pydicom's own 12-lead test file, round trips of our records, hostile files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom", reason="the dicom extra (pydicom) is part of dev")

from pydicom.data import get_testdata_file  # noqa: E402

from edge_runtime.assets import PTBXL_RECORD  # noqa: E402
from edge_runtime.formats import detect_format, dicom_ecg, read_record  # noqa: E402
from edge_runtime.formats.dicom_ecg import (  # noqa: E402
    GENERAL_ECG_SOP_CLASS,
    TWELVE_LEAD_ECG_SOP_CLASS,
    read_dicom_ecg,
    write_dicom_ecg,
)
from edge_runtime.formats.wfdb_reader import read_wfdb  # noqa: E402
from edge_runtime.record import STANDARD_LEADS, EcgRecord, PatientContext, RecordError  # noqa: E402


@pytest.fixture(scope="module")
def pydicom_ecg():
    path = get_testdata_file("waveform_ecg.dcm", download=False)
    if path is None:
        pytest.skip("this pydicom build does not ship waveform_ecg.dcm")
    return path


@pytest.fixture(scope="module")
def real_record():
    record = read_wfdb(PTBXL_RECORD, backend="native").to_standard_12()
    return dataclasses.replace(record, patient=dataclasses.replace(record.patient, patient_id="P-0042"))


def test_pydicom_waveform_ecg_reads_like_pydicom_itself(pydicom_ecg):
    record = read_record(pydicom_ecg)
    assert record.format == "dicom-ecg" and record.fs == 1000.0 and record.lead_names == STANDARD_LEADS
    assert record.signals_mv.shape == (12, 10_000)
    dataset = pydicom.dcmread(pydicom_ecg)
    rhythm = dataset.waveform_array(0)  # (samples, channels) in the channel units (uV)
    assert dataset.WaveformSequence[0].MultiplexGroupLabel == "RHYTHM"
    np.testing.assert_allclose(record.signals_mv, rhythm.T / 1000.0, atol=1e-6)
    # the file's own demographics
    assert record.patient.sex == "F" and record.patient.age_years == 42.0


def test_round_trip_of_our_record_is_12_lead_storage(tmp_path, real_record):
    path = write_dicom_ecg(real_record, tmp_path / "ecg.dcm")
    assert detect_format(path) == "dicom-ecg"
    assert pydicom.dcmread(path).SOPClassUID == TWELVE_LEAD_ECG_SOP_CLASS
    record = read_record(path)
    assert record.lead_names == STANDARD_LEADS and record.fs == real_record.fs
    assert np.abs(record.signals_mv - real_record.signals_mv).max() <= 0.0005 + 1e-6  # half a 1 uV step
    assert record.patient.sex == real_record.patient.sex
    assert record.patient.height_cm == pytest.approx(real_record.patient.height_cm)
    assert record.patient.weight_kg == pytest.approx(real_record.patient.weight_kg)
    assert record.patient.age_years == int(real_record.patient.age_years)
    assert record.patient.patient_id == "P-0042"


def test_other_leads_and_long_records_use_general_ecg(tmp_path):
    rng = np.random.default_rng(0)
    record = EcgRecord((rng.standard_normal((2, 2500 * 20)) * 0.3).astype(np.float32), 250.0, ("MLII", "V5"))
    path = write_dicom_ecg(record, tmp_path / "holter.dcm")
    assert pydicom.dcmread(path).SOPClassUID == GENERAL_ECG_SOP_CLASS
    back = read_dicom_ecg(path)
    assert back.lead_names == ("MLII", "V5") and back.n_samples == record.n_samples
    assert np.abs(back.signals_mv - record.signals_mv).max() <= 0.0005 + 1e-6


def test_no_suffix_detected_by_preamble(tmp_path, real_record):
    path = write_dicom_ecg(real_record, tmp_path / "ecg.bin")
    assert detect_format(path) == "dicom-ecg"


def _edit(path, change):
    dataset = pydicom.dcmread(path)
    change(dataset)
    dataset.save_as(path)
    return path


def _set(group_attribute, value):
    def change(dataset):
        setattr(dataset.WaveformSequence[0], group_attribute, value)
    return change


def _channel(attribute, value, channel=0):
    def change(dataset):
        setattr(dataset.WaveformSequence[0].ChannelDefinitionSequence[channel], attribute, value)
    return change


def _units(code):
    def change(dataset):
        dataset.WaveformSequence[0].ChannelDefinitionSequence[3].ChannelSensitivityUnitsSequence[0].CodeValue = code
    return change


def _truncate(dataset):
    dataset.WaveformSequence[0].WaveformData = dataset.WaveformSequence[0].WaveformData[:-100]


def _wrong_vr(dataset):
    # Sampling Frequency written as text that is not a decimal string
    from pydicom.dataelem import DataElement  # lazy: heavy
    dataset.WaveformSequence[0][0x003A, 0x001A] = DataElement(0x003A001A, "LO", "fast")


def _drop_definition(dataset):
    del dataset.WaveformSequence[0].ChannelDefinitionSequence[5]


def _not_ecg(dataset):
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID


@pytest.mark.parametrize("change, message", [
    (_set("NumberOfWaveformSamples", 4_000_000_000), "Number of Waveform Samples"),
    (_set("NumberOfWaveformSamples", 5001), "need"),
    (_set("NumberOfWaveformChannels", 3), "need"),
    (_drop_definition, "11 channel definitions for 12 channels"),
    (_truncate, "Waveform Data holds"),
    (_set("WaveformSampleInterpretation", "MB"), "Waveform Sample Interpretation"),
    (_set("WaveformBitsAllocated", 12), "bits allocated"),
    (_wrong_vr, "Sampling Frequency"),
    (_set("SamplingFrequency", "0"), "Sampling Frequency"),
    (_units("furlong"), "unknown Channel Sensitivity units 'furlong'"),
    (_channel("ChannelSensitivity", "0"), "Channel Sensitivity is 0"),
    (_channel("ChannelSampleSkew", "40"), "skews differ"),
    (_not_ecg, "not 12-lead or General ECG"),
])
def test_hostile_files_are_record_errors(tmp_path, real_record, change, message):
    path = _edit(write_dicom_ecg(real_record, tmp_path / "bad.dcm"), change)
    with pytest.raises(RecordError, match=message):
        read_record(path)


def test_garbage_with_dcm_suffix(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"1" * 40)
    with pytest.raises(RecordError, match="x.dcm"):
        read_record(path)


def test_implausible_patient_values_are_dropped_with_a_note(tmp_path, real_record):
    def change(dataset):
        dataset.PatientSize = "17.8"  # metres: someone typed centimetres / 10
        dataset.PatientAge = "sixty"
    record = read_record(_edit(write_dicom_ecg(real_record, tmp_path / "p.dcm"), change))
    assert record.patient.height_cm is None and record.patient.age_years is None
    assert any("height_cm" in note for note in record.notes) and any("age" in note for note in record.notes)


def test_median_beat_only_is_read_with_a_note(tmp_path, real_record):
    record = read_record(_edit(write_dicom_ecg(real_record, tmp_path / "m.dcm"),
                               _set("MultiplexGroupLabel", "MEDIAN BEAT")))
    assert any("MEDIAN BEAT" in note for note in record.notes)


def test_missing_pydicom_says_how_to_install(tmp_path, real_record, monkeypatch):
    path = write_dicom_ecg(real_record, tmp_path / "ecg.dcm")
    monkeypatch.setattr(dicom_ecg, "_pydicom", lambda: None)
    with pytest.raises(RecordError, match=r"pip install 'elvmass\[dicom\]'"):
        read_record(path)


def test_record_with_patient_context_defaults(tmp_path):
    rng = np.random.default_rng(3)
    record = EcgRecord((rng.standard_normal((12, 5000)) * 0.3).astype(np.float32), 500.0, STANDARD_LEADS,
                       patient=PatientContext())
    back = read_record(write_dicom_ecg(record, tmp_path / "anon.dcm"))
    assert back.patient == PatientContext()
