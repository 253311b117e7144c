"""Encode and decode one binary frame of the elvmass serial protocol (see PROTOCOL.md, version 1).

Frame = ``A5 5A | version | type | seq u16 | length u16 | payload | CRC-32 u32``; header integers
and the CRC are little-endian, the CRC covers version..payload. A DATA payload carries
``first_sample u32 | count u8`` and then ``count`` blocks of 27 bytes exactly as an ADS1298 shifts
them out (24-bit status word, then 8 channels of 24-bit two's complement, MSB first), so the
firmware can copy its DMA buffer verbatim.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Iterable

import numpy as np

from firmware_bridge.crc import crc32

SYNC = b"\xa5\x5a"
PROTOCOL_VERSION = 1
HEADER_SIZE = 8  # sync 2 + version 1 + type 1 + seq 2 + length 2
CRC_SIZE = 4
BLOCK_SIZE = 27  # ADS129x read-data block: 3 status bytes + 8 x 3 channel bytes
N_CHANNELS = 8
MAX_SAMPLES_PER_FRAME = 20
DATA_PREFIX_SIZE = 5  # first_sample u32 + count u8
MAX_PING_PAYLOAD = 32
CODE_MAX = (1 << 23) - 1
CODE_MIN = -(1 << 23)

# The 8 leads the bridge delivers, in this order; equal to edge_runtime.record.INDEPENDENT_LEADS
# (a test checks it; firmware_bridge must not import edge_runtime).
CHANNEL_LEADS: tuple[str, ...] = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
# Lead codes used in the INFO channel map (index = code): the 12 standard leads.
LEAD_CODES: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# Electrodes whose lead-off is reported, in the order of Samples.lead_off columns.
ELECTRODES: tuple[str, ...] = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")

# ADS129x status word: 1100 | LOFF_STATP[7:0] | LOFF_STATN[7:0] | GPIO[3:0].
STATUS_MARKER = 0xC00000
STATUS_MARKER_MASK = 0xF00000
_STATP_SHIFT = 12
_STATN_SHIFT = 4
# Standard ECG wiring: CH1 = LA-RA (I), CH2 = LL-RA (II), CH3..CH8 = V1..V6 - WCT.
# electrode -> (P or N comparator, channel index 0..7); RA is seen on IN1N and IN2N.
ELECTRODE_COMPARATORS: dict[str, tuple[tuple[str, int], ...]] = {
    "RA": (("N", 0), ("N", 1)),
    "LA": (("P", 0),),
    "LL": (("P", 1),),
    **{f"V{k}": (("P", k + 1),) for k in range(1, 7)},
}


class FrameType(IntEnum):
    """Frame types; 0x01-0x0F device -> host, 0x10-0x1F host -> device."""

    DATA = 0x01
    INFO = 0x02
    PONG = 0x03
    ACK = 0x04
    NAK = 0x05
    START = 0x10
    STOP = 0x11
    PING = 0x12
    SET_RATE = 0x13
    GET_INFO = 0x14
    TEST_SIGNAL = 0x15  # optional (PROTOCOL.md section 8); devices without it answer NAK unknown command


class NakReason(IntEnum):
    UNKNOWN_COMMAND = 1
    BAD_PAYLOAD = 2
    UNSUPPORTED_RATE = 3


# Largest payload each type may carry: the decoder rejects a header claiming more, so a false sync
# in garbage cannot make it wait for kilobytes.
MAX_PAYLOAD: dict[int, int] = {
    FrameType.DATA: DATA_PREFIX_SIZE + MAX_SAMPLES_PER_FRAME * BLOCK_SIZE,
    FrameType.INFO: 36,
    FrameType.PONG: MAX_PING_PAYLOAD,
    FrameType.ACK: 1,
    FrameType.NAK: 2,
    FrameType.START: 0,
    FrameType.STOP: 0,
    FrameType.PING: MAX_PING_PAYLOAD,
    FrameType.SET_RATE: 2,
    FrameType.GET_INFO: 0,
    FrameType.TEST_SIGNAL: 1,
}
MAX_FRAME_SIZE = HEADER_SIZE + max(MAX_PAYLOAD.values()) + CRC_SIZE

_HEADER = struct.Struct("<2sBBHH")
_CRC = struct.Struct("<I")
_DATA_PREFIX = struct.Struct("<IB")


class FrameError(ValueError):
    """A frame or payload that cannot be encoded or decoded; the message says why."""


@dataclass(frozen=True)
class Frame:
    """One checked frame: its type, sequence number and payload bytes."""

    type: int
    seq: int
    payload: bytes


def encode_frame(frame_type: int, seq: int, payload: bytes = b"") -> bytes:
    """Bytes on the wire for one frame.

    Parameters
    ----------
    frame_type : int
        A :class:`FrameType`.
    seq : int
        Sequence number, taken modulo 65536.
    payload : bytes
        At most ``MAX_PAYLOAD[frame_type]`` bytes.

    Returns
    -------
    bytes
        Sync, header, payload and CRC.
    """
    limit = MAX_PAYLOAD.get(int(frame_type))
    if limit is None:
        raise FrameError(f"unknown frame type 0x{int(frame_type):02x}")
    if len(payload) > limit:
        raise FrameError(f"{FrameType(frame_type).name} payload of {len(payload)} bytes exceeds {limit}")
    body = _HEADER.pack(SYNC, PROTOCOL_VERSION, int(frame_type), seq & 0xFFFF, len(payload)) + bytes(payload)
    return body + _CRC.pack(crc32(body[2:]))


def header_problem(frame_type: int, version: int, length: int) -> str | None:
    """Why a header cannot start a valid frame (``None`` when it can)."""
    if version != PROTOCOL_VERSION:
        return "version"
    limit = MAX_PAYLOAD.get(frame_type)
    if limit is None:
        return "type"
    if length > limit:
        return "length"
    return None


# ---------------------------------------------------------------------------------------- DATA
def status_word(lead_off: Iterable[str] = (), gpio: int = 0) -> int:
    """ADS129x status word with the comparators of the given electrodes tripped.

    Parameters
    ----------
    lead_off : iterable of str
        Electrode names from :data:`ELECTRODES`.
    gpio : int
        The 4 GPIO bits (low nibble).
    """
    statp = statn = 0
    for electrode in lead_off:
        if electrode not in ELECTRODE_COMPARATORS:
            raise FrameError(f"unknown electrode {electrode!r}; expected one of {', '.join(ELECTRODES)}")
        for side, channel in ELECTRODE_COMPARATORS[electrode]:
            if side == "P":
                statp |= 1 << channel
            else:
                statn |= 1 << channel
    return STATUS_MARKER | (statp << _STATP_SHIFT) | (statn << _STATN_SHIFT) | (gpio & 0xF)


def _comparator_table(side: str) -> np.ndarray:
    """(256, n_electrodes) bool: which electrodes a LOFF_STATP/STATN byte value reports off."""
    table = np.zeros((256, len(ELECTRODES)), dtype=bool)
    for column, electrode in enumerate(ELECTRODES):
        for comparator_side, channel in ELECTRODE_COMPARATORS[electrode]:
            if comparator_side == side:
                table[:, column] |= (np.arange(256) >> channel & 1).astype(bool)
    return table


_STATP_TABLE = _comparator_table("P")
_STATN_TABLE = _comparator_table("N")


def lead_off_matrix(status: np.ndarray) -> np.ndarray:
    """Per-electrode lead-off from status words.

    Parameters
    ----------
    status : ndarray of int, shape (n,)
        24-bit status words.

    Returns
    -------
    ndarray of bool, shape (n, len(ELECTRODES))
        True where the electrode's comparator reports lead-off (any of its comparators).
    """
    status = np.asarray(status, dtype=np.int64)
    return _STATP_TABLE[(status >> _STATP_SHIFT) & 0xFF] | _STATN_TABLE[(status >> _STATN_SHIFT) & 0xFF]


def encode_data_payload(first_sample: int, codes: np.ndarray, status: np.ndarray) -> bytes:
    """DATA payload for ``n`` consecutive samples.

    Parameters
    ----------
    first_sample : int
        Device sample counter of the first sample (modulo 2**32).
    codes : ndarray of int, shape (n, 8)
        ADC codes, each in -2**23 .. 2**23-1, channels in the device's channel-map order.
    status : ndarray of int, shape (n,)
        24-bit status words (see :func:`status_word`).
    """
    codes = np.asarray(codes, dtype=np.int64)
    status = np.asarray(status, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] != N_CHANNELS or status.shape != (codes.shape[0],):
        raise FrameError(f"codes must be (n, {N_CHANNELS}) with n status words, got {codes.shape} and {status.shape}")
    count = codes.shape[0]
    if not 1 <= count <= MAX_SAMPLES_PER_FRAME:
        raise FrameError(f"a DATA frame carries 1..{MAX_SAMPLES_PER_FRAME} samples, got {count}")
    if codes.min() < CODE_MIN or codes.max() > CODE_MAX:
        raise FrameError("ADC codes outside the 24-bit two's complement range")
    words = np.concatenate([status[:, None] & 0xFFFFFF, codes & 0xFFFFFF], axis=1)  # (n, 9)
    shifts = np.array([16, 8, 0])
    block = ((words[:, :, None] >> shifts) & 0xFF).astype(np.uint8)  # MSB first
    return struct.pack("<IB", first_sample & 0xFFFFFFFF, count) + block.tobytes()


def decode_data_payload(payload: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_data_payload`.

    Returns
    -------
    first_sample : int
    codes : ndarray of int32, shape (n, 8)
    status : ndarray of int64, shape (n,)

    Raises
    ------
    FrameError
        When the length does not match the sample count or a status word lacks the ADS marker.
    """
    if len(payload) < DATA_PREFIX_SIZE:
        raise FrameError("DATA payload shorter than its prefix")
    first_sample, count = struct.unpack_from("<IB", payload)
    if not 1 <= count <= MAX_SAMPLES_PER_FRAME or len(payload) != DATA_PREFIX_SIZE + count * BLOCK_SIZE:
        raise FrameError(f"DATA payload of {len(payload)} bytes does not hold {count} samples")
    # Each 24-bit big-endian word read as the low 3 bytes of a 4-byte big-endian word that starts
    # one byte earlier (a strided view, no copy), then masked.
    words = np.ndarray((count * 9,), dtype=">u4", buffer=payload, offset=DATA_PREFIX_SIZE - 1, strides=(3,))
    words = (words.astype(np.int32) & 0xFFFFFF).reshape(count, 9)
    status = words[:, 0].astype(np.int64)
    if np.any((status & STATUS_MARKER_MASK) != STATUS_MARKER):
        raise FrameError("status word without the ADS129x 1100 marker")
    codes = (words[:, 1:] ^ 0x800000) - 0x800000  # sign-extend 24-bit two's complement
    return int(first_sample), codes, status


