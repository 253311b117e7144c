"""DICOM ECG waveforms (PS3.3 A.34): 12-Lead ECG and General ECG Waveform Storage, in and out.

What is read (PS3.3 C.10.9 Waveform module), from one multiplex group of the Waveform Sequence
(5400,0100) (the RHYTHM group, else the longest; a MEDIAN BEAT group only when nothing else exists):

* Number of Waveform Channels / Samples, Sampling Frequency, Waveform Bits Allocated (16 or 32),
  Waveform Sample Interpretation (SS, SL, US, UL, SB, UB) and Waveform Data (channels interleaved);
* per channel (Channel Definition Sequence): the lead from Channel Source Sequence (SCPECG
  ``5.6.3-9-n`` or MDC ``2:n`` codes, else the code meaning ``Lead aVR``), Channel Sensitivity
  with its UCUM units (``uV``, ``mV``, ``V``, ``nV``), Channel Sensitivity Correction Factor,
  Channel Baseline and Channel Sample Skew. ``physical = raw * sensitivity * correction + baseline``
  (as pydicom's ``multiplex_array(as_raw=False)``), in the units' scale;
* Patient's Age (AS), Sex, Size (m) and Weight (kg), and Patient ID.

pydicom is imported only when a DICOM file is read or written (extra ``dicom``).
"""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np

from edge_runtime.formats.limits import drop_implausible, note_normalized_amplitudes, read_limited
from edge_runtime.record import (
    STANDARD_LEADS,
    EcgRecord,
    PatientContext,
    RecordError,
    canonical_lead_name,
    normalize_sex,
)

TWELVE_LEAD_ECG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.9.1.1"
GENERAL_ECG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.9.1.2"
ECG_SOP_CLASSES = {TWELVE_LEAD_ECG_SOP_CLASS: "12-lead ECG", GENERAL_ECG_SOP_CLASS: "General ECG"}
# UCUM unit of Channel Sensitivity -> millivolts per unit
UCUM_TO_MV = {"uV": 1e-3, "mV": 1.0, "V": 1e3, "nV": 1e-6}
# SCPECG lead codes (Annex of EN 1064, as DICOM CID 3001 carries them): suffix -> lead
_SCPECG_LEADS = {"1": "I", "2": "II", "3": "V1", "4": "V2", "5": "V3", "6": "V4", "7": "V5", "8": "V6",
                 "61": "III", "62": "aVR", "63": "aVL", "64": "aVF"}
_DTYPES = {("SS", 16): "<i2", ("US", 16): "<u2", ("SL", 32): "<i4", ("UL", 32): "<u4",
           ("SB", 8): "i1", ("UB", 8): "u1"}
MAX_CHANNELS = 64
MAX_SAMPLES_PER_CHANNEL = 10_000_000  # far above any resting or Holter ECG; the data length check bounds it too
_PYDICOM_HINT = "reading DICOM needs pydicom: pip install 'elvmass[dicom]'"


