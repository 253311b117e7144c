"""A small pure-numpy WFDB reader for the device, where the ``wfdb`` package is not installed.

It reads single-segment headers and the signal formats the ECG databases use: ``16`` (and its
big-endian twin ``61``), ``212`` (two 12-bit samples in three bytes), ``80`` (8-bit offset binary)
and ``32``, each with an optional byte offset (CinC 2021 ``.mat`` files are ``16x1+24``: format 16
behind a 24-byte MATLAB header). Physical values follow the WFDB rule the ``wfdb`` library uses,
``(digital - baseline) / gain`` in float64, so both readers give identical millivolts.

Header grammar (https://physionet.org/physiotools/wag/header-5.htm)::

    record_name[/n_segments] n_signals [fs[/counter_fs][(base_counter)] [n_samples [time [date]]]]
    file format[xspf][:skew][+offset] [gain[(baseline)][/units] [adc_res [adc_zero [init [checksum [block [name]]]]]]]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.formats.limits import read_limited
from edge_runtime.record import RecordError

DEFAULT_FS = 250.0  # WFDB's default when the record line gives no rate
DEFAULT_GAIN = 200.0  # WFDB's default ADC units per physical unit when gain is 0 or missing
SUPPORTED_FORMATS = (16, 61, 80, 32, 212)
# The sample value WFDB reserves for "invalid" in each format (read as NaN).
INVALID_SAMPLE = {16: -32768, 61: -32768, 80: -128, 32: -(2**31), 212: -2048}

_FORMAT = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+]?\d+)\))?(?:/(\S+))?$")


class UnsupportedWfdbFeature(RecordError):
    """A valid WFDB record using a feature this small reader does not implement (the wfdb library may)."""


@dataclass(frozen=True)
class WfdbSignal:
    """One signal line of a WFDB header."""

    file_name: str
    fmt: int
    byte_offset: int
    gain: float
    baseline: int
    units: str
    adc_zero: int
    name: str


@dataclass(frozen=True)
class WfdbHeader:
    """A parsed single-segment WFDB header."""

    record_name: str
    fs: float
    n_samples: int | None
    signals: tuple[WfdbSignal, ...]
    comments: tuple[str, ...]


def parse_header(text: str, source: str = "<header>") -> WfdbHeader:
    """Parse the text of a ``.hea`` file.

    Parameters
    ----------
    text : str
        The header file's contents.
    source : str
        Named in error messages.

    Returns
    -------
    WfdbHeader

    Raises
    ------
    RecordError
        For multi-segment records, unsupported formats and malformed lines.
    """
    comments: list[str] = []
    lines: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            comments.append(stripped.strip(" \t#"))
        elif stripped:
            lines.append(stripped.split("#", 1)[0].strip())
    if not lines:
        raise RecordError(source, "WFDB header has no record line")
    record_fields = lines[0].split()
    if len(record_fields) < 2:
        raise RecordError(source, f"WFDB record line {lines[0]!r} needs a name and a signal count")
    if "/" in record_fields[0]:
        raise UnsupportedWfdbFeature(source, "multi-segment WFDB records are not supported")
    n_signals = _int(record_fields[1], source, "signal count")
    if not 1 <= n_signals <= 64:
        raise RecordError(source, f"WFDB record declares {n_signals} signals (expected 1..64)")
    fs = DEFAULT_FS
    if len(record_fields) > 2:
        fs = _float(re.split(r"[/(]", record_fields[2])[0], source, "sampling rate")
        if not (np.isfinite(fs) and fs > 0):
            raise RecordError(source, f"WFDB sampling rate must be positive, got {record_fields[2]!r}")
    n_samples = _int(record_fields[3], source, "sample count") if len(record_fields) > 3 else None
    if n_samples is not None and n_samples < 0:
        raise RecordError(source, f"negative sample count {n_samples}")
    if len(lines) - 1 < n_signals:
        raise RecordError(source, f"WFDB header declares {n_signals} signals but has {len(lines) - 1} signal lines")
    signals = tuple(_parse_signal_line(line, source) for line in lines[1 : 1 + n_signals])
    return WfdbHeader(record_fields[0], fs, n_samples, signals, tuple(comments))


def _parse_signal_line(line: str, source: str) -> WfdbSignal:
    fields = line.split(maxsplit=8)
    if len(fields) < 2:
        raise RecordError(source, f"WFDB signal line {line!r} needs a file name and a format")
    match = _FORMAT.match(fields[1])
    if not match:
        raise RecordError(source, f"WFDB signal format {fields[1]!r} is malformed")
    fmt = int(match.group(1))
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedWfdbFeature(source, f"WFDB signal format {fmt} is not supported (supported: {SUPPORTED_FORMATS})")
    if match.group(2) not in (None, "1"):
        raise UnsupportedWfdbFeature(source, f"WFDB format {fields[1]!r}: more than one sample per frame is not supported")
    if match.group(3) not in (None, "0"):
        raise UnsupportedWfdbFeature(source, f"WFDB format {fields[1]!r}: skewed signals are not supported")
    byte_offset = int(match.group(4) or 0)
    adc_zero = _int(fields[4], source, "ADC zero") if len(fields) > 4 else 0
    gain, baseline, units = DEFAULT_GAIN, adc_zero, "mV"
    if len(fields) > 2:
        gain_match = _GAIN.match(fields[2])
        if not gain_match:
            raise RecordError(source, f"WFDB gain field {fields[2]!r} is malformed")
        gain = _float(gain_match.group(1), source, "gain")
        if gain_match.group(2) is not None:
            baseline = int(gain_match.group(2))
        units = gain_match.group(3) or "mV"
        if not np.isfinite(gain) or gain < 0:
            raise RecordError(source, f"WFDB gain {fields[2]!r} is not a finite non-negative number")
        if gain == 0:
            gain = DEFAULT_GAIN
    name = fields[8].strip() if len(fields) > 8 else ""
    return WfdbSignal(fields[0], fmt, byte_offset, gain, baseline, units, adc_zero, name)


def _int(text: str, source: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RecordError(source, f"WFDB {what} {text!r} is not an integer") from None


def _float(text: str, source: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RecordError(source, f"WFDB {what} {text!r} is not a number") from None


def read_digital(header: WfdbHeader, directory: Path, source: str) -> np.ndarray:
    """Digital samples, shape ``(n_samples, n_signals)`` int64, from the header's signal files.

    Signals that share a file are interleaved frame by frame, in header order.
    """
    columns: list[np.ndarray | None] = [None] * len(header.signals)
    groups: dict[str, list[int]] = {}
    for index, signal in enumerate(header.signals):
        groups.setdefault(signal.file_name, []).append(index)
    for file_name, indices in groups.items():
        first = header.signals[indices[0]]
        if any(header.signals[i].fmt != first.fmt or header.signals[i].byte_offset != first.byte_offset for i in indices):
            raise UnsupportedWfdbFeature(source, f"signals in {file_name} mix formats or byte offsets (not supported)")
        path = directory / file_name
        if Path(file_name).name != file_name:
            raise RecordError(source, f"signal file name {file_name!r} must not contain a directory")
        raw = read_limited(path, source=str(path))[first.byte_offset :]
        flat = _decode(raw, first.fmt)
        n_in_file = len(indices)
        n_samples = header.n_samples if header.n_samples is not None else len(flat) // n_in_file
        if len(flat) < n_samples * n_in_file:
            raise RecordError(
                str(path), f"signal file holds {len(flat) // n_in_file} samples per signal, header says {n_samples}"
            )
        frames = flat[: n_samples * n_in_file].reshape(n_samples, n_in_file)
        for column, index in enumerate(indices):
            columns[index] = frames[:, column]
    lengths = {len(column) for column in columns if column is not None}
    if len(lengths) != 1:
        raise RecordError(source, f"signal files disagree on the number of samples: {sorted(lengths)}")
    digital = np.stack(columns, axis=1)  # type: ignore[arg-type]
    if digital.shape[0] == 0:
        raise RecordError(source, "record has no samples")
    return digital


def _decode(raw: bytes, fmt: int) -> np.ndarray:
    """Samples of one signal file, in file order, as int64."""
    if fmt == 16:
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int64)
    if fmt == 61:
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype=">i2").astype(np.int64)
    if fmt == 32:
        return np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<i4").astype(np.int64)
    if fmt == 80:
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 128
    # 212: each 3 bytes hold two 12-bit two's-complement samples; byte 1 carries both high nibbles.
    data = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    n_pairs = len(data) // 3
    triplets = data[: n_pairs * 3].reshape(n_pairs, 3)
    first = triplets[:, 0] | ((triplets[:, 1] & 0x0F) << 8)
    second = triplets[:, 2] | ((triplets[:, 1] & 0xF0) << 4)
    samples = np.empty(n_pairs * 2 + (1 if len(data) - n_pairs * 3 >= 2 else 0), dtype=np.int64)
    samples[0 : n_pairs * 2 : 2] = first
    samples[1 : n_pairs * 2 : 2] = second
    if len(samples) > n_pairs * 2:  # a trailing half pair (odd number of samples in the file)
        samples[-1] = data[n_pairs * 3] | ((data[n_pairs * 3 + 1] & 0x0F) << 8)
    return np.where(samples >= 2048, samples - 4096, samples)


def read_physical(header_path: str | Path) -> tuple[np.ndarray, WfdbHeader]:
    """Read a WFDB record natively: physical samples ``(n_samples, n_signals)`` float64 and its header.

    Invalid-sample markers become NaN, as in ``wfdb.rdrecord(physical=True)``.

    Raises
    ------
    RecordError
        For anything that is not a readable single-segment record of a supported format.
    """
    header_path = Path(header_path)
    source = str(header_path)
    text = read_limited(header_path, source=source).decode("latin-1")
    header = parse_header(text, source)
    digital = read_digital(header, header_path.parent, source)
    physical = digital.astype(np.float64)
    for column, signal in enumerate(header.signals):
        invalid = digital[:, column] == INVALID_SAMPLE[signal.fmt]
        physical[:, column] = (physical[:, column] - signal.baseline) / signal.gain
        physical[invalid, column] = np.nan
    return physical, header
