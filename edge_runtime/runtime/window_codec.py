"""How the store keeps a raw window: int16 microvolts, delta-coded into bytes.

``int16-uV-delta8`` (written since issue 14's fourth pass): each lead's samples as int16 microvolts
(1 uV resolution, +-32.7 mV; larger values are clipped, which the saturation flag already reports),
then the step from the previous sample (the first from 0) as one signed byte; a step outside
-127..127 is written as the byte -128 and its value appended as an int32 after all the bytes. A 10 s
12-lead ECG at 500 Hz has ~1 % of such steps (QRS upstrokes), so a window takes ~61 kB and ~0.1 ms
of CPU; zlib level 1 made ~40-53 kB of it for ~1 ms, the largest single cost of storing a result on
the device. When escapes would make the bytes longer than plain int16 (a window of wide-band noise),
the window is written as plain int16 instead (mode byte 0), so it never takes more than 2 bytes a sample.

``int16-uV-zlib`` (every earlier row): the same int16 microvolts, zlib-compressed. Still read.

Layout of a delta8 blob: ``mode u8 | n_leads u16 | n_samples u32`` (little-endian), then the body.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

WINDOW_CODEC = "int16-uV-delta8"
LEGACY_ZLIB_CODEC = "int16-uV-zlib"
_HEADER = struct.Struct("<BHI")
_MODE_RAW, _MODE_DELTA8 = 0, 1
_ESCAPE = -128


def microvolts_int16(signals_mv: np.ndarray) -> np.ndarray:
    """(leads, samples) mV -> int16 microvolts, rounded half to even and clipped to the int16 range."""
    # One float64 buffer for multiply, round and clip (no temporaries).
    microvolts = np.multiply(signals_mv, 1000.0, dtype=np.float64)
    np.rint(microvolts, out=microvolts)
    np.clip(microvolts, -32768, 32767, out=microvolts)
    return microvolts.astype(np.int16)


def encode_window(signals_mv: np.ndarray) -> bytes:
    """(leads, samples) mV -> an ``int16-uV-delta8`` blob (see the module docstring)."""
    microvolts = microvolts_int16(np.atleast_2d(signals_mv))
    n_leads, n_samples = microvolts.shape
    steps = np.empty((n_leads, n_samples), dtype=np.int32)
    steps[:, :1] = microvolts[:, :1]
    np.subtract(microvolts[:, 1:], microvolts[:, :-1], out=steps[:, 1:], dtype=np.int32)
    small = steps.astype(np.int8)  # wraps where the step does not fit: caught below
    escaped = small != steps
    escaped |= small == _ESCAPE  # a true step of -128 is escaped too
    large = steps[escaped]
    if small.size + 4 * large.size >= 2 * microvolts.size:
        return _HEADER.pack(_MODE_RAW, n_leads, n_samples) + microvolts.astype("<i2").tobytes()
    small[escaped] = _ESCAPE
    return _HEADER.pack(_MODE_DELTA8, n_leads, n_samples) + small.tobytes() + large.astype("<i4").tobytes()


def decode_window(blob: bytes, n_leads: int, codec: str = WINDOW_CODEC) -> np.ndarray:
    """Inverse of :func:`encode_window` (or of the legacy zlib codec): (leads, samples) float32 mV.

    Raises
    ------
    ValueError
        An unknown codec, or a blob whose length or lead count does not match its header.
    """
    if codec == LEGACY_ZLIB_CODEC:
        microvolts = np.frombuffer(zlib.decompress(blob), dtype="<i2").reshape(n_leads, -1)
        return microvolts.astype(np.float32) / 1000.0
    if codec != WINDOW_CODEC:
        raise ValueError(f"unknown window codec {codec!r}")
    if len(blob) < _HEADER.size:
        raise ValueError("window blob shorter than its header")
    mode, stored_leads, n_samples = _HEADER.unpack_from(blob)
    if stored_leads != n_leads:
        raise ValueError(f"window blob holds {stored_leads} leads, the row names {n_leads}")
    body = memoryview(blob)[_HEADER.size:]
    count = n_leads * n_samples
    if mode == _MODE_RAW:
        if len(body) != 2 * count:
            raise ValueError("raw window blob has the wrong length")
        microvolts = np.frombuffer(body, dtype="<i2").reshape(n_leads, n_samples)
        return microvolts.astype(np.float32) / 1000.0
    if mode != _MODE_DELTA8 or len(body) < count:
        raise ValueError("window blob has an unknown mode or is truncated")
    small = np.frombuffer(body, dtype=np.int8, count=count)
    escaped = small == _ESCAPE
    if len(body) != count + 4 * int(escaped.sum()):
        raise ValueError("window blob's escaped steps do not match its length")
    steps = small.astype(np.int32)
    steps[escaped] = np.frombuffer(body, dtype="<i4", offset=count)
    microvolts = np.cumsum(steps.reshape(n_leads, n_samples), axis=1, dtype=np.int32)
    return microvolts.astype(np.float32) / 1000.0
