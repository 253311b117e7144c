"""HL7 annotated ECG (aECG, the FDA's XML format; namespace ``urn:hl7-org:v3``).

The waveforms sit in ``AnnotatedECG/component/series/component/sequenceSet/component/sequence``.
One sequence has code ``TIME_ABSOLUTE`` or ``TIME_RELATIVE`` whose ``value/increment`` (value +
unit ``s``/``ms``/``us``) gives the sampling interval; each lead sequence has code
``MDC_ECG_LEAD_<name>`` and a ``value xsi:type="SLIST_PQ"`` holding ``origin`` and ``scale``
(value + unit ``uV``/``mV``/``V``) and ``digits`` (space-separated integers):
``physical = origin + scale * digit``.

Sex comes from ``subjectDemographicPerson/administrativeGenderCode/@code`` and age from its
``birthTime`` and the ECG's ``effectiveTime/low`` when both are present; aECG has no standard
place for height and weight.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from edge_runtime.formats.limits import note_normalized_amplitudes
from edge_runtime.formats.xml_safe import local_name, parse_xml_file
from edge_runtime.record import (
    INDEPENDENT_LEADS,
    STANDARD_LEADS,
    EcgRecord,
    PatientContext,
    RecordError,
    derive_limb_leads,
    normalize_sex,
)

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
_N = f"{{{NS}}}"
# Physical units of origin/scale -> millivolts per unit
VOLTAGE_UNITS_TO_MV = {"uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "mv": 1.0, "v": 1e3, "nv": 1e-6}
TIME_UNITS_TO_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
LEAD_CODES = {f"MDC_ECG_LEAD_{name.upper()}": name for name in STANDARD_LEADS}
TIME_CODES = ("TIME_ABSOLUTE", "TIME_RELATIVE")


def read_hl7_aecg(path: str | Path) -> EcgRecord:
    """Read an HL7 aECG XML file.

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file.

    Returns
    -------
    EcgRecord
        12 standard leads in millivolts (III, aVR, aVL, aVF derived from I and II when the file
        stores only the 8 independent leads); other lead codes are skipped with a note.

    Raises
    ------
    RecordError
        Naming the file and the problem: unsafe or malformed XML, no series, no time sequence,
        unknown units, non-integer digits, missing leads, unequal lead lengths.
    """
    source = str(path)
    root = parse_xml_file(path)
    if root.tag != f"{_N}AnnotatedECG":
        raise RecordError(source, f"root element is <{root.tag}>, not <AnnotatedECG> in {NS}")
    notes: list[str] = []
    sequence_set = _pick_sequence_set(root, source)
    fs: float | None = None
    leads: dict[str, np.ndarray] = {}
    for sequence in sequence_set.findall(f"{_N}component/{_N}sequence"):
        code_element = sequence.find(f"{_N}code")
        code = code_element.get("code", "") if code_element is not None else ""
        value = sequence.find(f"{_N}value")
        if value is None:
            raise RecordError(source, f"sequence {code or '?'} has no <value>")
        if code in TIME_CODES:
            fs = _sampling_rate(value, source)
        elif code in LEAD_CODES:
            name = LEAD_CODES[code]
            if name in leads:
                raise RecordError(source, f"lead {name} appears twice")
            leads[name] = _lead_samples(value, name, source)
        else:
            notes.append(f"sequence with code {code!r} skipped")
    if fs is None:
        raise RecordError(source, "no TIME_ABSOLUTE/TIME_RELATIVE sequence: sampling rate unknown")
    missing = [name for name in INDEPENDENT_LEADS if name not in leads]
    if missing:
        raise RecordError(source, f"missing leads {', '.join(missing)}")
    lengths = {name: len(values) for name, values in leads.items()}
    if len(set(lengths.values())) != 1:
        raise RecordError(source, f"leads have unequal lengths: {lengths}")
    for name, values in derive_limb_leads(leads["I"], leads["II"]).items():
        leads.setdefault(name, values)
    patient, demographic_notes = _demographics(root)
    record = EcgRecord(
        signals_mv=np.stack([leads[name] for name in STANDARD_LEADS]),
        fs=fs,
        lead_names=STANDARD_LEADS,
        patient=patient,
        source=source,
        format="hl7-aecg",
        notes=notes + demographic_notes,
    )
    return note_normalized_amplitudes(record)


def _pick_sequence_set(root: Element, source: str) -> Element:
    """The rhythm series' sequence set (the first series when none is coded RHYTHM)."""
    series = root.findall(f"{_N}component/{_N}series")
    if not series:
        raise RecordError(source, "no component/series in the AnnotatedECG")
    chosen = next((s for s in series if _code(s) == "RHYTHM"), series[0])
    sequence_set = chosen.find(f"{_N}component/{_N}sequenceSet")
    if sequence_set is None:
        raise RecordError(source, "series has no component/sequenceSet")
    return sequence_set


