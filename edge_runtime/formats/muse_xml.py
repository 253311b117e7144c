"""GE MUSE ``RestingECG`` XML: the format of the eLVMass-Net paper's data.

Structure (GE MUSE 8/9 export; the elements read here)::

    <RestingECG>
      <PatientDemographics> PatientAge, AgeUnits, Gender, HeightCM|HeightIN, WeightKG|WeightLBS
      <RestingECGMeasurements> VentricularRate, PRInterval, QRSDuration, QTInterval, QTCorrected,
                               PAxis, RAxis, TAxis
      <Waveform> (one Median, one Rhythm)
        WaveformType, SampleBase, SampleExponent
        <LeadData> LeadID, LeadSampleCountTotal, LeadAmplitudeUnitsPerBit, LeadAmplitudeUnits,
                   WaveFormData (base64 of little-endian int16)

The Rhythm waveform (10 s) is read; the Median beat is used only when there is no Rhythm, with a
note. MUSE stores 8 leads (I, II, V1-V6); III, aVR, aVL and aVF are derived from I and II.
"""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from edge_runtime.formats.limits import INCH_CM, POUND_KG, drop_implausible, metric_or_imperial, note_normalized_amplitudes
from edge_runtime.formats.xml_safe import parse_xml_file
from edge_runtime.record import (
    INDEPENDENT_LEADS,
    STANDARD_LEADS,
    EcgRecord,
    PatientContext,
    RecordError,
    canonical_lead_name,
    derive_limb_leads,
    normalize_sex,
)

# LeadAmplitudeUnits -> millivolts per unit
AMPLITUDE_UNITS_TO_MV = {"MICROVOLTS": 1e-3, "MILLIVOLTS": 1.0, "VOLTS": 1e3, "NANOVOLTS": 1e-6}
# RestingECGMeasurements element -> EcgRecord.measurements key
MEASUREMENT_KEYS = {
    "QRSDuration": "qrs_ms",
    "PAxis": "p_axis",
    "RAxis": "r_axis",
    "TAxis": "t_axis",
    "PRInterval": "pr_ms",
    "QTInterval": "qt_ms",
    "QTCorrected": "qtc_ms",
    "VentricularRate": "heart_rate",
}
_AGE_UNIT_TO_YEARS = {"YEARS": 1.0, "MONTHS": 1 / 12, "WEEKS": 7 / 365.25, "DAYS": 1 / 365.25, "HOURS": 1 / 8766}


def read_muse_xml(path: str | Path) -> EcgRecord:
    """Read a GE MUSE RestingECG XML file.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file.

    Returns
    -------
    EcgRecord
        12 standard leads in millivolts at ``SampleBase * 10**SampleExponent`` Hz, demographics and
        cart measurements (``qrs_ms``, ``p_axis``, ``r_axis``, ``t_axis``, ``pr_ms``, ``qt_ms``,
        ``qtc_ms``, ``heart_rate``).

    Raises
    ------
    RecordError
        Naming the file and the problem: unsafe or malformed XML, no waveform, wrong base64,
        missing leads, unequal lead lengths, unknown units, non-finite scale factors.
    """
    source = str(path)
    root = parse_xml_file(path)
    if root.tag != "RestingECG":
        raise RecordError(source, f"root element is <{root.tag}>, not <RestingECG>")
    notes: list[str] = []
    waveform = _pick_waveform(root, source, notes)
    fs = _sampling_rate(waveform, source)
    leads = _read_leads(waveform, source)
    missing = [name for name in INDEPENDENT_LEADS if name not in leads]
    if missing:
        raise RecordError(source, f"missing leads {', '.join(missing)} (MUSE stores I, II, V1-V6)")
    lengths = {name: len(values) for name, values in leads.items()}
    if len(set(lengths.values())) != 1:
        raise RecordError(source, f"leads have unequal lengths: {lengths}")
    for name, values in derive_limb_leads(leads["I"], leads["II"]).items():
        leads.setdefault(name, values)
    patient, demographic_notes = _demographics(root.find("PatientDemographics"))
    record = EcgRecord(
        signals_mv=np.stack([leads[name] for name in STANDARD_LEADS]),
        fs=fs,
        lead_names=STANDARD_LEADS,
        patient=patient,
        measurements=_measurements(root.find("RestingECGMeasurements")),
        source=source,
        format="muse-xml",
        notes=notes + demographic_notes,
    )
    return note_normalized_amplitudes(record)


