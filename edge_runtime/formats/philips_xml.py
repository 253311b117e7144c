"""Philips SierraECG / PhilipsECG XML (PageWriter carts, TraceMaster / IntelliSpace ECG), 1.03-1.04.

Structure (namespace ``http://www3.medical.philips.com``; the elements read here)::

    <restingecgdata>
      <documentinfo> documenttype (SierraECG | PhilipsECG), documentversion (1.03, 1.04, 1.04.01, 1.04.02)
      <dataacquisition date="YYYY-MM-DD"> <signalcharacteristics> samplingrate, signalresolution | resolution,
                                           acquisitiontype
      <patient><generalpatientdata> patientid, age/years | age/dateofbirth, sex, height/cm|inch, weight/kg|lb
      <...measurements><globalmeasurements> heartrate | meanventrate, print | meanprint, qrsdur | meanqrsdur,
                                            qtint | meanqtint, qtcb | meanqtc, pfrontaxis, qrsfrontaxis, tfrontaxis
      <waveforms><parsedwaveforms dataencoding="Base64" compression|compressmethod="XLI"
                                  durationperchannel (ms) leadlabels ...> base64 of XLI chunks

XLI (see :mod:`edge_runtime.formats.xli`) holds one chunk per channel (12 leads, then 4 pace/status
channels that are ignored). The cart stores III, aVR, aVL and aVF as residuals from their
Einthoven/Goldberger values, restored here. Each strip ends with a flat segment and a 1 mV
calibration pulse, identical on every lead; that tail is trimmed with a note.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import date
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from edge_runtime.formats.limits import INCH_CM, POUND_KG, drop_implausible, metric_or_imperial, note_normalized_amplitudes
from edge_runtime.formats.xli import XliError, xli_decode
from edge_runtime.formats.xml_safe import local_name, parse_xml_file
from edge_runtime.record import STANDARD_LEADS, EcgRecord, PatientContext, RecordError, canonical_lead_name, normalize_sex

NS = "{http://www3.medical.philips.com}"
DOCUMENT_TYPES = ("SierraECG", "PhilipsECG")
DOCUMENT_VERSIONS = ("1.03", "1.04", "1.04.01", "1.04.02")
# globalmeasurements element(s), first found wins -> EcgRecord.measurements key
MEASUREMENT_TAGS = {
    "heart_rate": ("heartrate", "meanventrate"),
    "pr_ms": ("print", "meanprint"),
    "qrs_ms": ("qrsdur", "meanqrsdur"),
    "qt_ms": ("qtint", "meanqtint"),
    "qtc_ms": ("qtcb", "meanqtc"),
    "p_axis": ("pfrontaxis",),
    "r_axis": ("qrsfrontaxis",),
    "t_axis": ("tfrontaxis",),
}
MAX_CHANNELS = 16
MAX_SAMPLES_PER_CHANNEL = 1_000_000


def read_philips_xml(path: str | Path) -> EcgRecord:
    """Read a Philips SierraECG / PhilipsECG XML file (versions 1.03-1.04, XLI-compressed).

    Parameters
    ----------
    path : str or Path
        The ``.xml`` file (UTF-8 or UTF-16).

    Returns
    -------
    EcgRecord
        12 standard leads in millivolts, demographics and the cart's global measurements.

    Raises
    ------
    RecordError
        Naming the file and the problem: unsafe or malformed XML, another document type or version,
        unsupported compression, corrupt XLI data, lengths that disagree with the declared duration.
    """
    source = str(path)
    root = parse_xml_file(path)
    if local_name(root) != "restingecgdata":
        raise RecordError(source, f"root element is <{local_name(root)}>, not Philips <restingecgdata>")
    kind = _text(root, "documentinfo/documenttype")
    version = _text(root, "documentinfo/documentversion")
    if kind not in DOCUMENT_TYPES:
        raise RecordError(source, f"Philips XML document type {kind or 'missing'!r} is not supported "
                                  f"(expected {' or '.join(DOCUMENT_TYPES)})")
    if version not in DOCUMENT_VERSIONS:
        raise RecordError(source, f"Philips {kind} version {version or 'missing'!r} is not supported "
                                  f"(supported: {', '.join(DOCUMENT_VERSIONS)})")
    waveform = _find(root, "waveforms/parsedwaveforms")
    if waveform is None:
        raise RecordError(source, "Philips XML has no <waveforms><parsedwaveforms>")
    signal = _find(root, "dataacquisition/signalcharacteristics")
    fs = _positive(waveform.get("samplespersecond") or _text(signal, "samplingrate"), "sampling rate", source)
    if not 1.0 <= fs <= 100_000.0:
        raise RecordError(source, f"implausible sampling rate {fs:g} Hz")
    resolution_uv = _positive(waveform.get("resolution") or _text(signal, "signalresolution")
                              or _text(signal, "resolution"), "signal resolution (uV per unit)", source)
    labels = _lead_labels(waveform, signal, source)
    leads = _decode(waveform, source)
    if len(leads) < len(labels):
        raise RecordError(source, f"{len(leads)} waveform chunks for {len(labels)} leads")
    lengths = {len(lead) for lead in leads[: len(labels)]}
    if len(lengths) != 1:
        raise RecordError(source, f"leads decode to unequal lengths {sorted(lengths)}")
    n_samples = lengths.pop()
    duration_ms = _positive(waveform.get("durationperchannel"), "durationperchannel", source)
    declared = int(round(duration_ms * fs / 1000.0))
    if declared != n_samples:
        raise RecordError(source, f"leads decode to {n_samples} samples but durationperchannel "
                                  f"{duration_ms:g} ms at {fs:g} Hz declares {declared}")
    counts = _restore_limb_leads(np.stack(leads[: len(labels)]).astype(np.int32))
    notes: list[str] = []
    end = _calibration_tail_start(counts)
    if 0 < end < n_samples:
        notes.append(f"trailing {(n_samples - end) / fs:.2f} s calibration segment (flat + 1 mV pulse) removed")
        counts = counts[:, :end]
    elif end == 0:
        raise RecordError(source, "every lead is identical over the whole strip (calibration only, no ECG)")
    patient, patient_notes = _patient(root)
    record = EcgRecord(
        signals_mv=counts.astype(np.float64) * (resolution_uv / 1000.0),
        fs=fs,
        lead_names=STANDARD_LEADS,
        patient=patient,
        measurements=_measurements(root),
        source=source,
        format="philips-xml",
        notes=notes + patient_notes,
    )
    return note_normalized_amplitudes(record)


def _decode(waveform: Element, source: str) -> list[np.ndarray]:
    encoding = waveform.get("dataencoding", "")
    if encoding != "Base64":
        raise RecordError(source, f"parsedwaveforms dataencoding {encoding!r} is not supported (Base64)")
    compression = waveform.get("compression") or waveform.get("compressmethod") or "Uncompressed"
    if compression != "XLI":
        raise RecordError(source, f"parsedwaveforms compression {compression!r} is not supported (XLI only)")
    try:
        payload = base64.b64decode("".join((waveform.text or "").split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise RecordError(source, f"parsedwaveforms is not valid base64 ({error})") from None
    try:
        return xli_decode(payload, max_leads=MAX_CHANNELS, max_samples=MAX_SAMPLES_PER_CHANNEL)
    except XliError as error:
        raise RecordError(source, f"corrupt XLI waveform data ({error})") from None


def _lead_labels(waveform: Element, signal: Element | None, source: str) -> list[str]:
    text = waveform.get("leadlabels")
    if text:
        labels = [canonical_lead_name(label) for label in text.split()]
        count = waveform.get("numberofleads")
        if count is not None:
            if not count.strip().isdigit() or int(count) > len(labels):
                raise RecordError(source, f"numberofleads {count!r} does not match leadlabels {text!r}")
            labels = labels[: int(count)]
    else:  # 1.03: the acquisition type implies the standard order
        acquisition = _text(signal, "acquisitiontype") if signal is not None else ""
        if acquisition not in ("STD-12", "10-WIRE"):
            raise RecordError(source, f"no leadlabels and acquisition type {acquisition or 'missing'!r} "
                                      "(expected STD-12 or 10-WIRE)")
        labels = list(STANDARD_LEADS)
    if tuple(labels) != STANDARD_LEADS:
        raise RecordError(source, f"lead set {' '.join(labels)} is not supported (the standard 12 leads in order)")
    return labels


def _restore_limb_leads(counts: np.ndarray) -> np.ndarray:
    """III, aVR, aVL, aVF are stored as residuals from their values computed from I and II (floor halves)."""
    lead_i, lead_ii = counts[0], counts[1]
    counts[2] = lead_ii - lead_i - counts[2]
    counts[3] = -counts[3] - (lead_i + lead_ii) // 2
    counts[4] = (lead_i - counts[2]) // 2 - counts[4]
    counts[5] = (lead_ii + counts[2]) // 2 - counts[5]
    return counts


def _calibration_tail_start(counts: np.ndarray) -> int:
    """Start of the trailing run of samples equal on every lead that holds a pulse; the length when none."""
    same = np.all(counts == counts[0], axis=0)
    differing = np.flatnonzero(~same)
    start = int(differing[-1]) + 1 if len(differing) else 0
    tail = counts[0, start:]
    return start if len(tail) and np.any(tail != 0) else counts.shape[1]


def _patient(root: Element) -> tuple[PatientContext, list[str]]:
    general = _find(root, "patient/generalpatientdata")
    if general is None:
        return PatientContext(), []
    notes: list[str] = []
    age = _number(_text(general, "age/years"))
    birth = _text(general, "age/dateofbirth")
    acquisition = _find(root, "dataacquisition")
    acquired = acquisition.get("date", "") if acquisition is not None else ""
    if age is None and birth and acquired:
        try:
            born, taken = date.fromisoformat(birth), date.fromisoformat(acquired)
            age = (taken - born).days / 365.25
        except ValueError:
            notes.append(f"dateofbirth {birth!r} or acquisition date {acquired!r} is not a date; age unknown")
    height = metric_or_imperial(_number(_text(general, "height/cm")), _number(_text(general, "height/inch")), INCH_CM)
    weight = metric_or_imperial(_number(_text(general, "weight/kg")), _number(_text(general, "weight/lb")), POUND_KG)
    values = {"age_years": age, "height_cm": height, "weight_kg": weight}
    values = drop_implausible(values, "in generalpatientdata", notes)
    patient_id = _text(general, "patientid") or None
    return PatientContext(sex=normalize_sex(_text(general, "sex")), patient_id=patient_id, **values), notes


def _measurements(root: Element) -> dict[str, float]:
    element = next((e for e in root.iter() if local_name(e) == "globalmeasurements"), None)
    if element is None:
        return {}
    found = {}
    for key, tags in MEASUREMENT_TAGS.items():
        for tag in tags:
            value = _number(_text(element, tag))
            if value is not None:
                found[key] = value
                break
    return found


def _find(element: Element | None, path: str) -> Element | None:
    """``element.find`` with every step in the Philips namespace."""
    if element is None:
        return None
    return element.find("/".join(NS + step for step in path.split("/")))


def _text(element: Element | None, path: str) -> str:
    child = _find(element, path)
    return (child.text or "").strip() if child is not None else ""


def _number(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _positive(text: str | None, what: str, source: str) -> float:
    value = _number(text)
    if value is None or value <= 0:
        raise RecordError(source, f"{what} {text!r} is not a positive number")
    return value
