"""Serial transport: open, handshake, start, read loop, clean stop, reconnect with bounded back-off.

Everything a consumer needs arrives as typed events from :meth:`SerialTransport.events`
(:mod:`firmware_bridge.events`). Ports are opened with ``serial.serial_for_url``, so real ports,
``loop://``, ``socket://HOST:PORT`` and ``rfc2217://`` all work.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Callable, Iterator

import serial

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.events import (
    Connected, Disconnected, Event, Gap, InfoReceived, Reconnecting, Reply, Stopped,
)
from firmware_bridge.frames import FrameType, encode_frame
from firmware_bridge.text_mode import TextLineDecoder


# A read returns when this many bytes arrived or the read timeout passed: large reads keep the
# per-call overhead low (pyserial's socket:// reports at most 1 byte in_waiting), the timeout
# bounds the latency.
READ_CHUNK_BYTES = 4096
READ_TIMEOUT_S = 0.05  # default: stop() takes effect within it; the station's trace updates ~20x a second


def steady_read_bytes(bytes_per_s: float, read_timeout_s: float = READ_TIMEOUT_S) -> int:
    """Bytes one read returns once the stream runs in real time: what arrives within the read timeout.

    A read asks for ``READ_CHUNK_BYTES`` and returns at the timeout with what came (~760 B of 5-sample
    frames at 500 Hz per 50 ms); only a backlog fills it. Benchmarks feed the decoder reads of this size,
    because its cost is per read as well as per frame.
    """
    return max(1, min(READ_CHUNK_BYTES, round(bytes_per_s * read_timeout_s)))


class TransportError(RuntimeError):
    """The device cannot be reached or does not speak the protocol; the message says why."""


class LinkLost(Exception):
    """Internal: the open link stopped working (unplugged, stalled, no handshake reply)."""


class SerialTransport:
    """A serial link to an elvmass (or text-mode) front-end.

    Parameters
    ----------
    url : str
        Port name or pyserial URL (``/dev/ttyACM0``, ``socket://127.0.0.1:5000``, ``loop://``).
    baudrate : int
        UART bit rate (ignored by USB CDC, sockets and ptys); 230400 or more carries 500 Hz.
    text_mode : bool
        Read plain-text lines (no handshake, no lead-off) instead of binary frames.
    text_fs : float
        Sampling rate of a text-mode front-end.
    sample_rate_hz : int, optional
        Ask the device for this rate (SET_RATE) during the handshake.
    read_timeout_s : float
        Longest a single read blocks (how fast :meth:`stop` takes effect).
    handshake_timeout_s : float
        How long to wait for the INFO reply.
    stall_timeout_s : float
        Streaming link silent this long counts as lost.
    reconnect : bool
        Reopen after the link is lost; otherwise :meth:`events` ends after ``Disconnected``.
    backoff_initial_s, backoff_max_s : float
        Delay before reopen attempt ``k`` is ``min(backoff_max_s, backoff_initial_s * 2**(k-1))``.
    max_attempts : int, optional
        Give up (``TransportError``) after this many failed opens in a row; ``None`` = keep trying.
    open_port : callable
        Factory ``(url, **kwargs) -> serial.SerialBase``; ``serial.serial_for_url`` by default.
    """

    def __init__(self, url: str, *, baudrate: int = 921600, text_mode: bool = False, text_fs: float = 500.0,
                 sample_rate_hz: int | None = None, read_timeout_s: float = READ_TIMEOUT_S, handshake_timeout_s: float = 2.0,
                 stall_timeout_s: float = 2.0, reconnect: bool = True, backoff_initial_s: float = 0.1,
                 backoff_max_s: float = 2.0, max_attempts: int | None = None,
                 open_port: Callable[..., serial.SerialBase] = serial.serial_for_url) -> None:
        self.url = url
        self.baudrate = baudrate
        self.text_mode = text_mode
        self.sample_rate_hz = sample_rate_hz
        self.read_timeout_s = read_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self._open_port = open_port
        self.decoder: StreamDecoder | TextLineDecoder = TextLineDecoder(text_fs) if text_mode else StreamDecoder()
        self.reconnects = 0
        self._stop = threading.Event()
        self._seq = 0
        self._port: serial.SerialBase | None = None

    def stop(self) -> None:
        """Ask :meth:`events` to stop streaming, send STOP and close (safe from another thread)."""
        self._stop.set()

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before reopen attempt ``attempt`` (1-based)."""
        return min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))

    def send(self, frame_type: FrameType, payload: bytes = b"") -> int:
        """Send one host -> device command; returns its sequence number."""
        if self._port is None:
            raise TransportError("port is not open")
        seq = self._seq
        self._port.write(encode_frame(frame_type, seq, payload))
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def events(self) -> Iterator[Event]:
        """Connect and yield events until :meth:`stop` (then ``Stopped``) or a final failure.

        Raises
        ------
        TransportError
            When ``max_attempts`` opens fail in a row, or the first connection fails with
            ``reconnect=False``.
        """
        try:
            yield from self._connect_loop()
        finally:  # also when the consumer abandons the iterator: never leave the port open
            self._close()

    def _connect_loop(self) -> Iterator[Event]:
        failures = 0
        while not self._stop.is_set():
            try:
                self._port = self._open_port(self.url, baudrate=self.baudrate, timeout=self.read_timeout_s,
                                             write_timeout=1.0)
            except (serial.SerialException, OSError, ValueError) as error:
                failures += 1
                if not self.reconnect or (self.max_attempts is not None and failures >= self.max_attempts):
                    raise TransportError(f"cannot open {self.url} after {failures} attempt(s): {error}") from error
                delay = self.backoff_delay(failures)
                yield Reconnecting(self.url, failures, delay, str(error))
                self._stop.wait(delay)
                continue
            yield Connected(self.url, failures + 1)
            failures = 0
            try:
                yield from self._session()
                return
            except (serial.SerialException, OSError, LinkLost) as error:
                reason = str(error) or type(error).__name__
                expected = getattr(self.decoder, "expected_sample", None)
                if expected is not None:
                    yield Gap(expected, None, None, f"link lost: {reason}")
                self._close()
                self.decoder.reset()
                yield Disconnected(self.url, reason)
                if not self.reconnect:
                    return
                self.reconnects += 1
        yield Stopped(self.url)

    def _session(self) -> Iterator[Event]:
        port = self._port
        if not self.text_mode:
            yield from self._handshake()
        last_data = time.monotonic()
        while not self._stop.is_set():
            chunk = port.read(max(READ_CHUNK_BYTES, port.in_waiting))
            now = time.monotonic()
            if chunk:
                last_data = now
                yield from self.decoder.feed(chunk)
            elif now - last_data > self.stall_timeout_s:
                raise LinkLost(f"no data for {self.stall_timeout_s:g} s")
        if not self.text_mode:
            try:
                self.send(FrameType.STOP)
            except (serial.SerialException, OSError):
                pass
        self._close()
        yield Stopped(self.url)

    def _handshake(self) -> Iterator[Event]:
        """STOP (quiet a device still streaming), GET_INFO, optional SET_RATE, START."""
        self.send(FrameType.STOP)
        self._await(lambda e: isinstance(e, Reply) and e.kind == "ack", 0.3, resend=None)
        self._port.reset_input_buffer()
        self.decoder.reset()
        info = self._await(lambda e: isinstance(e, InfoReceived), self.handshake_timeout_s, resend=FrameType.GET_INFO)
        if info is None and self._stop.is_set():
            return
        if info is None:
            raise LinkLost(f"no INFO reply within {self.handshake_timeout_s:g} s (not an elvmass device? try text mode)")
        if self.sample_rate_hz is not None and info.info.sample_rate_hz != self.sample_rate_hz:
            self.send(FrameType.SET_RATE, struct.pack("<H", self.sample_rate_hz))
            reply = self._await(lambda e: isinstance(e, InfoReceived) or (isinstance(e, Reply) and e.kind == "nak"),
                                self.handshake_timeout_s, resend=None)
            if not isinstance(reply, InfoReceived) or reply.info.sample_rate_hz != self.sample_rate_hz:
                raise TransportError(f"device refused sample rate {self.sample_rate_hz} Hz")
            info = reply
        yield info
        self.send(FrameType.START)

    def _await(self, wanted: Callable[[Event], bool], timeout_s: float, resend: FrameType | None) -> Event | None:
        """Read until an event satisfies ``wanted``; other events before it are stale and dropped."""
        deadline = time.monotonic() + timeout_s
        next_send = 0.0
        while time.monotonic() < deadline and not self._stop.is_set():
            if resend is not None and time.monotonic() >= next_send:
                self.send(resend)
                next_send = time.monotonic() + 0.25
            chunk = self._port.read(max(READ_CHUNK_BYTES, self._port.in_waiting))
            for event in self.decoder.feed(chunk) if chunk else ():
                if wanted(event):
                    return event
        return None

    def _close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def __enter__(self) -> "SerialTransport":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._close()
