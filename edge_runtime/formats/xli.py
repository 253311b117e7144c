"""XLI, the waveform compression of Philips SierraECG / PhilipsECG XML (PageWriter, TraceMaster).

The base64-decoded ``parsedwaveforms`` payload is one chunk per lead, back to back::

    int32 LE  compressed size in bytes
    int16 LE  (unused code)
    int16 LE  first delta seed
    size bytes of LZW data: 10-bit codes, most significant bit first, 256 single-byte roots,
               new strings from code 256 up to 1022 (the table then stays fixed)

The LZW output is ``2n`` bytes: the high bytes of ``n`` int16 values, then their low bytes. The
values are second differences: ``out[0..1]`` are stored as is and, for ``i >= 2``,
``out[i] = 2 out[i-1] - out[i-2] - c[i]`` with ``c[2] = seed`` and ``c[i] = v[i-1] - 64``, in
16-bit two's complement. Written from the format as documented by the MIT-licensed
sierra-ecg-tools project (C. A. Watford); this is our own code.
"""

from __future__ import annotations

import numpy as np

CODE_BITS = 10
LAST_CODE = (1 << CODE_BITS) - 2  # 1022: the highest code the table ever assigns
_HEADER_BYTES = 8


class XliError(ValueError):
    """The XLI payload is corrupt (the reader turns it into a RecordError naming the file)."""


def lzw_decompress(data: bytes, *, max_output: int) -> bytes:
    """Decode 10-bit MSB-first LZW codes; refuses codes that were never assigned.

    Parameters
    ----------
    data : bytes
        The compressed chunk.
    max_output : int
        Refuse to produce more bytes than this (a hostile chunk cannot grow without bound).
    """
    table: list[bytes] = [bytes([value]) for value in range(256)]
    out = bytearray()
    previous = b""
    bit_buffer = 0
    bit_count = 0
    for byte in data:
        bit_buffer = (bit_buffer << 8) | byte
        bit_count += 8
        if bit_count < CODE_BITS:
            continue
        bit_count -= CODE_BITS
        code = bit_buffer >> bit_count
        bit_buffer &= (1 << bit_count) - 1
        if code > LAST_CODE:  # 1023 marks the end of the stream
            break
        if code < len(table):
            entry = table[code]
        elif code == len(table) and previous:  # the KwKwK case: a string defined by this very code
            entry = previous + previous[:1]
        else:
            raise XliError(f"LZW code {code} used before it was defined (table has {len(table)})")
        if previous and len(table) <= LAST_CODE:
            table.append(previous + entry[:1])
        out += entry
        if len(out) > max_output:
            raise XliError(f"LZW output exceeds {max_output:,} bytes")
        previous = entry
    return bytes(out)


def undo_second_differences(values: np.ndarray, seed: int) -> np.ndarray:
    """Invert XLI's second-difference coding (vectorized; wraps to int16 as the cart's C code does)."""
    v = values.astype(np.int64)
    if len(v) < 3:
        return v.astype(np.int16)
    corrections = np.empty(len(v) - 2, dtype=np.int64)
    corrections[0] = seed
    corrections[1:] = v[2:-1] - 64
    # out[i] - out[i-1] = (out[i-1] - out[i-2]) - c[i]: the first difference is a running sum of -c.
    first_differences = (v[1] - v[0]) - np.cumsum(corrections)
    out = np.empty_like(v)
    out[:2] = v[:2]
    out[2:] = v[1] + np.cumsum(first_differences)
    # Linear integer arithmetic commutes with wrapping mod 2**16, so wrapping once at the end
    # equals the per-step int16 overflow of the reference implementation.
    return out.astype(np.int16)


def xli_decode(payload: bytes, *, max_leads: int, max_samples: int) -> list[np.ndarray]:
    """Decode every lead chunk of an XLI payload.

    Parameters
    ----------
    payload : bytes
        The base64-decoded ``parsedwaveforms`` text.
    max_leads, max_samples : int
        Caps on the number of chunks and on samples per chunk.

    Returns
    -------
    list of ndarray
        One int16 array per chunk, in file order.

    Raises
    ------
    XliError
        On a truncated header or chunk, an impossible size, an undefined LZW code or a cap exceeded.
    """
    leads: list[np.ndarray] = []
    offset = 0
    while offset < len(payload):
        if len(leads) >= max_leads:
            raise XliError(f"more than {max_leads} lead chunks")
        if len(payload) - offset < _HEADER_BYTES:
            raise XliError(f"chunk {len(leads) + 1}: truncated header ({len(payload) - offset} bytes)")
        size = int.from_bytes(payload[offset:offset + 4], "little", signed=True)
        seed = int.from_bytes(payload[offset + 6:offset + 8], "little", signed=True)
        offset += _HEADER_BYTES
        if size <= 0 or size > len(payload) - offset:
            raise XliError(f"chunk {len(leads) + 1}: size {size} with {len(payload) - offset} bytes left")
        raw = lzw_decompress(payload[offset:offset + size], max_output=2 * max_samples + 1)
        offset += size
        if len(raw) % 2:
            raw += b"\x00"
        half = len(raw) // 2
        if half < 2:
            raise XliError(f"chunk {len(leads) + 1}: only {len(raw)} bytes after decompression")
        planes = np.frombuffer(raw, dtype=np.uint8)
        values = ((planes[:half].astype(np.uint16) << 8) | planes[half:]).view(np.int16)
        leads.append(undo_second_differences(values, seed))
    return leads
