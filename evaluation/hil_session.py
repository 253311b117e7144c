"""Talk to a front-end for ``elvmass hil-check``: commands with bounded waits, and timed stream captures.

:class:`DeviceSession` never waits without a deadline: every request has a reply timeout and a
capture stops when the device has sent nothing for ``stall_timeout_s`` (the protocol's lost-link
rule), so a device that stops answering mid-session is reported, never waited on. Before the
device's INFO is known replies are read with a bare :class:`~firmware_bridge.decoder.FrameScanner`
(so an INFO the decoder would refuse can still be shown); captures go through a
:class:`~firmware_bridge.decoder.StreamDecoder` that knows the INFO.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import serial

from firmware_bridge.decoder import DecoderStats, FrameScanner, StreamDecoder
from firmware_bridge.events import Gap, Reply, Samples
from firmware_bridge.frames import DeviceInfo, Frame, FrameType, encode_frame

READ_POLL_S = 0.005  # one read blocks at most this long: arrival times are this fine
QUIET_AT_END_S = 0.25  # a capture ends on time only if the device sent something this recently


class SessionError(RuntimeError):
    """The port cannot be opened or used; the message says why."""


@dataclass
class Capture:
    """What one START..STOP stretch delivered, with host arrival times (``time.monotonic`` seconds).

    ``frame_arrivals`` rows are ``(arrival_s, first_sample, count)``, one per DATA frame decoded.
    """

    started_at: float
    frame_arrivals: list[tuple[float, int, int]] = field(default_factory=list)
    blocks: list[Samples] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    decode_s_per_frame: list[float] = field(default_factory=list)
    ping_rtts_s: list[float] = field(default_factory=list)
    pings_sent: int = 0
    start_ack_s: float | None = None  # START -> ACK, seconds (None: no ACK came)
    silent_after_s: float | None = None  # host seconds into the capture when the device went quiet
    ended_at: float = 0.0
    stats: DecoderStats = field(default_factory=DecoderStats)

    @property
    def n_samples(self) -> int:
        return sum(block.n_samples for block in self.blocks)

    def longest_run(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(first_sample, signals (8, n) mV, lead_off (n, 9))`` of the longest gap-free stretch."""
        runs: list[list[Samples]] = []
        expected = None
        for block in self.blocks:
            if expected is None or block.first_sample != expected:
                runs.append([])
            runs[-1].append(block)
            expected = (block.first_sample + block.n_samples) % (1 << 32)
        if not runs:
            return 0, np.zeros((8, 0), dtype=np.float32), np.zeros((0, 9), dtype=bool)
        best = max(runs, key=lambda run: sum(b.n_samples for b in run))
        return (best[0].first_sample, np.concatenate([b.signals_mv for b in best], axis=1),
                np.concatenate([b.lead_off for b in best], axis=0))

    def indexed_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sample counter (n,), signals (8, n) mV)`` of every decoded sample, counter unwrapped."""
        if not self.blocks:
            return np.zeros(0, dtype=np.int64), np.zeros((8, 0), dtype=np.float32)
        firsts = np.unwrap(np.array([b.first_sample for b in self.blocks], dtype=np.float64), period=2.0**32)
        index = np.concatenate([np.int64(f) + np.arange(b.n_samples) for f, b in zip(firsts, self.blocks)])
        return index, np.concatenate([b.signals_mv for b in self.blocks], axis=1)

    def all_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Every decoded sample, ``(signals (8, n) mV, lead_off (n, 9))``, gaps ignored."""
        if not self.blocks:
            return np.zeros((8, 0), dtype=np.float32), np.zeros((0, 9), dtype=bool)
        return (np.concatenate([b.signals_mv for b in self.blocks], axis=1),
                np.concatenate([b.lead_off for b in self.blocks], axis=0))