def _code(element: Element) -> str:
    code = element.find(f"{_N}code")
    return code.get("code", "") if code is not None else ""


def _sampling_rate(value: Element, source: str) -> float:
    increment = value.find(f"{_N}increment")
    if increment is None:
        raise RecordError(source, "time sequence has no <increment>")
    step = _number(increment.get("value"))
    unit = (increment.get("unit") or "s").strip()
    if unit not in TIME_UNITS_TO_S:
        raise RecordError(source, f"time increment has unknown unit {unit!r}")
    if step is None or step <= 0:
        raise RecordError(source, f"time increment {increment.get('value')!r} is not a positive number")
    fs = 1.0 / (step * TIME_UNITS_TO_S[unit])
    if not 1.0 <= fs <= 100_000.0:
        raise RecordError(source, f"implausible sampling rate {fs:g} Hz")
    return round(fs, 6)  # 1 / 0.002 s is 500 Hz, not 499.99999999999994


def _physical_quantity(element: Element | None, what: str, name: str, source: str) -> float:
    """A PQ element (``value`` + ``unit``) in millivolts."""
    if element is None:
        raise RecordError(source, f"lead {name}: no <{what}>")
    number = _number(element.get("value"))
    if number is None:
        raise RecordError(source, f"lead {name}: {what} value {element.get('value')!r} is not a finite number")
    unit = (element.get("unit") or "").strip().lower()
    if unit not in VOLTAGE_UNITS_TO_MV:
        raise RecordError(source, f"lead {name}: {what} has unknown unit {element.get('unit')!r}")
    return number * VOLTAGE_UNITS_TO_MV[unit]


def _lead_samples(value: Element, name: str, source: str) -> np.ndarray:
    value_type = value.get(f"{{{XSI}}}type", "")
    if value_type != "SLIST_PQ":
        raise RecordError(source, f"lead {name}: value type {value_type!r} (expected SLIST_PQ)")
    origin_mv = _physical_quantity(value.find(f"{_N}origin"), "origin", name, source)
    scale_mv = _physical_quantity(value.find(f"{_N}scale"), "scale", name, source)
    digits_element = value.find(f"{_N}digits")
    text = (digits_element.text or "") if digits_element is not None else ""
    try:
        digits = np.array([int(token) for token in text.split()], dtype=np.int64)
    except ValueError:
        raise RecordError(source, f"lead {name}: <digits> holds something other than integers") from None
    except OverflowError:
        raise RecordError(source, f"lead {name}: a digit is too large") from None
    if digits.size == 0:
        raise RecordError(source, f"lead {name}: no <digits>")
    return origin_mv + scale_mv * digits.astype(np.float64)


def _demographics(root: Element) -> tuple[PatientContext, list[str]]:
    person = next((e for e in root.iter() if local_name(e) == "subjectDemographicPerson"), None)
    if person is None:
        return PatientContext(), []
    gender = person.find(f"{_N}administrativeGenderCode")
    sex = normalize_sex(gender.get("code")) if gender is not None else None
    notes: list[str] = []
    age = None
    birth = person.find(f"{_N}birthTime")
    recorded = root.find(f"{_N}effectiveTime/{_N}low")
    if birth is not None and recorded is not None:
        born, taken = _hl7_time(birth.get("value")), _hl7_time(recorded.get("value"))
        if born is not None and taken is not None:
            age = (taken - born).days / 365.25
            low, high = PatientContext.LIMITS["age_years"]
            if not low <= age <= high:
                notes.append(f"age {age:.1f} years from birthTime is implausible and was ignored")
                age = None
    return PatientContext(age_years=age, sex=sex), notes