def decode_data_payloads(payloads: list[bytes]) -> tuple[list[int], list[int], list[int], np.ndarray, np.ndarray]:
    """Batch form of :func:`decode_data_payload`: many DATA payloads, one numpy pass.

    A serial read of a few kB holds dozens of frames; decoding each with its own numpy calls costs
    more than the samples are worth, so all blocks are joined and unpacked at once. A payload that
    :func:`decode_data_payload` would reject is rejected here too (its index is left out).

    Returns
    -------
    accepted : list of int
        Indices into ``payloads`` of the well-formed ones, in order.
    first_samples : list of int
        Device sample counter of each accepted frame's first sample.
    counts : list of int
        Samples in each accepted frame.
    codes : ndarray of int32, shape (sum(counts), 8)
        The accepted frames' samples, concatenated.
    status : ndarray of int64, shape (sum(counts),)
    """
    accepted, firsts, counts, blocks = [], [], [], []
    unpack = _DATA_PREFIX.unpack_from  # the loop runs once per frame
    for index, payload in enumerate(payloads):
        size = len(payload)
        if size < DATA_PREFIX_SIZE:
            continue
        first_sample, count = unpack(payload)
        if 1 <= count <= MAX_SAMPLES_PER_FRAME and size == DATA_PREFIX_SIZE + count * BLOCK_SIZE:
            accepted.append(index)
            firsts.append(first_sample)
            counts.append(count)
            blocks.append(payload[DATA_PREFIX_SIZE:])
    blocks.append(b"\0")  # trailing pad byte: see the strided view below
    joined = b"".join(blocks)
    n_samples = sum(counts)
    # Each 24-bit big-endian word is the top 3 bytes of the big-endian int32 that starts at it (its 4th
    # byte is the next word's first, or the pad); an arithmetic shift right by 8 drops that byte and
    # sign-extends the 24 bits: the ADC codes in three numpy calls per read, whatever its frame count
    # (a 50 ms serial read at 500 Hz holds ~5 frames, so per-read calls cost as much as per-frame work).
    words = np.ndarray((n_samples, 9), dtype=">i4", buffer=joined, strides=(BLOCK_SIZE, 3)).astype(np.int32) >> 8
    status = (words[:, 0] & 0xFFFFFF).astype(np.int64)
    bad_sample = (status & STATUS_MARKER_MASK) != STATUS_MARKER
    if bad_sample.any():  # rare (a corrupted frame whose CRC matched by chance): drop whole frames
        frame_of_sample = np.repeat(np.arange(len(counts)), np.array(counts, dtype=np.int64))
        bad_frames = np.zeros(len(counts), dtype=bool)
        bad_frames[frame_of_sample[bad_sample]] = True
        keep_samples = ~bad_frames[frame_of_sample]
        words, status = words[keep_samples], status[keep_samples]
        accepted = [a for a, bad in zip(accepted, bad_frames) if not bad]
        firsts = [f for f, bad in zip(firsts, bad_frames) if not bad]
        counts = [c for c, bad in zip(counts, bad_frames) if not bad]
    codes = words[:, 1:]  # already sign-extended 24-bit two's complement
    return accepted, firsts, counts, codes, status