def _pick_waveform(root: Element, source: str, notes: list[str]) -> Element:
    by_type = {_text(waveform, "WaveformType").lower(): waveform for waveform in root.findall("Waveform")}
    if "rhythm" in by_type:
        return by_type["rhythm"]
    if "median" in by_type:
        notes.append("no Rhythm waveform; read the Median beat instead (one averaged beat, not 10 s)")
        return by_type["median"]
    raise RecordError(source, "no <Waveform> with WaveformType Rhythm or Median")


def _sampling_rate(waveform: Element, source: str) -> float:
    base = _number(_text(waveform, "SampleBase"))
    exponent = _number(_text(waveform, "SampleExponent") or "0")
    if base is None or exponent is None or not -3 <= exponent <= 3:
        raise RecordError(source, "waveform has no usable SampleBase/SampleExponent")
    fs = base * 10.0**exponent
    if not (math.isfinite(fs) and 1.0 <= fs <= 100_000.0):
        raise RecordError(source, f"implausible sampling rate {fs!r} Hz")
    return fs


def _read_leads(waveform: Element, source: str) -> dict[str, np.ndarray]:
    leads: dict[str, np.ndarray] = {}
    for lead_data in waveform.findall("LeadData"):
        name = canonical_lead_name(_text(lead_data, "LeadID"))
        if not name:
            raise RecordError(source, "a <LeadData> has no LeadID")
        if name in leads:
            raise RecordError(source, f"lead {name} appears twice")
        units = _text(lead_data, "LeadAmplitudeUnits").upper() or "MICROVOLTS"
        if units not in AMPLITUDE_UNITS_TO_MV:
            raise RecordError(source, f"lead {name}: unknown LeadAmplitudeUnits {units!r}")
        per_bit = _number(_text(lead_data, "LeadAmplitudeUnitsPerBit"))
        if per_bit is None or per_bit <= 0:
            raise RecordError(source, f"lead {name}: LeadAmplitudeUnitsPerBit must be a positive number")
        payload = "".join(_text(lead_data, "WaveFormData").split())
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as error:
            raise RecordError(source, f"lead {name}: WaveFormData is not valid base64 ({error})") from None
        if not raw or len(raw) % 2:
            raise RecordError(source, f"lead {name}: WaveFormData holds {len(raw)} bytes, not whole int16 samples")
        samples = np.frombuffer(raw, dtype="<i2")
        declared = _number(_text(lead_data, "LeadSampleCountTotal"))
        if declared is not None and declared != len(samples):
            raise RecordError(source, f"lead {name}: {len(samples)} samples but LeadSampleCountTotal says {declared:g}")
        leads[name] = samples.astype(np.float64) * (per_bit * AMPLITUDE_UNITS_TO_MV[units])
    if not leads:
        raise RecordError(source, "waveform has no <LeadData>")
    return leads


def _demographics(element: Element | None) -> tuple[PatientContext, list[str]]:
    if element is None:
        return PatientContext(), []
    notes: list[str] = []
    age = _number(_text(element, "PatientAge"))
    if age is not None:
        unit = _text(element, "AgeUnits").upper() or "YEARS"
        if unit in _AGE_UNIT_TO_YEARS:
            age *= _AGE_UNIT_TO_YEARS[unit]
        else:
            notes.append(f"unknown AgeUnits {unit!r}; age ignored")
            age = None
    height = metric_or_imperial(_number(_text(element, "HeightCM")), _number(_text(element, "HeightIN")), INCH_CM)
    weight = metric_or_imperial(_number(_text(element, "WeightKG")), _number(_text(element, "WeightLBS")), POUND_KG)
    values = {"age_years": age, "height_cm": height, "weight_kg": weight}
    values = drop_implausible(values, "in PatientDemographics", notes)
    patient_id = _text(element, "PatientID") or None
    return PatientContext(sex=normalize_sex(_text(element, "Gender")), patient_id=patient_id, **values), notes


