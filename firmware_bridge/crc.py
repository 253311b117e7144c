"""CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR), the frame checksum.

``binascii.crc_hqx`` computes exactly this polynomial in C; the table version below is the
readable reference (and what ``firmware/elvmass_frame.c`` implements) and the tests check that
both agree, including the catalogue check value ``crc16_ccitt(b"123456789") == 0x29B1``.
"""

from __future__ import annotations

import binascii

CRC16_INIT = 0xFFFF
CRC16_POLY = 0x1021


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC16_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16_ccitt(data: bytes | bytearray | memoryview, crc: int = CRC16_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (fast path: ``binascii.crc_hqx``).

    Parameters
    ----------
    data : bytes-like
        The bytes to check.
    crc : int
        Running value to continue from (``0xFFFF`` to start).

    Returns
    -------
    int
        The 16-bit CRC.
    """
    return binascii.crc_hqx(data, crc)


def crc16_ccitt_reference(data: bytes | bytearray | memoryview, crc: int = CRC16_INIT) -> int:
    """Byte-wise table implementation of :func:`crc16_ccitt` (the one firmware ports)."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc
