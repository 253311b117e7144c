"""WFDB records (LUDB, CinC 2021 ``.mat``, PTB, MIT-BIH, CPSC) through the ``wfdb`` library.

Demographics come from header comments, which each database writes differently:
``# Age: 74`` / ``# Sex: Male`` (CinC 2021), ``#<age>: 51`` / ``#<sex>: F`` (LUDB),
``# age: 81`` / ``# sex: female`` (PTB), ``# 69 M 1085 1629 x1`` (MIT-BIH). ``# Height: 177`` and
``# Weight: 76`` lines (cm, kg) are read too.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge_runtime.record import EcgRecord, PatientContext, RecordError, normalize_sex

_UNIT_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}
_KEY_VALUE = re.compile(r"^\s*<?\s*([A-Za-z][A-Za-z ]*?)\s*>?\s*:\s*(.*?)\s*$")
_MITBIH_DEMOGRAPHICS = re.compile(r"^\s*(\d{1,3}|\?\??)\s+([MF?])\b")


def parse_header_comments(comments: list[str]) -> tuple[PatientContext, list[str]]:
    """Patient context from WFDB header comments, plus notes about values that were dropped."""
    fields: dict[str, str] = {}
    for line in comments:
        match = _KEY_VALUE.match(line)
        if match:
            fields.setdefault(match.group(1).strip().lower(), match.group(2))
    age_text, sex_text = fields.get("age"), fields.get("sex")
    if age_text is None and comments:
        mit = _MITBIH_DEMOGRAPHICS.match(comments[0])
        if mit:
            age_text, sex_text = mit.group(1), mit.group(2)
    notes: list[str] = []
    values = {
        "age_years": _number(age_text),
        "height_cm": _number(fields.get("height")),
        "weight_kg": _number(fields.get("weight")),
    }
    for name, (low, high) in PatientContext.LIMITS.items():
        value = values[name]
        if value is not None and not low <= value <= high:
            notes.append(f"header {name}={value:g} is implausible and was ignored")
            values[name] = None
    return PatientContext(sex=normalize_sex(sex_text), **values), notes


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def read_wfdb(header_path: str | Path) -> EcgRecord:
    """Read a WFDB record given its ``.hea`` path; samples converted to millivolts."""
    header_path = Path(header_path)
    source = str(header_path)
    if not header_path.exists():
        raise RecordError(source, "header file not found")
    try:
        import wfdb
    except ImportError:
        raise RecordError(source, "reading WFDB needs the wfdb extra: pip install 'elvmass[wfdb]'") from None
    try:
        record = wfdb.rdrecord(str(header_path.with_suffix("")), physical=True)
    except Exception as error:  # wfdb raises many types for malformed files
        raise RecordError(source, f"not a readable WFDB record ({type(error).__name__}: {error})") from None
    if record.p_signal is None or record.p_signal.size == 0:
        raise RecordError(source, "record has no samples")
    scales = []
    for name, unit in zip(record.sig_name, record.units or ["mV"] * record.n_sig):
        factor = _UNIT_TO_MV.get(str(unit).strip().lower())
        if factor is None:
            raise RecordError(source, f"lead {name}: unknown unit {unit!r}")
        scales.append(factor)
    signals = (record.p_signal * np.asarray(scales)[None, :]).T
    if not np.all(np.isfinite(signals)):
        raise RecordError(source, "non-finite samples (NaN/inf; WFDB invalid-sample markers) in the record")
    patient, notes = parse_header_comments(list(record.comments or []))
    return EcgRecord(
        signals_mv=signals.astype(np.float32),
        fs=float(record.fs),
        lead_names=tuple(record.sig_name),
        patient=patient,
        source=source,
        format="wfdb",
        notes=notes,
    )
