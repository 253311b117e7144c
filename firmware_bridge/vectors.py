"""Shared encoder test vectors (``firmware/test_vectors.txt``): inputs -> expected bytes.

One vector per line, ``<kind> <inputs...> = <expected hex>``::

    data  SEQ FIRST_SAMPLE COUNT (STATUS_HEX C0 .. C7){COUNT}                 = HEX
    info  SEQ DEVICE_ID FW_MAJOR FW_MINOR FW_PATCH RATE PER_FRAME LSB_F32_BITS_HEX CH0 .. CH7 = HEX
    frame TYPE_HEX SEQ PAYLOAD_HEX_OR_DASH                                    = HEX

Both the C encoder (``firmware/vector_check.c``) and :func:`encode_vector` must reproduce the
expected bytes exactly; the committed file is the reference, :func:`generate_vectors` only made it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.frames import (
    CODE_MAX, CODE_MIN, LEAD_CODES, MAX_SAMPLES_PER_FRAME, DeviceInfo, FrameType, encode_data_payload,
    encode_frame, encode_info_payload, status_word,
)

VECTORS_PATH = Path(__file__).resolve().parent / "firmware" / "test_vectors.txt"


@dataclass(frozen=True)
class Vector:
    """One parsed vector: its kind, the tokens of its inputs, and the bytes expected on the wire."""

    line: int
    kind: str
    fields: tuple[str, ...]
    expected: bytes


def read_vectors(path: Path = VECTORS_PATH) -> list[Vector]:
    """Parse a vectors file."""
    vectors = []
    for number, text in enumerate(Path(path).read_text().splitlines(), start=1):
        if not text.strip() or text.startswith("#"):
            continue
        inputs, expected = text.split("=")
        kind, *fields = inputs.split()
        vectors.append(Vector(number, kind, tuple(fields), bytes.fromhex(expected.strip())))
    return vectors


def data_inputs(vector: Vector) -> tuple[int, int, np.ndarray, np.ndarray]:
    """``(seq, first_sample, codes (n, 8), status (n,))`` of a ``data`` vector."""
    seq, first, count = (int(v) for v in vector.fields[:3])
    rows = np.array(vector.fields[3:], dtype=object).reshape(count, 9)
    status = np.array([int(v, 16) for v in rows[:, 0]], dtype=np.int64)
    codes = rows[:, 1:].astype(np.int64)
    return seq, first, codes, status


def info_inputs(vector: Vector) -> tuple[int, DeviceInfo]:
    """``(seq, DeviceInfo)`` of an ``info`` vector."""
    f = vector.fields
    lsb_nv = struct.unpack("<f", struct.pack("<I", int(f[7], 16)))[0]
    channel_map = tuple(LEAD_CODES[int(code)] for code in f[8:16])
    return int(f[0]), DeviceInfo(f[1], (int(f[2]), int(f[3]), int(f[4])), int(f[5]), int(f[6]), channel_map, lsb_nv)


def encode_vector(vector: Vector) -> bytes:
    """The Python encoder's bytes for a vector's inputs."""
    if vector.kind == "data":
        seq, first, codes, status = data_inputs(vector)
        return encode_frame(FrameType.DATA, seq, encode_data_payload(first, codes, status))
    if vector.kind == "info":
        seq, info = info_inputs(vector)
        return encode_frame(FrameType.INFO, seq, encode_info_payload(info))
    if vector.kind == "frame":
        payload = b"" if vector.fields[2] == "-" else bytes.fromhex(vector.fields[2])
        return encode_frame(int(vector.fields[0], 16), int(vector.fields[1]), payload)
    raise ValueError(f"line {vector.line}: unknown vector kind {vector.kind!r}")


def generate_vectors(seed: int = 20261125) -> list[str]:
    """Vector lines covering edge codes, lead-off bits, counter wrap, every frame type."""
    rng = np.random.default_rng(seed)
    lines = ["# elvmass frame test vectors, protocol version 1 (format: firmware_bridge/vectors.py)"]

    def data_line(seq: int, first: int, codes: np.ndarray, status: list[int]) -> str:
        blocks = " ".join(f"{s:06x} " + " ".join(str(int(c)) for c in row) for s, row in zip(status, codes))
        payload = encode_data_payload(first, codes, np.array(status))
        return f"data {seq} {first} {len(codes)} {blocks} = {encode_frame(FrameType.DATA, seq, payload).hex()}"

    edge = np.array([[0, 1, -1, CODE_MAX, CODE_MIN, 0x123456, -0x123456, 255]])
    lines.append(data_line(0, 0, edge, [status_word()]))
    lines.append(data_line(65535, 0xFFFFFFFF, edge[:, ::-1], [status_word(["RA", "V6"], gpio=0xA)]))
    for count, electrodes in ((1, ["LA"]), (5, []), (5, ["LL", "V1"]), (MAX_SAMPLES_PER_FRAME, ["V3"])):
        codes = rng.integers(CODE_MIN, CODE_MAX + 1, size=(count, 8))
        status = [status_word(electrodes if k % 2 else []) for k in range(count)]
        lines.append(data_line(int(rng.integers(0, 65536)), int(rng.integers(0, 2**32)), codes, status))
    for info, seq in ((DeviceInfo(), 1), (DeviceInfo("ADS1298-EVM-0042", (2, 10, 255), 1000, 1,
                                                      ("V6", "V5", "V4", "V3", "V2", "V1", "II", "I"), 100.0), 7)):
        lsb_bits = struct.unpack("<I", struct.pack("<f", info.lsb_nv))[0]
        channels = " ".join(str(LEAD_CODES.index(name)) for name in info.channel_map)
        frame = encode_frame(FrameType.INFO, seq, encode_info_payload(info))
        lines.append(f"info {seq} {info.device_id} {' '.join(map(str, info.firmware_version))} {info.sample_rate_hz} "
                     f"{info.samples_per_frame} {lsb_bits:08x} {channels} = {frame.hex()}")
    for frame_type, seq, payload in ((FrameType.START, 3, b""), (FrameType.STOP, 4, b""),
                                     (FrameType.PING, 5, b"elvmass"), (FrameType.SET_RATE, 6, struct.pack("<H", 250)),
                                     (FrameType.GET_INFO, 7, b""), (FrameType.PONG, 8, b"elvmass"),
                                     (FrameType.ACK, 9, bytes([FrameType.START])), (FrameType.NAK, 10, bytes([0x13, 3]))):
        lines.append(f"frame {int(frame_type):02x} {seq} {payload.hex() or '-'} = {encode_frame(frame_type, seq, payload).hex()}")
    return lines


if __name__ == "__main__":  # regenerate: python -m firmware_bridge.vectors > firmware_bridge/firmware/test_vectors.txt
    print("\n".join(generate_vectors()))
