"""Streaming decoders: arbitrary byte chunks in, checked frames and typed events out.

:class:`FrameScanner` finds frames (sync, header sanity, CRC) and resynchronizes after garbage: on
any failure it drops one byte and searches for the next sync, and it keeps the bytes it has not
consumed, so a false sync in garbage never costs the real frame behind it.
:class:`StreamDecoder` interprets device frames: millivolts via the announced LSB, sample-counter
gaps as :class:`~firmware_bridge.events.Gap`, per-electrode lead-off changes.
"""

from __future__ import annotations

import struct
from binascii import crc32 as _crc32  # = firmware_bridge.crc.crc32 (tested there), minus a call
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from firmware_bridge.events import Event, Gap, InfoReceived, LeadOffChanged, Reply, Samples
from firmware_bridge.frames import (
    CRC_SIZE, ELECTRODES, HEADER_SIZE, MAX_PAYLOAD, PROTOCOL_VERSION, SYNC, DeviceInfo, Frame, FrameError, FrameType,
    decode_data_payloads, decode_info_payload, lead_off_matrix,
)

_HEADER = struct.Struct("<BBHH")  # version, type, seq, length (after the 2 sync bytes)
_CRC = struct.Struct("<I")
# Largest payload per type byte, -1 for unknown types (any length is then too long): the scanner's
# inlined form of frames.header_problem().
_PAYLOAD_LIMIT = tuple(MAX_PAYLOAD.get(frame_type, -1) for frame_type in range(256))
_COUNTER_MOD = 1 << 32
_NO_ROWS = np.zeros(0, dtype=np.intp)
_FIRST_ROW = np.zeros(1, dtype=np.intp)
_DATA = int(FrameType.DATA)


@dataclass
class ScannerStats:
    """Counters of :class:`FrameScanner` (all since construction)."""

    bytes_in: int = 0
    frames_ok: int = 0
    frame_bytes: int = 0
    crc_errors: int = 0
    header_rejects: int = 0
    resyncs: int = 0  # accepted frames that did not start where the previous one ended (bytes skipped)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FrameScanner:
    """Split a byte stream into CRC-checked :class:`~firmware_bridge.frames.Frame` objects.

    After a frame is accepted, scanning resumes at its last ``CRC_SIZE - 1`` bytes rather than
    after it: when a frame was cut short by k <= 3 bytes and the k bytes that slid into its CRC
    field (the next frame's sync and header) happened to complete a matching CRC (chance 1/256
    for k = 1), the frame's checked bytes are intact and it is rightly accepted, but the next
    frame starts inside it and would otherwise be lost.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._counted_head = 0  # leading buffer bytes that belong to an accepted frame
        self.stats = ScannerStats()

    @property
    def bytes_discarded(self) -> int:
        """Bytes dropped as not belonging to any valid frame (garbage, corrupted frames)."""
        return self.stats.bytes_in - self.stats.frame_bytes - (len(self._buffer) - self._counted_head)

    def reset(self) -> None:
        """Forget buffered bytes (e.g. after reopening the port); they count as discarded."""
        self._buffer.clear()
        self._counted_head = 0

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Frame]:
        """Add bytes; return every frame completed by them, in order."""
        return [Frame(frame_type, seq, payload) for frame_type, seq, payload in self.scan(chunk)]

    def scan(self, chunk: bytes | bytearray | memoryview) -> list[tuple[int, int, bytes]]:
        """:meth:`feed` without the :class:`Frame` objects: ``(type, seq, payload)`` tuples.

        The hot path of a 100-frames-per-second stream: per frame only a sync search, one header
        unpack and one CRC in C over a memoryview (no copy of the checked bytes).
        """
        buffer = self._buffer
        buffer += chunk
        stats = self.stats
        stats.bytes_in += len(chunk)
        frames: list[tuple[int, int, bytes]] = []
        pos = 0
        counted_until = self._counted_head
        end = len(buffer)
        ok = header_rejects = crc_errors = frame_bytes = resyncs = 0  # written back once, not per frame
        view = memoryview(buffer)
        try:
            while True:
                start = buffer.find(SYNC, pos)
                if start < 0:
                    # keep a trailing first sync byte: its partner may arrive in the next chunk
                    pos = max(pos, end - 1 if end and buffer[end - 1] == SYNC[0] else end)
                    break
                if end - start < HEADER_SIZE:
                    pos = start
                    break
                version, frame_type, seq, length = _HEADER.unpack_from(buffer, start + 2)
                if version != PROTOCOL_VERSION or length > _PAYLOAD_LIMIT[frame_type]:  # = header_problem()
                    header_rejects += 1
                    pos = start + 1
                    continue
                total = HEADER_SIZE + length + CRC_SIZE
                if end - start < total:
                    pos = start
                    break
                body_end = start + HEADER_SIZE + length
                if _crc32(view[start + 2:body_end]) != _CRC.unpack_from(buffer, body_end)[0]:
                    crc_errors += 1
                    pos = start + 1
                    continue
                frames.append((frame_type, seq, bytes(view[start + HEADER_SIZE:body_end])))
                ok += 1
                if start > counted_until:
                    resyncs += 1
                frame_bytes += total if start >= counted_until else start + total - counted_until
                counted_until = start + total
                pos = start + total - (CRC_SIZE - 1)
        finally:
            view.release()  # a bytearray with an exported view cannot be resized
            stats.frames_ok += ok
            stats.header_rejects += header_rejects
            stats.crc_errors += crc_errors
            stats.frame_bytes += frame_bytes
            stats.resyncs += resyncs
        del buffer[:pos]
        self._counted_head = max(0, counted_until - pos)
        return frames


@dataclass
class DecoderStats:
    """Counters of :class:`StreamDecoder`; ``bytes_discarded`` includes corrupted frames."""

    bytes_in: int = 0
    bytes_discarded: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    header_rejects: int = 0
    resyncs: int = 0
    malformed_payloads: int = 0
    data_without_info: int = 0
    frames_missed: int = 0
    gaps: int = 0
    samples: int = 0


class StreamDecoder:
    """Decode the device -> host byte stream into events.

    Parameters
    ----------
    info : DeviceInfo, optional
        The device's announcement when it is known in advance; otherwise DATA frames are dropped
        (and counted in ``stats.data_without_info``) until an INFO frame arrives, because without
        the LSB and channel map no millivolt value would be right.
    coalesce : bool
        False (default): one :class:`~firmware_bridge.events.Samples` per DATA frame. True: one
        per run of frames with contiguous sample counters inside a fed chunk (what a consumer that
        only buffers samples wants: ~30x fewer events at 4 kB reads). The samples, gaps and
        lead-off events are the same either way; a block never spans a gap.

    Examples
    --------
    >>> decoder = StreamDecoder()
    >>> for chunk in chunks:                      # doctest: +SKIP
    ...     for event in decoder.feed(chunk):
    ...         handle(event)
    """

    def __init__(self, info: DeviceInfo | None = None, coalesce: bool = False) -> None:
        self.scanner = FrameScanner()
        self.coalesce = coalesce
        self.info: DeviceInfo | None = None
        self._scale: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._next_sample: int | None = None
        self._last_seq: int | None = None
        self._lead_off = np.zeros(len(ELECTRODES), dtype=bool)  # at the last decoded sample
        self._lead_off_at_batch_start = self._lead_off
        self._counts = DecoderStats()
        if info is not None:
            self._set_info(info)

    @property
    def stats(self) -> DecoderStats:
        scan = self.scanner.stats
        counts = self._counts
        counts.bytes_in, counts.frames_ok = scan.bytes_in, scan.frames_ok
        counts.crc_errors, counts.header_rejects, counts.resyncs = scan.crc_errors, scan.header_rejects, scan.resyncs
        counts.bytes_discarded = self.scanner.bytes_discarded
        return counts

    @property
    def expected_sample(self) -> int | None:
        """Counter value the next sample should carry (``None`` before data or right after a gap)."""
        return self._next_sample

    def reset(self) -> None:
        """Start a new stream (port reopened): buffered bytes and continuity are forgotten."""
        self.scanner.reset()
        self._next_sample = None
        self._last_seq = None

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        """Add bytes; return the events they complete, in stream order."""
        events: list[Event] = []
        data: list[bytes] = []  # consecutive DATA payloads, decoded together
        # Sequence tracking inline, in locals written back once: the per-frame hot path (~100 frames/s).
        last_seq, missed = self._last_seq, 0
        try:
            for frame_type, seq, payload in self.scanner.scan(chunk):
                if last_seq is not None:
                    missed += (seq - last_seq - 1) & 0xFFFF
                last_seq = seq
                if frame_type == _DATA:
                    data.append(payload)
                    continue
                self._on_data(data, events)  # earlier samples first: events stay in stream order
                data = []
                frame = Frame(frame_type, seq, payload)
                if frame_type == FrameType.INFO:
                    self._on_info(frame, events)
                elif frame_type in (FrameType.PONG, FrameType.ACK, FrameType.NAK):
                    events.append(Reply(FrameType(frame_type).name.lower(), seq, payload))
                else:  # a host -> device command echoed back (loopback wiring): not ours to act on
                    self._counts.malformed_payloads += 1
        finally:
            self._last_seq = last_seq
            self._counts.frames_missed += missed
        self._on_data(data, events)
        return events

    def _set_info(self, info: DeviceInfo) -> None:
        problems = info.problems()
        if problems:
            raise FrameError("; ".join(problems))
        self.info = info
        self._order = info.channel_order
        self._scale = np.float32(info.lsb_nv * 1e-6)

    def _on_info(self, frame: Frame, events: list[Event]) -> None:
        try:
            info = decode_info_payload(frame.payload)
            previous = self.info
            self._set_info(info)
        except FrameError:
            self._counts.malformed_payloads += 1
            return
        if previous is not None and previous != info and self._next_sample is not None:
            self._emit_gap(events, None, "device configuration changed")
        events.append(InfoReceived(info))

    def _emit_gap(self, events: list[Event], resumed: int | None, reason: str, missing: int | None = None) -> None:
        events.append(Gap(self._next_sample, resumed, missing, reason))
        self._counts.gaps += 1
        self._next_sample = None

    def _on_data(self, payloads: list[bytes], events: list[Event]) -> None:
        """Decode consecutive DATA payloads in one numpy pass, then split them at counter gaps."""
        if not payloads:
            return
        if self.info is None:
            self._counts.data_without_info += len(payloads)
            return
        accepted, firsts, counts, codes, status = decode_data_payloads(payloads)
        self._counts.malformed_payloads += len(payloads) - len(accepted)
        if not accepted:
            return
        # codes.T[order] is C-contiguous (channels, samples); int -> float32 is exact below 2**24
        signals = np.multiply(codes.T[self._order], self._scale, dtype=np.float32)
        # Rows where the set of electrodes off differs from the row before (the state carries over
        # gaps, as it did frame by frame): found once per batch, usually none.
        self._lead_off_at_batch_start = self._lead_off
        first_status = int(status[0])
        if (status == first_status).all():  # the usual read: one status word throughout
            row_off = _lead_off_row(first_status)
            lead_off = np.repeat(row_off[None, :], status.size, axis=0)
            changed = _NO_ROWS if (row_off == self._lead_off).all() else _FIRST_ROW
            self._lead_off = row_off
        else:
            lead_off = lead_off_matrix(status)
            changed = np.flatnonzero(np.any(lead_off != np.vstack([self._lead_off, lead_off[:-1]]), axis=1))
            self._lead_off = lead_off[-1].copy()
        fs = float(self.info.sample_rate_hz)
        row = 0
        for first, rows in self._runs(firsts, counts, events):
            events.append(Samples(first, signals[:, row:row + rows], lead_off[row:row + rows], fs))
            if changed.size:
                self._report_lead_off(first, row, lead_off, changed[(changed >= row) & (changed < row + rows)], events)
            row += rows
        self._counts.samples += row

    def _runs(self, firsts: list[int], counts: list[int], events: list[Event]) -> Iterable[tuple[int, int]]:
        """``(first_sample, n_samples)`` per Samples block, emitting a Gap where the counter jumps.

        The usual coalesced read continues the stream without a jump: one block, found without the
        generator below (a read every 50 ms makes this per-read work worth trimming).
        """
        if self.coalesce and firsts:
            position = firsts[0] if self._next_sample is None else self._next_sample
            for first, count in zip(firsts, counts):
                if first != position:
                    return self._runs_with_gaps(firsts, counts, events)
                position = (first + count) % _COUNTER_MOD
            self._next_sample = position
            return ((firsts[0], sum(counts)),)
        return self._runs_with_gaps(firsts, counts, events)

    def _runs_with_gaps(self, firsts: list[int], counts: list[int], events: list[Event]) -> Iterator[tuple[int, int]]:
        """:meth:`_runs` in general: a generator, so each Gap lands in ``events`` right before the block it
        precedes."""
        run_first, run_rows = None, 0
        for first, count in zip(firsts, counts):
            continues = self._next_sample is None or first == self._next_sample
            if run_rows and (not continues or not self.coalesce):
                yield run_first, run_rows
                run_rows = 0
            if not continues:
                ahead = (first - self._next_sample) % _COUNTER_MOD
                if ahead < _COUNTER_MOD // 2:
                    self._emit_gap(events, first, "sample counter jumped (frames lost)", ahead)
                else:
                    self._emit_gap(events, first, "sample counter went back (device restarted)")
            if not run_rows:
                run_first = first
            run_rows += count
            self._next_sample = (first + count) % _COUNTER_MOD
        if run_rows:
            yield run_first, run_rows

    def _report_lead_off(self, first: int, block_row: int, lead_off: np.ndarray, changed_rows: np.ndarray,
                         events: list[Event]) -> None:
        """A :class:`LeadOffChanged` for each changed row of the block starting at ``block_row``."""
        for row in changed_rows:
            now, previous = lead_off[row], self._lead_off_before(lead_off, row)
            events.append(LeadOffChanged((first + int(row) - block_row) % _COUNTER_MOD, _names(now),
                                         _names(now & ~previous), _names(previous & ~now)))

    def _lead_off_before(self, lead_off: np.ndarray, row: int) -> np.ndarray:
        return lead_off[row - 1] if row else self._lead_off_at_batch_start


@lru_cache(maxsize=64)
def _lead_off_row(status: int) -> np.ndarray:
    """:func:`~firmware_bridge.frames.lead_off_matrix` of one status word (read-only, cached: a stream
    repeats a handful of words)."""
    row = lead_off_matrix(np.array([status]))[0]
    row.setflags(write=False)
    return row


def _names(mask: np.ndarray) -> frozenset[str]:
    return frozenset(electrode for electrode, flag in zip(ELECTRODES, mask) if flag)