class DeviceSession:
    """One open port to a device speaking the elvmass protocol.

    Parameters
    ----------
    url : str
        Port or pyserial URL.
    baudrate : int
        UART rate (ignored by USB CDC and ptys).
    reply_timeout_s : float
        Longest wait for the reply to one command.
    stall_timeout_s : float
        A capture with no byte for this long ends with the device reported silent.
    open_port : callable
        ``serial.serial_for_url`` by default.
    """

    def __init__(self, url: str, *, baudrate: int = 921600, reply_timeout_s: float = 1.0, stall_timeout_s: float = 2.0,
                 open_port: Callable[..., serial.SerialBase] = serial.serial_for_url) -> None:
        self.url = url
        self.reply_timeout_s = reply_timeout_s
        self.stall_timeout_s = stall_timeout_s
        try:
            self.port = open_port(url, baudrate=baudrate, timeout=READ_POLL_S, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as error:
            raise SessionError(f"cannot open {url}: {error}") from error
        self.scanner = FrameScanner()
        self.decoder: StreamDecoder | None = None
        self._seq = 0
        self.last_byte_at = time.monotonic()

    def close(self) -> None:
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> "DeviceSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, frame_type: int, payload: bytes = b"") -> None:
        """One host -> device frame (a write that cannot complete is a :class:`SessionError`)."""
        try:
            self.port.write(encode_frame(frame_type, self._seq, payload))
        except (serial.SerialException, OSError) as error:
            raise SessionError(f"write to {self.url} failed: {error}") from error
        self._seq = (self._seq + 1) & 0xFFFF

    def _read(self) -> tuple[float, bytes]:
        try:
            data = self.port.read(max(1, self.port.in_waiting))
        except (serial.SerialException, OSError) as error:
            raise SessionError(f"read from {self.url} failed: {error}") from error
        now = time.monotonic()
        if data:
            self.last_byte_at = now
        return now, data

    def request(self, frame_type: int, payload: bytes, wanted: Callable[[Frame], bool], *,
                timeout_s: float | None = None, resend_every_s: float | None = None) -> tuple[Frame | None, float]:
        """Send a command and wait for the first reply frame ``wanted`` accepts.

        Returns
        -------
        frame : Frame or None
            ``None`` when nothing matching came within the timeout.
        seconds : float
            From the (first) send to the reply, or to the timeout.
        """
        timeout_s = self.reply_timeout_s if timeout_s is None else timeout_s
        self.scanner.reset()
        sent_at = time.monotonic()
        self.send(frame_type, payload)
        next_send = sent_at + resend_every_s if resend_every_s else float("inf")
        deadline = sent_at + timeout_s
        while True:
            now, data = self._read()
            for frame in self.scanner.feed(data) if data else ():
                if frame.type != FrameType.DATA and wanted(frame):
                    return frame, now - sent_at
            if now >= deadline:
                return None, now - sent_at
            if now >= next_send:
                self.send(frame_type, payload)
                next_send = now + resend_every_s  # type: ignore[operator]

    def drain(self, seconds: float) -> int:
        """Read and discard for ``seconds``; returns the DATA frames seen (a device that should be quiet)."""
        self.scanner.reset()
        data_frames = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _, data = self._read()
            data_frames += sum(1 for frame in self.scanner.feed(data) if frame.type == FrameType.DATA) if data else 0
        return data_frames

    def capture(self, info: DeviceInfo, duration_s: float, *, ping_every_s: float | None = 0.5, send_start: bool = True,
                until: Callable[[Samples], bool] | None = None) -> Capture:
        """Send START and read the stream for ``duration_s`` host seconds.

        The START's ACK is looked for in the stream itself, so no DATA frame read with it is lost.
        ``send_start=False`` goes on reading a stream already running; ``until`` ends the capture at
        the first block it accepts.
        PINGs (numbered payloads) are sent every ``ping_every_s`` to time round trips behind the data.
        The capture ends early, with ``silent_after_s`` set, when no byte came for ``stall_timeout_s``.
        """
        if send_start or self.decoder is None:
            self.decoder = StreamDecoder(info)
        capture = Capture(started_at=time.monotonic())
        pending: dict[bytes, float] = {}
        next_ping = capture.started_at + (ping_every_s or float("inf"))
        self.last_byte_at = capture.started_at
        if send_start:
            self.send(FrameType.START)
        reached = False
        end = capture.started_at + duration_s
        while True:
            now, data = self._read()
            if data:
                tick = time.perf_counter()
                events = self.decoder.feed(data)
                decode_s = time.perf_counter() - tick
                frames = [event for event in events if isinstance(event, Samples)]
                for event in events:
                    if isinstance(event, Samples):
                        capture.frame_arrivals.append((now, event.first_sample, event.n_samples))
                        capture.blocks.append(event)
                        reached = reached or (until is not None and until(event))
                    elif isinstance(event, Gap):
                        capture.gaps.append(event)
                    elif isinstance(event, Reply) and event.kind == "pong" and event.payload in pending:
                        capture.ping_rtts_s.append(now - pending.pop(event.payload))
                    elif (isinstance(event, Reply) and event.kind == "ack" and event.payload == bytes([FrameType.START])
                          and capture.start_ack_s is None):
                        capture.start_ack_s = now - capture.started_at
                if frames:
                    capture.decode_s_per_frame.append(decode_s / len(frames))
            if reached:
                break
            if now - self.last_byte_at > self.stall_timeout_s:
                capture.silent_after_s = self.last_byte_at - capture.started_at
                break
            # At the end, a device quiet for a while is waited on up to the stall limit, so that a hang
            # just before the end is reported rather than missed.
            if now >= end and now - self.last_byte_at < QUIET_AT_END_S:
                break
            if now >= next_ping:
                payload = b"hil%05d" % capture.pings_sent
                pending[payload] = now
                self.send(FrameType.PING, payload)
                capture.pings_sent += 1
                next_ping = now + ping_every_s  # type: ignore[operator]
        capture.ended_at = time.monotonic()
        capture.stats = replace(self.decoder.stats)
        return capture