def is_dicom_file(path: str | Path) -> bool:
    """True when ``path`` has the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _pydicom():
    try:
        import pydicom
    except ModuleNotFoundError:
        return None
    return pydicom


def read_dicom_ecg(path: str | Path) -> EcgRecord:
    """Read a DICOM 12-Lead or General ECG Waveform Storage object.

    Parameters
    ----------
    path : str or Path
        The DICOM Part 10 file (``.dcm``).

    Returns
    -------
    EcgRecord
        The leads of the chosen multiplex group in millivolts at its own sampling rate, in standard
        order when all 12 are present; patient age/sex/height/weight when the file has them.

    Raises
    ------
    RecordError
        When pydicom is missing, the file is not an ECG waveform object, or any waveform attribute
        is missing, of the wrong type, inconsistent with the data or in unknown units.
    """
    source = str(path)
    pydicom = _pydicom()
    if pydicom is None:
        raise RecordError(source, _PYDICOM_HINT)
    data = read_limited(path)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=False)
    except Exception as error:  # pydicom raises many types on hostile bytes; none may escape a reader
        raise RecordError(source, f"not a readable DICOM file ({type(error).__name__}: {error})") from None
    try:
        return _record_from_dataset(dataset, source)
    except RecordError:
        raise
    except Exception as error:  # a wrong VR or a broken nested sequence surfaces lazily as any exception
        raise RecordError(source, f"malformed DICOM ECG ({type(error).__name__}: {error})") from None


def _record_from_dataset(dataset, source: str) -> EcgRecord:
    sop_class = str(dataset.get("SOPClassUID", "") or getattr(dataset.file_meta, "MediaStorageSOPClassUID", ""))
    if sop_class not in ECG_SOP_CLASSES:
        raise RecordError(source, f"DICOM SOP class {sop_class or 'missing'} is not 12-lead or General ECG "
                                  "Waveform Storage")
    groups = dataset.get("WaveformSequence")
    if not groups:
        raise RecordError(source, "DICOM ECG has no Waveform Sequence (5400,0100)")
    notes: list[str] = []
    group = _pick_group(list(groups), source, notes)
    fs = _number(group.get("SamplingFrequency"), "Sampling Frequency", source)
    if not 1.0 <= fs <= 100_000.0:
        raise RecordError(source, f"implausible Sampling Frequency {fs!r} Hz")
    n_channels = _integer(group.get("NumberOfWaveformChannels"), "Number of Waveform Channels", source)
    n_samples = _integer(group.get("NumberOfWaveformSamples"), "Number of Waveform Samples", source)
    if not 1 <= n_channels <= MAX_CHANNELS:
        raise RecordError(source, f"Number of Waveform Channels {n_channels} outside 1..{MAX_CHANNELS}")
    if not 1 <= n_samples <= MAX_SAMPLES_PER_CHANNEL:
        raise RecordError(source, f"Number of Waveform Samples {n_samples} outside 1..{MAX_SAMPLES_PER_CHANNEL:,}")
    raw = _samples(group, n_channels, n_samples, source)
    definitions = list(group.get("ChannelDefinitionSequence") or [])
    if len(definitions) != n_channels:
        raise RecordError(source, f"{len(definitions)} channel definitions for {n_channels} channels")
    names, rows, skews = [], [], []
    for index, definition in enumerate(definitions):
        name = _lead_name(definition, index)
        scale_mv, baseline_mv = _channel_scale(definition, name, source)
        rows.append(raw[:, index].astype(np.float64) * scale_mv + baseline_mv)
        names.append(name)
        skews.append(_optional_number(definition.get("ChannelSampleSkew"), "Channel Sample Skew", source) or 0.0)
    _check_skews(skews, fs, source, notes)
    signals = np.stack(rows)
    if set(STANDARD_LEADS) <= set(names):
        order = [names.index(name) for name in STANDARD_LEADS] + [i for i, n in enumerate(names) if n not in STANDARD_LEADS]
        signals, names = signals[order], [names[i] for i in order]
    patient, patient_notes = _patient(dataset)
    record = EcgRecord(signals_mv=signals, fs=fs, lead_names=tuple(names), patient=patient, source=source,
                       format="dicom-ecg", notes=notes + patient_notes)
    return note_normalized_amplitudes(record)


def _pick_group(groups: list, source: str, notes: list[str]):
    def label(group) -> str:
        return str(group.get("MultiplexGroupLabel", "") or "").strip().upper()

    usable = [group for group in groups if "MEDIAN" not in label(group)]
    if not usable:
        notes.append("only a MEDIAN BEAT multiplex group; read the averaged beat instead of a rhythm strip")
        usable = groups
    rhythm = [group for group in usable if label(group) == "RHYTHM"]
    if rhythm:
        return rhythm[0]

    def length(group) -> int:
        value = group.get("NumberOfWaveformSamples")
        return value if isinstance(value, int) else -1

    return max(usable, key=length)


def _samples(group, n_channels: int, n_samples: int, source: str) -> np.ndarray:
    interpretation = str(group.get("WaveformSampleInterpretation", "") or "").strip()
    bits = group.get("WaveformBitsAllocated")
    dtype = _DTYPES.get((interpretation, bits)) if isinstance(bits, int) else None
    if dtype is None:
        raise RecordError(source, f"unsupported Waveform Sample Interpretation {interpretation!r} with "
                                  f"{bits!r} bits allocated (expected SS/US 16, SL/UL 32, SB/UB 8)")
    payload = group.get("WaveformData")
    if not isinstance(payload, (bytes, bytearray)):
        raise RecordError(source, "Waveform Data (5400,1010) is missing or not OB/OW bytes")
    width = np.dtype(dtype).itemsize
    expected = n_channels * n_samples * width
    # OB/OW values are padded to an even length, so 8-bit data may carry one extra byte.
    if len(payload) not in (expected, expected + 1) or (len(payload) == expected + 1 and width != 1):
        raise RecordError(source, f"Waveform Data holds {len(payload):,} bytes but {n_channels} channels x "
                                  f"{n_samples:,} samples x {width} bytes need {expected:,}")
    return np.frombuffer(bytes(payload[:expected]), dtype=dtype).reshape(n_samples, n_channels)


def _lead_name(definition, index: int) -> str:
    sources = definition.get("ChannelSourceSequence") or []
    if sources:
        item = sources[0]
        code = str(item.get("CodeValue", "") or "").strip()
        scheme = str(item.get("CodingSchemeDesignator", "") or "").strip().upper()
        suffix = None
        if scheme == "SCPECG" and code.startswith("5.6.3-9-"):
            suffix = code.rsplit("-", 1)[-1]
        elif scheme == "MDC" and code.startswith("2:"):
            suffix = code[2:]
        if suffix in _SCPECG_LEADS:
            return _SCPECG_LEADS[suffix]
        meaning = str(item.get("CodeMeaning", "") or "")
        # "Lead I (Einthoven)", "Lead aVR", "Lead V1"
        meaning = re.sub(r"\(.*?\)", "", meaning).strip()
        meaning = re.sub(r"^lead\s+", "", meaning, flags=re.IGNORECASE)
        if meaning:
            return canonical_lead_name(meaning)
    label = str(definition.get("ChannelLabel", "") or "").strip()
    return canonical_lead_name(label) if label else f"channel {index + 1}"


def _channel_scale(definition, name: str, source: str) -> tuple[float, float]:
    """(mV per raw unit, baseline in mV) of one channel."""
    sensitivity = _optional_number(definition.get("ChannelSensitivity"), f"lead {name}: Channel Sensitivity", source)
    if sensitivity is None:
        raise RecordError(source, f"lead {name}: no Channel Sensitivity; amplitudes would be unitless")
    if sensitivity == 0:
        raise RecordError(source, f"lead {name}: Channel Sensitivity is 0")
    units = definition.get("ChannelSensitivityUnitsSequence") or []
    code = str(units[0].get("CodeValue", "") or "").strip() if units else ""
    if code not in UCUM_TO_MV:
        raise RecordError(source, f"lead {name}: unknown Channel Sensitivity units {code or 'missing'!r} "
                                  f"(expected UCUM {', '.join(UCUM_TO_MV)})")
    correction = _optional_number(definition.get("ChannelSensitivityCorrectionFactor"),
                                  f"lead {name}: Channel Sensitivity Correction Factor", source)
    baseline = _optional_number(definition.get("ChannelBaseline"), f"lead {name}: Channel Baseline", source)
    to_mv = UCUM_TO_MV[code]
    scale = sensitivity * (1.0 if correction is None else correction) * to_mv
    if not (math.isfinite(scale) and scale != 0 and abs(scale) < 1e6):
        raise RecordError(source, f"lead {name}: unusable sensitivity {scale!r} mV per unit")
    return scale, (baseline or 0.0) * to_mv


def _check_skews(skews: list[float], fs: float, source: str, notes: list[str]) -> None:
    spread_ms = max(skews) - min(skews)
    if spread_ms == 0:
        return
    if spread_ms * fs / 1000.0 < 0.5:
        notes.append(f"channel sample skews differ by {spread_ms:g} ms (under half a sample); ignored")
        return
    raise RecordError(source, f"channel sample skews differ by {spread_ms:g} ms; leads not sampled together "
                              "are not supported")


def _patient(dataset) -> tuple[PatientContext, list[str]]:
    notes: list[str] = []
    values: dict[str, float | None] = {"age_years": None, "height_cm": None, "weight_kg": None}
    age_text = str(dataset.get("PatientAge", "") or "").strip().upper()
    if age_text:
        match = re.fullmatch(r"(\d{1,3})([DWMY])", age_text)
        if match:
            values["age_years"] = int(match[1]) / {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[match[2]]
        else:
            notes.append(f"Patient's Age {age_text!r} is not a DICOM age string; ignored")
    for key, attribute, factor in (("height_cm", "PatientSize", 100.0), ("weight_kg", "PatientWeight", 1.0)):
        try:
            value = dataset.get(attribute)
            number = None if value in (None, "") else float(value) * factor
        except (TypeError, ValueError):
            notes.append(f"{attribute} {dataset.get(attribute)!r} is not a number; ignored")
            continue
        values[key] = number if number is not None and math.isfinite(number) else None
    values = drop_implausible(values, "in the DICOM patient module", notes)
    patient_id = str(dataset.get("PatientID", "") or "").strip() or None
    return PatientContext(sex=normalize_sex(dataset.get("PatientSex")), patient_id=patient_id, **values), notes


def _optional_number(value, what: str, source: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RecordError(source, f"{what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise RecordError(source, f"{what} is not finite")
    return number


def _number(value, what: str, source: str) -> float:
    number = _optional_number(value, what, source)
    if number is None:
        raise RecordError(source, f"{what} is missing")
    return number


def _integer(value, what: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(source, f"{what} is {value!r}, not an integer (wrong VR or missing)")
    return value


def write_dicom_ecg(record: EcgRecord, path: str | Path, *, microvolts_per_bit: float = 1.0) -> Path:
    """Write ``record`` as a DICOM ECG waveform object (explicit VR little endian).

    A 12-lead record of 200-1000 Hz and at most 16 s becomes 12-Lead ECG Waveform Storage, anything
    else General ECG Waveform Storage (the 12-lead IOD's limits, PS3.3 A.34.3.4). One RHYTHM
    multiplex group, signed 16-bit samples, SCPECG lead codes, sensitivity in uV.

    Parameters
    ----------
    record : EcgRecord
        Any leads; 12-lead records are written in standard order.
    path : str or Path
        Output file.
    microvolts_per_bit : float
        Quantization step (1 uV keeps +-32.7 mV).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    RecordError
        When pydicom is not installed.
    ValueError
        When a lead does not fit int16 at this step.
    """
    pydicom = _pydicom()
    if pydicom is None:
        raise RecordError(str(path), _PYDICOM_HINT)
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    if record.has_standard_12():
        record = record.to_standard_12()
    twelve_lead = (record.lead_names == STANDARD_LEADS and 200.0 <= record.fs <= 1000.0
                   and record.duration_s <= 16.0)
    sop_class = TWELVE_LEAD_ECG_SOP_CLASS if twelve_lead else GENERAL_ECG_SOP_CLASS
    counts = np.round(record.signals_mv.astype(np.float64) * 1000.0 / microvolts_per_bit)
    if counts.min() < -32768 or counts.max() > 32767:
        raise ValueError(f"signal exceeds int16 at {microvolts_per_bit} uV/bit")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = "ECG"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "1", 1, 1
    ds.StudyDate = ds.StudyTime = ds.ContentDate = ds.ContentTime = ds.AcquisitionDateTime = ""
    ds.AccessionNumber = ds.ReferringPhysicianName = ""
    ds.Manufacturer = "elvmass"
    ds.PatientName = ""
    patient = record.patient
    ds.PatientID = patient.patient_id or ""
    ds.PatientBirthDate = ""
    ds.PatientSex = patient.sex or ""
    if patient.age_years is not None:
        ds.PatientAge = f"{min(int(patient.age_years), 999):03d}Y"
    if patient.height_cm is not None:
        ds.PatientSize = f"{patient.height_cm / 100.0:.3f}"
    if patient.weight_kg is not None:
        ds.PatientWeight = f"{patient.weight_kg:.1f}"
    ds.AcquisitionContextSequence = Sequence()
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.WaveformOriginality = "ORIGINAL"
    group.NumberOfWaveformChannels = len(record.lead_names)
    group.NumberOfWaveformSamples = record.n_samples
    group.SamplingFrequency = f"{record.fs:g}"
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    codes = {lead: suffix for suffix, lead in _SCPECG_LEADS.items()}
    definitions = []
    for name in record.lead_names:
        definition = Dataset()
        lead_source = Dataset()
        if name in codes:
            lead_source.CodeValue = f"5.6.3-9-{codes[name]}"
            lead_source.CodingSchemeDesignator = "SCPECG"
            lead_source.CodingSchemeVersion = "1.3"
        else:
            lead_source.CodeValue = name[:16]
            lead_source.CodingSchemeDesignator = "99ELVMASS"
        lead_source.CodeMeaning = f"Lead {name}"
        definition.ChannelSourceSequence = Sequence([lead_source])
        definition.ChannelLabel = name[:16]
        definition.ChannelSensitivity = f"{microvolts_per_bit:g}"
        unit = Dataset()
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = "uV", "UCUM", "microvolt"
        definition.ChannelSensitivityUnitsSequence = Sequence([unit])
        definition.ChannelSensitivityCorrectionFactor = "1"
        definition.ChannelBaseline = "0"
        definition.ChannelSampleSkew = "0"
        definition.WaveformBitsStored = 16
        definitions.append(definition)
    group.ChannelDefinitionSequence = Sequence(definitions)
    group.WaveformData = counts.T.astype("<i2").tobytes()  # samples x channels, interleaved
    ds.WaveformSequence = Sequence([group])
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path