# ---------------------------------------------------------------------------------------- INFO
_INFO = struct.Struct("<16s3BxHBB8sf")


@dataclass(frozen=True)
class DeviceInfo:
    """What the device announces in its INFO frame.

    Parameters
    ----------
    device_id : str
        Up to 16 ASCII characters.
    firmware_version : tuple of int
        (major, minor, patch).
    sample_rate_hz : int
    samples_per_frame : int
        Samples per DATA frame (1..20).
    channel_map : tuple of str
        The lead each of the 8 channels carries (names from :data:`LEAD_CODES`).
    lsb_nv : float
        Value of one ADC code in nanovolts (ADS1298 at gain 6, 2.4 V reference: 47.68 nV).
    """

    device_id: str = "elvmass-emu"
    firmware_version: tuple[int, int, int] = (1, 0, 0)
    sample_rate_hz: int = 500
    samples_per_frame: int = 5
    channel_map: tuple[str, ...] = CHANNEL_LEADS
    lsb_nv: float = 2.4e9 / 6 / (1 << 23)

    def problems(self) -> list[str]:
        """Why this announcement cannot be used to decode data (empty when usable)."""
        found = []
        if sorted(self.channel_map) != sorted(CHANNEL_LEADS):
            found.append(f"channel map {self.channel_map} is not a permutation of {CHANNEL_LEADS}")
        if not (np.isfinite(self.lsb_nv) and self.lsb_nv > 0):
            found.append(f"LSB {self.lsb_nv!r} nV is not positive")
        if not 1 <= self.sample_rate_hz <= 32000:
            found.append(f"sample rate {self.sample_rate_hz} Hz is implausible")
        if not 1 <= self.samples_per_frame <= MAX_SAMPLES_PER_FRAME:
            found.append(f"{self.samples_per_frame} samples per frame is outside 1..{MAX_SAMPLES_PER_FRAME}")
        return found

    @property
    def channel_order(self) -> np.ndarray:
        """Index of each of :data:`CHANNEL_LEADS` among the device channels."""
        return np.array([self.channel_map.index(name) for name in CHANNEL_LEADS])


