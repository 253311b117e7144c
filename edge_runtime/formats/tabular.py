"""Plain-array ECG files: CSV (one column per lead) and NumPy ``.npy`` / ``.npz``.

CSV layout: optional ``#`` comment lines ``# fs=500`` and ``# units=uV`` (default mV), then a
header row of lead names, then one row per sample. A column named ``time``/``t``/``time_s``/
``time_ms``/``sample`` is ignored. The sampling rate must be stated, by the comment or the ``fs``
argument (they must agree when both are given)::

    # fs=500
    # units=uV
    I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6
    12,-40,-52,14,26,-46,80,120,300,410,350,200
    ...

``.npy``: one array, leads x samples, mV; needs ``fs`` and ``lead_names``.
``.npz``: arrays ``signals`` (leads x samples, mV), ``fs`` (scalar) and ``lead_names`` (strings),
optionally ``units`` (``mV``/``uV``).
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from pathlib import Path

import numpy as np

from edge_runtime.formats.limits import note_normalized_amplitudes, read_limited
from edge_runtime.record import EcgRecord, RecordError

UNITS_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}
TIME_COLUMNS = {"time", "t", "time_s", "time_ms", "sample", "index"}


def read_csv(path: str | Path, *, fs: float | None = None, lead_names: list[str] | None = None) -> EcgRecord:
    """Read a CSV ECG file (see the module docstring for the layout).

    Parameters
    ----------
    path : str or Path
        The ``.csv`` file.
    fs : float, optional
        Sampling rate in Hz, when the file has no ``# fs=`` line.
    lead_names : list of str, optional
        Lead names, when the file has no header row.

    Returns
    -------
    EcgRecord

    Raises
    ------
    RecordError
        Naming the file (and line) for a missing rate, unknown units, ragged rows, non-numeric or
        empty cells, NaN/inf.
    """
    source = str(path)
    try:
        text = read_limited(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RecordError(source, "CSV is not UTF-8 text") from None
    settings: dict[str, str] = {}
    body: list[tuple[int, str]] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            key, sep, value = stripped.lstrip("#").partition("=")
            if sep:
                settings[key.strip().lower()] = value.strip()
        elif stripped:
            body.append((line_number, stripped))
    if not body:  # say what is wrong first: an empty file has no samples, whatever its rate
        raise RecordError(source, "the CSV file holds no samples (empty or comments only)")
    fs = _resolve_fs(fs, settings.get("fs"), source)
    unit = settings.get("units", "mV")
    if unit.lower() not in UNITS_TO_MV:
        raise RecordError(source, f"unknown units {unit!r} (expected mV or uV)")
    if not body:
        raise RecordError(source, "CSV has no rows")
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in body))))
    header = [cell.strip() for cell in rows[0]]
    if _is_numeric_row(header):
        if lead_names is None:
            raise RecordError(source, "CSV has no header row of lead names; pass lead_names")
        names, data_rows, first = list(lead_names), rows, 0
    else:
        if lead_names is not None and [n for n in header if n.lower() not in TIME_COLUMNS] != list(lead_names):
            raise RecordError(source, f"header {header} disagrees with lead_names {list(lead_names)}")
        names, data_rows, first = header, rows[1:], 1
    keep = [i for i, name in enumerate(names) if name.lower() not in TIME_COLUMNS]
    if not data_rows:
        raise RecordError(source, "CSV has a header but no samples")
    values = np.empty((len(data_rows), len(keep)), dtype=np.float64)
    for index, row in enumerate(data_rows):
        line_number = body[first + index][0]
        if len(row) != len(names):
            raise RecordError(source, f"line {line_number}: {len(row)} cells, header has {len(names)}")
        try:
            values[index] = [float(row[i]) for i in keep]
        except ValueError:
            raise RecordError(source, f"line {line_number}: a cell is empty or not a number") from None
    if not np.all(np.isfinite(values)):
        bad = int(np.where(~np.isfinite(values).all(axis=1))[0][0])
        raise RecordError(source, f"line {body[first + bad][0]}: NaN or infinite sample")
    signals = values.T * UNITS_TO_MV[unit.lower()]
    record = EcgRecord(signals, fs, tuple(names[i] for i in keep), source=source, format="csv")
    return note_normalized_amplitudes(record)


def _is_numeric_row(cells: list[str]) -> bool:
    try:
        [float(cell) for cell in cells]
    except ValueError:
        return False
    return True


def _resolve_fs(argument: float | None, stated: str | None, source: str) -> float:
    from_file = None
    if stated is not None:
        try:
            from_file = float(stated)
        except ValueError:
            raise RecordError(source, f"'# fs={stated}' is not a number") from None
    if argument is not None and from_file is not None and not math.isclose(argument, from_file):
        raise RecordError(source, f"fs={argument:g} given but the file says fs={from_file:g}")
    fs = argument if argument is not None else from_file
    if fs is None:
        raise RecordError(source, "sampling rate unknown: add a '# fs=500' line or pass fs")
    if not (math.isfinite(fs) and fs > 0):
        raise RecordError(source, f"sampling rate must be positive, got {fs!r}")
    return float(fs)


def read_npy(path: str | Path, *, fs: float | None = None, lead_names: list[str] | None = None) -> EcgRecord:
    """Read a ``.npy`` (needs ``fs`` and ``lead_names``) or ``.npz`` (self-describing) ECG file.

    Parameters
    ----------
    path : str or Path
        The file.
    fs : float, optional
        Sampling rate; required for ``.npy``, must agree with the ``.npz`` when both are given.
    lead_names : list of str, optional
        One name per row; required for ``.npy``.

    Returns
    -------
    EcgRecord

    Raises
    ------
    RecordError
        For pickled objects, wrong shapes or dtypes, missing arrays, NaN/inf.
    """
    source = str(path)
    data = read_limited(path)
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise RecordError(source, f"not a readable NumPy file ({type(error).__name__}: {error})") from None
    units = "mV"
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            arrays = {}
            try:
                for key in loaded.files:
                    arrays[key] = loaded[key]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
                raise RecordError(source, f"unreadable array in .npz ({type(error).__name__}: {error})") from None
        missing = [key for key in ("signals", "fs", "lead_names") if key not in arrays]
        if missing:
            raise RecordError(source, f".npz lacks arrays {missing} (needs signals, fs, lead_names)")
        try:
            stated_fs = float(np.asarray(arrays["fs"]).reshape(()))
            file_names = [str(name) for name in np.asarray(arrays["lead_names"]).reshape(-1)]
            units = str(np.asarray(arrays.get("units", "mV")).reshape(()))
        except (TypeError, ValueError):
            raise RecordError(source, ".npz fs must be a scalar, lead_names a 1-D string array") from None
        fs = _resolve_fs(fs, repr(stated_fs), source)
        if lead_names is not None and list(lead_names) != file_names:
            raise RecordError(source, f"lead_names {list(lead_names)} disagree with the file's {file_names}")
        lead_names, signals = file_names, arrays["signals"]
    else:
        signals = loaded
        if fs is None or lead_names is None:
            raise RecordError(source, ".npy holds only samples: pass fs and lead_names")
        fs = _resolve_fs(fs, None, source)
    if units.lower() not in UNITS_TO_MV:
        raise RecordError(source, f"unknown units {units!r}")
    if not (isinstance(signals, np.ndarray) and signals.dtype.kind in "iuf" and signals.ndim == 2):
        raise RecordError(source, f"samples must be a 2-D numeric array (leads x samples), got {_describe(signals)}")
    if signals.shape[0] != len(lead_names):
        raise RecordError(source, f"array is {signals.shape} but there are {len(lead_names)} lead names (leads x samples)")
    signals = signals.astype(np.float64) * UNITS_TO_MV[units.lower()]
    if not np.all(np.isfinite(signals)):
        raise RecordError(source, "NaN or infinite samples")
    record = EcgRecord(signals, fs, tuple(lead_names), source=source, format="npy")
    return note_normalized_amplitudes(record)


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"dtype {value.dtype}, shape {value.shape}"
    return type(value).__name__


def write_csv(record: EcgRecord, path: str | Path, *, units: str = "mV") -> Path:
    """Write ``record`` as CSV with ``# fs=`` and ``# units=`` lines and a lead header."""
    scale = 1.0 / UNITS_TO_MV[units.lower()]
    path = Path(path)
    with open(path, "w", newline="") as handle:
        handle.write(f"# fs={record.fs:g}\n# units={units}\n")
        writer = csv.writer(handle)
        writer.writerow(record.lead_names)
        writer.writerows((record.signals_mv.T.astype(np.float64) * scale).tolist())
    return path


def write_npz(record: EcgRecord, path: str | Path) -> Path:
    """Write ``record`` as ``.npz`` with arrays ``signals``, ``fs``, ``lead_names``, ``units``."""
    path = Path(path)
    with open(path, "wb") as handle:
        np.savez(handle, signals=record.signals_mv, fs=np.float64(record.fs),
                 lead_names=np.array(record.lead_names), units=np.array("mV"))
    return path
