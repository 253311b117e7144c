"""The least CPU the run loop can take per s of ECG, per serial read size: how far 1000x real time is.

    python deploy/read_floor_probe.py [--seconds 120] [--rounds 7] [--read-bytes 760 1520 3800]

On the stream ``elvmass bench`` decodes (the bundled record as a front-end sends it, 5-sample DATA frames of
152 B, 15,200 B/s) and per serial read size, best of ``--rounds`` passes, CPU time of this process:

* ``decoder``: ``StreamDecoder(coalesce=True).feed`` as shipped, per read;
* ``floor``: what no CPython decoder of this protocol can go under: reads that hold whole DATA frames only,
  per frame nothing but its CRC (``binascii.crc32``, in C), per read one strided view of the channel words,
  one conversion, one shift and one scaling multiply. No header, sequence, gap, status or lead-off check, no
  events: a lower bound, not a decoder;
* ``checked``: the frames found and checked as the protocol requires (``FrameScanner.scan`` as shipped: sync
  search, header, CRC, resync) and their samples unpacked as in ``floor``; still no sequence, gap, status or
  lead-off logic and no events, so also a lower bound, of a decoder that checks its frames;
* ``events``: ``RuntimeSession.handle`` of the shipped decoder's events, analysis switched off (windowing);
* ``analysis``: ``session.analyze`` per 10 s window, the best pass of ``elvmass bench --stages``.

The bounds per s of ECG are ``floor (or checked) x reads per s + events + analysis / 10``; their inverses are the
most real time the run loop could reach at that read size without changing the analysis. 760 B is what a read returns with
the transport's 50 ms timeout (``transport.steady_read_bytes``); larger reads mean a longer timeout. A host
tool for docs/performance.md; the device never imports it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from binascii import crc32
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _best_cpu(function, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        function()
        best = min(best, time.process_time() - start)
    return best


def floor_reads(wire: bytes, read_bytes: int) -> tuple[list[bytes], int, int]:
    """The stream's DATA frames cut into reads of whole frames: (reads, frame size, samples per frame)."""
    from firmware_bridge.frames import CRC_SIZE, DATA_PREFIX_SIZE, HEADER_SIZE, SYNC, FrameType

    start = wire.find(SYNC + bytes([1, int(FrameType.DATA)]))
    length = int.from_bytes(wire[start + 6:start + 8], "little")
    frame_size = HEADER_SIZE + length + CRC_SIZE
    per_frame = wire[start + HEADER_SIZE + DATA_PREFIX_SIZE - 1]  # the count byte
    frames_per_read = max(1, read_bytes // frame_size)
    step = frames_per_read * frame_size
    data = wire[start:]
    return [data[o:o + step] for o in range(0, len(data) - step + 1, step)], frame_size, per_frame


def floor_decode(reads: list[bytes], frame_size: int, per_frame: int, scale: np.float32,
                 order: np.ndarray) -> list[np.ndarray]:
    """The ``floor`` lower bound of the module docstring: the millivolts of each read, (8, n) in CHANNEL_LEADS rows."""
    from firmware_bridge.frames import BLOCK_SIZE, CRC_SIZE, DATA_PREFIX_SIZE, HEADER_SIZE

    channels = HEADER_SIZE + DATA_PREFIX_SIZE + 3  # first channel word, after the 3-byte status
    blocks = []
    for read in reads:
        view = memoryview(read)
        for offset in range(0, len(read), frame_size):
            crc32(view[offset + 2:offset + frame_size - CRC_SIZE])
        words = np.ndarray((len(read) // frame_size, per_frame, 8), dtype=">i4", buffer=read, offset=channels,
                           strides=(frame_size, BLOCK_SIZE, 3))
        blocks.append(np.multiply((words.astype(np.int32) >> 8).reshape(-1, 8).T[order], scale, dtype=np.float32))
    return blocks


def checked_decode(chunks: list[bytes], per_frame: int, scale: np.float32, order: np.ndarray) -> list[np.ndarray]:
    """The ``checked`` lower bound of the module docstring: the millivolts of each read that completed frames."""
    from firmware_bridge.decoder import FrameScanner
    from firmware_bridge.frames import BLOCK_SIZE, DATA_PREFIX_SIZE, FrameType

    data = int(FrameType.DATA)
    scanner, blocks = FrameScanner(), []
    for chunk in chunks:
        payloads = [payload for frame_type, _, payload in scanner.scan(chunk) if frame_type == data]
        if not payloads:
            continue
        joined = b"".join(payloads) + b"\0"
        words = np.ndarray((len(payloads), per_frame, 8), dtype=">i4", buffer=joined, offset=DATA_PREFIX_SIZE + 3,
                           strides=(DATA_PREFIX_SIZE + per_frame * BLOCK_SIZE, BLOCK_SIZE, 3))
        blocks.append(np.multiply((words.astype(np.int32) >> 8).reshape(-1, 8).T[order], scale, dtype=np.float32))
    return blocks


def stream_scale_and_order(wire: bytes) -> tuple[np.float32, np.ndarray]:
    """The LSB (mV) and channel order the stream's INFO frame announces, as the decoder applies them."""
    from firmware_bridge.decoder import StreamDecoder

    decoder = StreamDecoder()
    decoder.feed(wire[:4096])
    return np.float32(decoder.info.lsb_nv * 1e-6), decoder.info.channel_order


def main(argv: list[str] | None = None) -> int:
    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.store import ResultStore
    from evaluation.commands.bench import _encoded_stream
    from evaluation.runtime_stages import stage_breakdown
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.transport import steady_read_bytes

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--read-bytes", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)

    wire, n_samples = _encoded_stream(args.seconds)
    scale, order = stream_scale_and_order(wire)
    ecg_s = n_samples / 500.0
    real_time = steady_read_bytes(len(wire) / args.seconds)
    sizes = args.read_bytes or [real_time, 2 * real_time, 5 * real_time]
    stages = dict(stage_breakdown(None, args.seconds, "onnxruntime", "int8", repeats=5)["stages"])
    analysis_ms_per_s = stages["session.analyze (per window, all below)"] / 10.0
    analyzer = Analyzer(ClinicConfig())
    print(f"session.analyze per 10 s window (best pass of `elvmass bench --stages`): {10 * analysis_ms_per_s:.2f} ms "
          f"= {analysis_ms_per_s:.3f} ms per s of ECG")
    print(f"{'read':>7} {'reads/s':>8} {'decoder/read':>13} {'checked/read':>13} {'floor/read':>11} {'decoder':>9} "
          f"{'checked':>8} {'floor':>8} {'events':>8} {'now':>7} {'checked':>8} {'floor':>7}")
    print(f"{'':>7} {'':>8} {'us':>13} {'us':>13} {'us':>11} {'ms per s of ECG':>44} {'x real time':>24}")
    for read_bytes in sizes:
        chunks = [wire[o:o + read_bytes] for o in range(0, len(wire), read_bytes)]
        shipped = _best_cpu(lambda: _feed_all(StreamDecoder(coalesce=True), chunks), args.rounds)
        reads, frame_size, per_frame = floor_reads(wire, read_bytes)
        floor = _best_cpu(lambda: floor_decode(reads, frame_size, per_frame, scale, order), args.rounds)
        checked = _best_cpu(lambda: checked_decode(chunks, per_frame, scale, order), args.rounds)
        decoder = StreamDecoder(coalesce=True)
        events = [decoder.feed(chunk) for chunk in chunks]
        with tempfile.TemporaryDirectory() as folder, ResultStore(Path(folder) / "probe.sqlite") as store:
            sessions = [RuntimeSession(analyzer, PatientContext(77.0, "F", 160.0, 68.0, "PROBE"), store)
                        for _ in range(args.rounds)]
            for session in sessions:
                session.analyze = lambda window: None  # type: ignore[method-assign]
            handling = min(_best_cpu(lambda s=session: _handle_all(s, events), 1) for session in sessions)
        reads_per_s = len(chunks) / ecg_s
        shipped_ms, checked_ms = shipped / ecg_s * 1e3, checked / ecg_s * 1e3
        floor_ms = floor / len(reads) * reads_per_s * 1e3
        events_ms = handling / ecg_s * 1e3
        rest = events_ms + analysis_ms_per_s
        print(f"{read_bytes:>6}B {reads_per_s:>8.1f} {shipped / len(chunks) * 1e6:>13.1f} {checked / len(chunks) * 1e6:>13.1f} "
              f"{floor / len(reads) * 1e6:>11.1f} {shipped_ms:>9.3f} {checked_ms:>8.3f} {floor_ms:>8.3f} {events_ms:>8.3f} "
              f"{1000 / (shipped_ms + rest):>6.0f}x {1000 / (checked_ms + rest):>7.0f}x {1000 / (floor_ms + rest):>6.0f}x")
    return 0


def _feed_all(decoder, chunks) -> None:
    for chunk in chunks:
        decoder.feed(chunk)


def _handle_all(session, events) -> None:
    for batch in events:
        for event in batch:
            session.handle(event)


if __name__ == "__main__":
    raise SystemExit(main())