def _measurements(element: Element | None) -> dict[str, float]:
    if element is None:
        return {}
    found = {}
    for tag, key in MEASUREMENT_KEYS.items():
        value = _number(_text(element, tag))
        if value is not None:
            found[key] = value
    return found


def _text(element: Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def write_muse_xml(record: EcgRecord, path: str | Path, *, microvolts_per_bit: float = 4.88) -> Path:
    """Write ``record`` as a GE MUSE RestingECG XML file (one Rhythm waveform, 8 stored leads).

    Parameters
    ----------
    record : EcgRecord
        Needs I, II and V1-V6 (or a full 12-lead set); the limb leads III-aVF are not stored,
        as in MUSE. The sampling rate must be an integer number of Hz.
    path : str or Path
        Output ``.xml`` file.
    microvolts_per_bit : float
        Quantization step (GE carts use 4.88 uV).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        When a lead does not fit int16 at this quantization step or the rate is not whole Hz.
    """
    from xml.etree.ElementTree import ElementTree, SubElement, indent  # our own tree: no untrusted input

    standard = record.to_standard_12()
    if float(standard.fs) != round(standard.fs):
        raise ValueError(f"MUSE SampleBase is whole Hz; resample {standard.fs} Hz first")
    root = Element("RestingECG")
    demographics = SubElement(root, "PatientDemographics")
    patient = standard.patient
    _add(demographics, "PatientID", patient.patient_id)
    if patient.age_years is not None:
        _add(demographics, "PatientAge", f"{patient.age_years:g}")
        _add(demographics, "AgeUnits", "YEARS")
    _add(demographics, "Gender", {"M": "MALE", "F": "FEMALE"}.get(patient.sex or "", None))
    _add(demographics, "HeightCM", None if patient.height_cm is None else f"{patient.height_cm:g}")
    _add(demographics, "WeightKG", None if patient.weight_kg is None else f"{patient.weight_kg:g}")
    measurements = SubElement(root, "RestingECGMeasurements")
    for tag, key in MEASUREMENT_KEYS.items():
        if key in standard.measurements:
            _add(measurements, tag, f"{standard.measurements[key]:g}")
    waveform = SubElement(root, "Waveform")
    _add(waveform, "WaveformType", "Rhythm")
    _add(waveform, "WaveformStartTime", "0")
    _add(waveform, "NumberofLeads", str(len(INDEPENDENT_LEADS)))
    _add(waveform, "SampleType", "CONTINUOUS_SAMPLES")
    _add(waveform, "SampleBase", str(int(round(standard.fs))))
    _add(waveform, "SampleExponent", "0")
    for name in INDEPENDENT_LEADS:
        counts = np.round(standard.lead(name).astype(np.float64) * 1000.0 / microvolts_per_bit)
        if counts.min() < -32768 or counts.max() > 32767:
            raise ValueError(f"lead {name} exceeds int16 at {microvolts_per_bit} uV/bit")
        raw = counts.astype("<i2").tobytes()
        lead_data = SubElement(waveform, "LeadData")
        _add(lead_data, "LeadByteCountTotal", str(len(raw)))
        _add(lead_data, "LeadTimeOffset", "0")
        _add(lead_data, "LeadSampleCountTotal", str(len(counts)))
        _add(lead_data, "LeadAmplitudeUnitsPerBit", f"{microvolts_per_bit:g}")
        _add(lead_data, "LeadAmplitudeUnits", "MICROVOLTS")
        _add(lead_data, "LeadID", name)
        _add(lead_data, "LeadSampleSize", "2")
        _add(lead_data, "WaveFormData", base64.b64encode(raw).decode("ascii"))
    indent(root)
    path = Path(path)
    with open(path, "wb") as handle:
        handle.write(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE RestingECG SYSTEM "restecg.dtd">\n')
        ElementTree(root).write(handle, encoding="ISO-8859-1", xml_declaration=False)
    return path


def _add(parent: Element, tag: str, text: str | None) -> None:
    if text is None:
        return
    from xml.etree.ElementTree import SubElement

    SubElement(parent, tag).text = text