def _hl7_time(text: str | None) -> datetime | None:
    """HL7 TS ``YYYYMMDD[HHMMSS[.fff]]`` -> datetime (the date part is enough for an age)."""
    if not text or len(text) < 8:
        return None
    try:
        return datetime.strptime(text[:8], "%Y%m%d")
    except ValueError:
        return None


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def write_hl7_aecg(
    record: EcgRecord,
    path: str | Path,
    *,
    scale_uv: float = 1.0,
    birth_date: str | None = None,
    recorded_date: str = "20250101",
) -> Path:
    """Write ``record`` as an HL7 aECG file with one RHYTHM series of the 12 standard leads.

    Parameters
    ----------
    record : EcgRecord
        Needs I, II and V1-V6 (the other limb leads are derived when absent).
    path : str or Path
        Output ``.xml`` file.
    scale_uv : float
        Quantization step of the written digits in microvolts.
    birth_date, recorded_date : str, optional
        ``YYYYMMDD``; with ``birth_date`` the reader can recover an age.

    Returns
    -------
    Path
        ``path``.
    """
    from xml.etree.ElementTree import ElementTree, SubElement, indent, register_namespace

    register_namespace("", NS)
    register_namespace("xsi", XSI)
    standard = record.to_standard_12()
    root = Element(f"{_N}AnnotatedECG")
    SubElement(root, f"{_N}code", code="93000", codeSystem="2.16.840.1.113883.6.12")
    effective = SubElement(root, f"{_N}effectiveTime")
    SubElement(effective, f"{_N}low", value=recorded_date)
    subject = SubElement(root, f"{_N}componentOf")
    for tag in ("timepointEvent", "componentOf", "subjectAssignment", "subject", "trialSubject"):
        subject = SubElement(subject, f"{_N}{tag}")
    person = SubElement(subject, f"{_N}subjectDemographicPerson")
    if standard.patient.sex is not None:
        SubElement(person, f"{_N}administrativeGenderCode", code=standard.patient.sex, codeSystem="2.16.840.1.113883.5.1")
    if birth_date is not None:
        SubElement(person, f"{_N}birthTime", value=birth_date)
    series = SubElement(SubElement(root, f"{_N}component"), f"{_N}series")
    SubElement(series, f"{_N}code", code="RHYTHM", codeSystem="2.16.840.1.113883.5.4")
    sequence_set = SubElement(SubElement(series, f"{_N}component"), f"{_N}sequenceSet")
    time_sequence = SubElement(SubElement(sequence_set, f"{_N}component"), f"{_N}sequence")
    SubElement(time_sequence, f"{_N}code", code="TIME_RELATIVE", codeSystem="2.16.840.1.113883.5.4")
    time_value = SubElement(time_sequence, f"{_N}value", {f"{{{XSI}}}type": "GLIST_PQ"})
    SubElement(time_value, f"{_N}head", value="0", unit="s")
    SubElement(time_value, f"{_N}increment", value=repr(1.0 / standard.fs), unit="s")
    for name in STANDARD_LEADS:
        sequence = SubElement(SubElement(sequence_set, f"{_N}component"), f"{_N}sequence")
        SubElement(sequence, f"{_N}code", code=f"MDC_ECG_LEAD_{name.upper()}", codeSystem="2.16.840.1.113883.6.24")
        value = SubElement(sequence, f"{_N}value", {f"{{{XSI}}}type": "SLIST_PQ"})
        SubElement(value, f"{_N}origin", value="0", unit="uV")
        SubElement(value, f"{_N}scale", value=f"{scale_uv:g}", unit="uV")
        digits = np.round(standard.lead(name).astype(np.float64) * 1000.0 / scale_uv).astype(np.int64)
        SubElement(value, f"{_N}digits").text = " ".join(map(str, digits.tolist()))
    indent(root)
    path = Path(path)
    ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
