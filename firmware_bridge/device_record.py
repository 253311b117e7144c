"""The sample file the C reference device replays (``firmware/elvmass_device.c --record``).

Format ``ELVMREC1``, all little-endian::

    0   8  magic "ELVMREC1"
    8   4  u32 sample rate, Hz
    12  4  u32 number of samples n
    16  4  u32 lead-off bits every sample carries (status word without the 1100 marker)
    20  4  f32 LSB, nanovolts
    24  8  channel map: lead code per column (INFO order, PROTOCOL.md section 3)
    32  .  n x 8 i32 ADC codes, sample-major, columns in channel-map order

The codes are the ones :class:`~firmware_bridge.emulator.DeviceEmulator` sends, so the C device and
the Python emulator replaying the same file put the same DATA bytes on the wire.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.frames import LEAD_CODES, N_CHANNELS, STATUS_MARKER, DeviceInfo

MAGIC = b"ELVMREC1"
_HEADER = struct.Struct("<8sIIIf8s")


@dataclass(frozen=True)
class DeviceRecord:
    """ADC codes ``(n, 8)`` in channel-map order, with the INFO fields and status they go with."""

    codes: np.ndarray
    sample_rate_hz: int
    lsb_nv: float
    channel_map: tuple[str, ...]
    status: int  # lead-off bits (no marker)


def write_device_record(path: str | Path, codes: np.ndarray, info: DeviceInfo, status: int = STATUS_MARKER) -> Path:
    """Write an ``ELVMREC1`` file.

    Parameters
    ----------
    path : str or Path
    codes : ndarray of int, shape (n, 8)
        ADC codes in ``info.channel_map`` order (e.g. ``DeviceEmulator.codes``).
    info : DeviceInfo
        Sample rate, LSB and channel map of the codes.
    status : int
        Status word every sample carries (e.g. ``FaultInjector.status``); the 1100 marker is optional.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != N_CHANNELS or codes.shape[0] == 0:
        raise ValueError(f"codes must be (n, {N_CHANNELS}) with n >= 1, got {codes.shape}")
    path = Path(path)
    header = _HEADER.pack(MAGIC, info.sample_rate_hz, codes.shape[0], int(status) & 0x0FFFFF, info.lsb_nv,
                          bytes(LEAD_CODES.index(name) for name in info.channel_map))
    path.write_bytes(header + codes.astype("<i4").tobytes())
    return path


def read_device_record(path: str | Path) -> DeviceRecord:
    """Read an ``ELVMREC1`` file; raises ``ValueError`` when it is not one or is truncated."""
    data = Path(path).read_bytes()
    if len(data) < _HEADER.size or data[:8] != MAGIC:
        raise ValueError(f"{path}: not an ELVMREC1 sample file")
    _, rate, n, status, lsb_nv, channel_codes = _HEADER.unpack_from(data)
    if len(data) != _HEADER.size + n * N_CHANNELS * 4:
        raise ValueError(f"{path}: {n} samples announced, {len(data) - _HEADER.size} bytes of codes")
    codes = np.frombuffer(data, dtype="<i4", offset=_HEADER.size).reshape(n, N_CHANNELS).astype(np.int64)
    return DeviceRecord(codes, rate, float(lsb_nv), tuple(LEAD_CODES[code] for code in channel_codes), status)
