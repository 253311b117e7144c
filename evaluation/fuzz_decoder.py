"""Decoder fuzzing and throughput measurement (used by ``elvmass fuzz-decoder`` and the tests).

The fuzz stream alternates intact DATA frames with corrupted ones. Every frame carries a distinct
sample counter, so each decoded block can be traced back to the frame the device sent. A decoded
block whose samples or lead-off bits differ from what was sent is a corrupted frame accepted (the
failure that matters: wrong numbers). A corrupted frame whose checked bytes all survived (e.g.
bytes inserted just before the CRC's last byte, which happened to equal it) decodes to exactly
what was sent; it is counted apart as ``corrupted_recovered``. An intact frame that never comes
out is a failure to resynchronize (each corruption is followed by an intact frame, so "0 intact
frames lost" means "resynchronized within one frame").

Corruptions (one per corrupted frame): 1-3 random bit flips, a burst of up to 16 random bits,
truncation, 1-8 inserted bytes, and pure noise in place of the frame. CRC-32 detects flips and
bursts with certainty (Hamming distance >= 4, bursts <= 32 bits); truncation, insertion and noise
rely on sync, header, length and status-marker checks plus the CRC, whose chance of passing a
slipped frame is 2**-32 (see PROTOCOL.md).
"""

from __future__ import annotations

import struct
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.events import Gap, Samples
from firmware_bridge.frames import (
    CODE_MAX, CODE_MIN, DATA_PREFIX_SIZE, ELECTRODES, DeviceInfo, FrameType, encode_data_payload, encode_frame, lead_off_matrix,
    status_word,
)

CORRUPTIONS = ("bit_flips", "burst", "truncation", "insertion", "noise")