def encode_info_payload(info: DeviceInfo) -> bytes:
    """INFO payload (36 bytes)."""
    device_id = info.device_id.encode("ascii")
    if len(device_id) > 16:
        raise FrameError("device id longer than 16 ASCII characters")
    try:
        channel_codes = bytes(LEAD_CODES.index(name) for name in info.channel_map)
    except ValueError:
        raise FrameError(f"channel map {info.channel_map} names a lead outside {LEAD_CODES}") from None
    if len(channel_codes) != N_CHANNELS:
        raise FrameError(f"channel map must name {N_CHANNELS} channels")
    return _INFO.pack(device_id, *info.firmware_version, info.sample_rate_hz, info.samples_per_frame,
                      N_CHANNELS, channel_codes, info.lsb_nv)


def decode_info_payload(payload: bytes) -> DeviceInfo:
    """Inverse of :func:`encode_info_payload`; raises :class:`FrameError` when malformed."""
    if len(payload) != _INFO.size:
        raise FrameError(f"INFO payload of {len(payload)} bytes, expected {_INFO.size}")
    device_id, major, minor, patch, rate, per_frame, n_channels, channel_codes, lsb_nv = _INFO.unpack(payload)
    if n_channels != N_CHANNELS or any(code >= len(LEAD_CODES) for code in channel_codes):
        raise FrameError("INFO announces an unsupported channel layout")
    try:
        text_id = device_id.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("device id is not ASCII") from None
    return DeviceInfo(text_id, (major, minor, patch), rate, per_frame,
                      tuple(LEAD_CODES[code] for code in channel_codes), float(lsb_nv))


def data_frame_size(samples_per_frame: int) -> int:
    """Bytes on the wire of one DATA frame carrying ``samples_per_frame`` samples."""
    return HEADER_SIZE + DATA_PREFIX_SIZE + samples_per_frame * BLOCK_SIZE + CRC_SIZE


def minimum_uart_baud(sample_rate_hz: float = 500.0, samples_per_frame: int = 5, bits_per_byte: int = 10) -> float:
    """Lowest UART bit rate that carries the stream (8N1 = 10 bits per byte), no headroom."""
    frames_per_s = sample_rate_hz / samples_per_frame
    return frames_per_s * data_frame_size(samples_per_frame) * bits_per_byte
