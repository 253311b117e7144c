"""Guards every reader shares: a file-size cap and the amplitude-normalization check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.record import NORMALIZED_AMPLITUDE_NOTE, EcgRecord, PatientContext, RecordError

# A 10 s 12-lead ECG is well under 1 MB in any format; a 30 min Holter in WFDB 212 is ~2 MB.
# Anything this large is not an ECG we should parse in memory on a small device.
MAX_FILE_BYTES = 50 * 1024 * 1024


def read_limited(path: str | Path, *, source: str | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, refusing files larger than ``max_bytes`` (default :data:`MAX_FILE_BYTES`).

    Raises
    ------
    RecordError
        When the file is missing, unreadable or too large.
    """
    path = Path(path)
    source = source or str(path)
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise RecordError(source, f"file is {size:,} bytes, over the {max_bytes:,}-byte limit for an ECG file")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise RecordError(source, "file not found") from None
    except IsADirectoryError:
        raise RecordError(source, "is a directory, not a file") from None
    except OSError as error:
        raise RecordError(source, f"cannot read: {error.strerror or error}") from None
    except ValueError as error:  # e.g. a NUL byte in a file name taken from a header
        raise RecordError(source, f"unusable file name ({error})") from None
    if len(data) > max_bytes:  # grew while we read it
        raise RecordError(source, f"file is over the {max_bytes:,}-byte limit for an ECG file")
    return data


def amplitudes_look_normalized(signals_mv: np.ndarray, *, rel_tol: float = 1e-3) -> bool:
    """True when every lead spans the same peak-to-peak (within ``rel_tol``).

    Real leads never do: limb and precordial amplitudes differ by a factor of several. LUDB 1.0.1
    headers scale each lead to exactly 1 mV peak-to-peak, so its voltages are not physiological.
    Needs at least 3 leads, so two-lead Holter records are never flagged by chance.
    """
    signals = np.asarray(signals_mv, dtype=np.float64)
    if signals.ndim != 2 or signals.shape[0] < 3 or signals.shape[1] < 2:
        return False
    spans = signals.max(axis=1) - signals.min(axis=1)
    if not np.all(np.isfinite(spans)) or spans.max() <= 0:
        return False
    return bool((spans.max() - spans.min()) <= rel_tol * spans.max())


def note_normalized_amplitudes(record: EcgRecord) -> EcgRecord:
    """Append :data:`~edge_runtime.record.NORMALIZED_AMPLITUDE_NOTE` when the amplitudes look normalized."""
    if amplitudes_look_normalized(record.signals_mv) and NORMALIZED_AMPLITUDE_NOTE not in record.notes:
        record.notes.append(NORMALIZED_AMPLITUDE_NOTE)
    return record


INCH_CM = 2.54  # carts export imperial height/weight too
POUND_KG = 0.45359237


def metric_or_imperial(metric: float | None, imperial: float | None, to_metric: float) -> float | None:
    """The metric value a file gives, else its imperial value times ``to_metric`` (carts export either), else None."""
    if metric is not None:
        return metric
    return None if imperial is None else imperial * to_metric


def drop_implausible(values: dict[str, float | None], where: str, notes: list[str]) -> dict[str, float | None]:
    """Age, height and weight read from a file, with each value outside ``PatientContext.LIMITS`` set to None
    and a note naming it and ``where`` it came from (a file's typo must not become a wrong estimate)."""
    kept = dict(values)
    for name, (low, high) in PatientContext.LIMITS.items():
        value = kept.get(name)
        if value is not None and not low <= value <= high:
            notes.append(f"{name}={value:g} {where} is implausible and was ignored")
            kept[name] = None
    return kept