def corrupt_frame(frame: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One corrupted version of ``frame`` (never equal to it)."""
    if kind == "bit_flips":
        data = bytearray(frame)
        for bit in rng.choice(len(frame) * 8, size=int(rng.integers(1, 4)), replace=False):
            data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)
    if kind == "burst":
        length = int(rng.integers(2, 17))
        start = int(rng.integers(0, len(frame) * 8 - length))
        data = bytearray(frame)
        pattern = int(rng.integers(1, 1 << length))  # non-zero: at least one bit changes
        for offset in range(length):
            if pattern >> offset & 1:
                bit = start + offset
                data[bit // 8] ^= 1 << (bit % 8)
        return bytes(data)
    if kind == "truncation":
        return frame[: int(rng.integers(1, len(frame)))]
    if kind == "insertion":
        at = int(rng.integers(1, len(frame)))
        return frame[:at] + rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8).tobytes() + frame[at:]
    if kind == "noise":
        return rng.integers(0, 256, size=int(rng.integers(1, 301)), dtype=np.uint8).tobytes()
    raise ValueError(f"unknown corruption {kind!r}; expected one of {CORRUPTIONS}")


def random_block(rng: np.random.Generator, count: int, lead_off_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random codes ``(count, 8)`` and status words, each electrode off with ``lead_off_prob``."""
    codes = rng.integers(CODE_MIN, CODE_MAX + 1, size=(count, 8))
    status = np.array([status_word([e for e in ELECTRODES if rng.random() < lead_off_prob]) for _ in range(count)])
    return codes, status


@dataclass
class FuzzReport:
    """What :func:`run_fuzz` measured."""

    corrupted_frames: int = 0
    intact_frames: int = 0
    by_corruption: dict[str, int] = field(default_factory=dict)
    exceptions: int = 0
    corrupted_accepted: int = 0
    corrupted_recovered: int = 0
    intact_lost: int = 0
    intact_altered: int = 0
    gaps_reported: int = 0
    gaps_expected: int = 0
    crc_errors: int = 0
    header_rejects: int = 0
    malformed_payloads: int = 0
    bytes_discarded: int = 0
    stream_bytes: int = 0
    decode_cpu_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def run_fuzz(n_corrupted: int = 100_000, *, seed: int = 0, samples_per_frame: int = 5,
             max_chunk: int = 1024) -> FuzzReport:
    """Feed a decoder ``n_corrupted`` corrupted frames interleaved with intact ones, in random chunks.

    Parameters
    ----------
    n_corrupted : int
        Corrupted frames (cycling through :data:`CORRUPTIONS`).
    seed : int
        Seed of everything random.
    samples_per_frame : int
        Samples in each DATA frame.
    max_chunk : int
        Chunks handed to ``feed`` are 1..max_chunk bytes.
    """
    rng = np.random.default_rng(seed)
    info = DeviceInfo(samples_per_frame=samples_per_frame)
    report = FuzzReport(by_corruption={kind: 0 for kind in CORRUPTIONS})
    truth: dict[int, int] = {}  # first_sample of each intact frame -> its block in the pool
    corrupted: dict[int, int] = {}  # the same for corrupted frames
    pieces: list[bytes] = []
    sample, seq = 0, 0
    # Reuse 64 blocks (building payloads is the slow part); a quarter of them have lead-off bits.
    pool = [random_block(rng, samples_per_frame, 0.1 if k % 4 == 0 else 0.0) for k in range(64)]
    lsb_mv = np.float32(info.lsb_nv * 1e-6)
    # what the decoder must deliver for each block, as bytes (cheaper to compare than arrays)
    expected = [((codes.T.astype(np.float32) * lsb_mv).tobytes(), lead_off_matrix(status).tobytes())
                for codes, status in pool]
    block_bytes = [encode_data_payload(0, codes, status)[DATA_PREFIX_SIZE:] for codes, status in pool]
    blocks = rng.integers(len(pool), size=2 * n_corrupted + 1)
    for unit, block in enumerate(blocks.tolist()):
        payload = struct.pack("<IB", sample, samples_per_frame) + block_bytes[block]
        frame = encode_frame(FrameType.DATA, seq, payload)
        if unit % 2 == 0:
            truth[sample] = block
            pieces.append(frame)
            report.intact_frames += 1
        else:
            corrupted[sample] = block
            kind = CORRUPTIONS[(unit // 2) % len(CORRUPTIONS)]
            pieces.append(corrupt_frame(frame, kind, rng))
            report.by_corruption[kind] += 1
            report.corrupted_frames += 1
            report.gaps_expected += 1
        sample += samples_per_frame
        seq += 1
    stream = b"".join(pieces)
    report.stream_bytes = len(stream)
    cuts = np.cumsum(rng.integers(1, max_chunk + 1, size=len(stream) // max(1, max_chunk // 2) + 2))
    cuts = np.concatenate([[0], cuts[cuts < len(stream)], [len(stream)]])

    decoder = StreamDecoder(info)
    seen: set[int] = set()
    started = time.process_time()
    for begin, end in zip(cuts[:-1], cuts[1:]):
        try:
            events = decoder.feed(stream[begin:end])
        except Exception:  # noqa: BLE001 - counting escapes is the point of the fuzz
            report.exceptions += 1
            continue
        for event in events:
            if isinstance(event, Gap):
                report.gaps_reported += 1
            elif isinstance(event, Samples):
                intact = event.first_sample in truth
                block = truth[event.first_sample] if intact else corrupted.get(event.first_sample)
                signals_mv, lead_off = expected[block] if block is not None else (None, None)
                same = (block is not None and event.signals_mv.tobytes() == signals_mv
                        and event.lead_off.tobytes() == lead_off)
                if intact:
                    report.intact_altered += not same
                    seen.add(event.first_sample)
                elif same:
                    report.corrupted_recovered += 1
                else:
                    report.corrupted_accepted += 1
    report.decode_cpu_s = time.process_time() - started
    report.intact_lost = len(set(truth) - seen)
    report.gaps_expected -= report.corrupted_recovered  # a recovered frame leaves no hole
    stats = decoder.stats
    report.crc_errors, report.header_rejects = stats.crc_errors, stats.header_rejects
    report.malformed_payloads, report.bytes_discarded = stats.malformed_payloads, stats.bytes_discarded
    return report


def measure_throughput(stream_seconds: float = 60.0, *, samples_per_frame: int = 5, fs: int = 500,
                       chunk_bytes: int = 4096, seed: int = 0) -> dict[str, float]:
    """CPU seconds the decoder needs per second of clean 500 Hz stream (one core, this process).

    The stream has random 24-bit samples and every electrode attached (the steady state).
    """
    rng = np.random.default_rng(seed)
    info = DeviceInfo(sample_rate_hz=fs, samples_per_frame=samples_per_frame)
    n_frames = int(stream_seconds * fs / samples_per_frame)
    pool = [random_block(rng, samples_per_frame) for _ in range(32)]
    stream = b"".join(encode_frame(FrameType.DATA, k, encode_data_payload(k * samples_per_frame, *pool[k % 32]))
                      for k in range(n_frames))
    decoder = StreamDecoder(info)
    started = time.process_time()
    for begin in range(0, len(stream), chunk_bytes):
        decoder.feed(stream[begin:begin + chunk_bytes])
    cpu_s = time.process_time() - started
    if decoder.stats.samples != n_frames * samples_per_frame:
        raise RuntimeError("throughput stream did not decode completely")
    return {"stream_seconds": n_frames * samples_per_frame / fs, "samples_per_frame": samples_per_frame,
            "bytes": len(stream), "cpu_seconds": cpu_s, "cpu_s_per_stream_s": cpu_s / (n_frames * samples_per_frame / fs)}
