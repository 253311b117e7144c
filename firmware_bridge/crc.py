"""CRC-32/ISO-HDLC (the zlib/Ethernet CRC: reflected poly 0x04C11DB7, init and final XOR 0xFFFFFFFF).

Why 32 bits: a 16-bit CRC (CRC-16/CCITT was the first choice) passes a corrupted frame with
probability 2**-16 whenever the error is not a few flipped bits but a slip (dropped or inserted
UART bytes, truncation, noise with a false sync): over the fuzz's 60,000 slip-type corruptions
that is about one expected wrong frame accepted. CRC-32 makes it 2**-32 for 2 more bytes per
frame, and every MCU family has it in hardware or in a 1 KiB table.

``binascii.crc32`` computes it in C; the table version below is the readable reference (what
``firmware/elvmass_frame.c`` implements bit by bit) and the tests check both against the
catalogue check value ``crc32(b"123456789") == 0xCBF43926``.
"""

from __future__ import annotations

import binascii

CRC32_POLY_REFLECTED = 0xEDB88320


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CRC32_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/ISO-HDLC of ``data`` (fast path: ``binascii.crc32``).

    Parameters
    ----------
    data : bytes-like
        The bytes to check.

    Returns
    -------
    int
        The 32-bit CRC.
    """
    return binascii.crc32(data) & 0xFFFFFFFF


def crc32_reference(data: bytes | bytearray | memoryview) -> int:
    """Byte-wise table implementation of :func:`crc32` (the one firmware ports)."""
    crc = 0xFFFFFFFF
    for byte in bytes(data):
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF
