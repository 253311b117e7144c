"""WFDB records (LUDB, CinC 2021 ``.mat``, PTB, MIT-BIH, CPSC): the ``wfdb`` library or a native reader.

Demographics come from header comments, which each database writes differently:
``# Age: 74`` / ``# Sex: Male`` (CinC 2021), ``#<age>: 51`` / ``#<sex>: F`` (LUDB),
``# age: 81`` / ``# sex: female`` (PTB), ``# 69 M 1085 1629 x1`` (MIT-BIH). ``# Height: 177`` and
``# Weight: 76`` lines (cm, kg) are read too.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edge_runtime.formats.limits import drop_implausible, note_normalized_amplitudes, read_limited
from edge_runtime.formats.wfdb_native import UnsupportedWfdbFeature, read_physical
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
    values = drop_implausible(values, "in the header", notes)
    return PatientContext(sex=normalize_sex(sex_text), **values), notes


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().split()[0])
    except (ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None


def read_wfdb(header_path: str | Path, *, backend: str = "auto") -> EcgRecord:
    """Read a WFDB record given its ``.hea`` path; samples converted to millivolts.

    Parameters
    ----------
    header_path : str or Path
        The record's ``.hea`` file.
    backend : {"auto", "wfdb", "native"}
        ``native`` is the pure-numpy reader in :mod:`edge_runtime.formats.wfdb_native` (the device has no
        wfdb), ``wfdb`` the wfdb library. ``auto`` reads natively, so the device and a workstation
        run the same code and nothing heavy (wfdb pulls pandas) is imported, and falls back to the
        library only for WFDB features the native reader lacks (other formats, multi-segment
        records) when it is installed. Both give identical millivolts (tested on every record in
        ../shared/data).

    Returns
    -------
    EcgRecord
        At the file's own rate, lead names canonical, demographics from the header comments.

    Raises
    ------
    RecordError
        With the file and the problem.
    """
    header_path = Path(header_path)
    source = str(header_path)
    if not header_path.exists():
        raise RecordError(source, "header file not found")
    if backend not in ("auto", "wfdb", "native"):
        raise ValueError(f"backend must be 'auto', 'wfdb' or 'native', got {backend!r}")
    if backend == "wfdb":
        physical, fs, names, units, comments = _read_with_library(header_path)
    else:
        try:
            physical, header = read_physical(header_path)
        except UnsupportedWfdbFeature:
            if backend == "native" or not _wfdb_installed():
                raise
            return read_wfdb(header_path, backend="wfdb")
        fs, comments = header.fs, list(header.comments)
        names = [signal.name for signal in header.signals]
        units = [signal.units for signal in header.signals]
    if physical.size == 0:
        raise RecordError(source, "record has no samples")
    scales = []
    for name, unit in zip(names, units):
        factor = _UNIT_TO_MV.get(str(unit).strip().lower())
        if factor is None:
            raise RecordError(source, f"lead {name}: unknown unit {unit!r}")
        scales.append(factor)
    signals = (physical * np.asarray(scales)[None, :]).T
    if not np.all(np.isfinite(signals)):
        raise RecordError(source, "non-finite samples (NaN/inf; WFDB invalid-sample markers) in the record")
    patient, notes = parse_header_comments(comments)
    record = EcgRecord(
        signals_mv=signals.astype(np.float32),
        fs=float(fs),
        lead_names=tuple(names),
        patient=patient,
        source=source,
        format="wfdb",
        notes=notes,
    )
    return note_normalized_amplitudes(record)


def _wfdb_installed() -> bool:
    try:
        import wfdb  # noqa: F401  (lazy: it pulls pandas, never at module level)
    except ImportError:
        return False
    return True


def _read_with_library(header_path: Path) -> tuple[np.ndarray, float, list[str], list[str], list[str]]:
    source = str(header_path)
    read_limited(header_path, source=source)  # the size cap, before wfdb reads anything
    try:
        import wfdb
    except ImportError:
        raise RecordError(source, "backend='wfdb' needs the wfdb extra: pip install 'elvmass[wfdb]'") from None
    try:
        record = wfdb.rdrecord(str(header_path.with_suffix("")), physical=True)
    except Exception as error:  # wfdb raises many types for malformed files
        raise RecordError(source, f"not a readable WFDB record ({type(error).__name__}: {error})") from None
    if record.p_signal is None or record.p_signal.size == 0:
        raise RecordError(source, "record has no samples")
    units = list(record.units or ["mV"] * record.n_sig)
    return record.p_signal, float(record.fs), list(record.sig_name), units, list(record.comments or [])
