"""Streaming decoders: arbitrary byte chunks in, checked frames and typed events out.

:class:`FrameScanner` finds frames (sync, header sanity, CRC) and resynchronizes after garbage: on
any failure it drops one byte and searches for the next sync, and it keeps the bytes it has not
consumed, so a false sync in garbage never costs the real frame behind it.
:class:`StreamDecoder` interprets device frames: millivolts via the announced LSB, sample-counter
gaps as :class:`~firmware_bridge.events.Gap`, per-electrode lead-off changes.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass

import numpy as np

from firmware_bridge.crc import crc32
from firmware_bridge.events import Event, Gap, InfoReceived, LeadOffChanged, Reply, Samples
from firmware_bridge.frames import (
    CRC_SIZE, ELECTRODES, HEADER_SIZE, SYNC, DeviceInfo, Frame, FrameError, FrameType,
    decode_data_payload, decode_info_payload, header_problem, lead_off_matrix,
)

_HEADER = struct.Struct("<BBHH")  # version, type, seq, length (after the 2 sync bytes)
_COUNTER_MOD = 1 << 32


@dataclass
class ScannerStats:
    """Counters of :class:`FrameScanner` (all since construction)."""

    bytes_in: int = 0
    frames_ok: int = 0
    frame_bytes: int = 0
    crc_errors: int = 0
    header_rejects: int = 0

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
        buffer = self._buffer
        buffer += chunk
        self.stats.bytes_in += len(chunk)
        frames: list[Frame] = []
        pos = 0
        counted_until = self._counted_head
        end = len(buffer)
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
            if header_problem(frame_type, version, length) is not None:
                self.stats.header_rejects += 1
                pos = start + 1
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if end - start < total:
                pos = start
                break
            body_end = start + HEADER_SIZE + length
            received = int.from_bytes(buffer[body_end:body_end + CRC_SIZE], "little")
            if crc32(bytes(buffer[start + 2:body_end])) != received:
                self.stats.crc_errors += 1
                pos = start + 1
                continue
            frames.append(Frame(frame_type, seq, bytes(buffer[start + HEADER_SIZE:body_end])))
            self.stats.frames_ok += 1
            self.stats.frame_bytes += start + total - max(start, counted_until)
            counted_until = start + total
            pos = start + total - (CRC_SIZE - 1)
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

    Examples
    --------
    >>> decoder = StreamDecoder()
    >>> for chunk in chunks:                      # doctest: +SKIP
    ...     for event in decoder.feed(chunk):
    ...         handle(event)
    """

    def __init__(self, info: DeviceInfo | None = None) -> None:
        self.scanner = FrameScanner()
        self.info: DeviceInfo | None = None
        self._scale: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._next_sample: int | None = None
        self._last_seq: int | None = None
        self._lead_off = np.zeros(len(ELECTRODES), dtype=bool)
        self._counts = DecoderStats()
        if info is not None:
            self._set_info(info)

    @property
    def stats(self) -> DecoderStats:
        scan = self.scanner.stats
        counts = self._counts
        counts.bytes_in, counts.frames_ok = scan.bytes_in, scan.frames_ok
        counts.crc_errors, counts.header_rejects = scan.crc_errors, scan.header_rejects
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
        for frame in self.scanner.feed(chunk):
            self._track_seq(frame.seq)
            if frame.type == FrameType.DATA:
                self._on_data(frame, events)
            elif frame.type == FrameType.INFO:
                self._on_info(frame, events)
            elif frame.type in (FrameType.PONG, FrameType.ACK, FrameType.NAK):
                events.append(Reply(FrameType(frame.type).name.lower(), frame.seq, frame.payload))
            else:  # a host -> device command echoed back (loopback wiring): not ours to act on
                self._counts.malformed_payloads += 1
        return events

    def _track_seq(self, seq: int) -> None:
        if self._last_seq is not None:
            self._counts.frames_missed += (seq - self._last_seq - 1) & 0xFFFF
        self._last_seq = seq

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

    def _on_data(self, frame: Frame, events: list[Event]) -> None:
        if self.info is None:
            self._counts.data_without_info += 1
            return
        try:
            first, codes, status = decode_data_payload(frame.payload)
        except FrameError:
            self._counts.malformed_payloads += 1
            return
        if self._next_sample is not None and first != self._next_sample:
            ahead = (first - self._next_sample) % _COUNTER_MOD
            if ahead < _COUNTER_MOD // 2:
                self._emit_gap(events, first, "sample counter jumped (frames lost)", ahead)
            else:
                self._emit_gap(events, first, "sample counter went back (device restarted)")
        signals = codes[:, self._order].T.astype(np.float32) * self._scale
        lead_off = lead_off_matrix(status)
        n = codes.shape[0]
        events.append(Samples(first, signals, lead_off, float(self.info.sample_rate_hz)))
        self._report_lead_off(first, lead_off, events)
        self._next_sample = (first + n) % _COUNTER_MOD
        self._counts.samples += n

    def _report_lead_off(self, first: int, lead_off: np.ndarray, events: list[Event]) -> None:
        previous = self._lead_off
        if not (lead_off != previous).any():  # the usual case: nothing changed within this frame
            return
        changed = np.any(lead_off != np.vstack([previous, lead_off[:-1]]), axis=1)
        for row in np.flatnonzero(changed):
            now = lead_off[row]
            events.append(LeadOffChanged((first + int(row)) % _COUNTER_MOD, _names(now),
                                         _names(now & ~previous), _names(previous & ~now)))
            previous = now
        self._lead_off = lead_off[-1].copy()


def _names(mask: np.ndarray) -> frozenset[str]:
    return frozenset(electrode for electrode, flag in zip(ELECTRODES, mask) if flag)
