"""Device emulator: speaks protocol v1 on a pseudo-terminal or a TCP socket, replaying 8 leads.

:class:`DeviceEmulator` is the device (protocol state, ADC quantization, faults) with no I/O;
:func:`serve` paces it in real time (or ``speed`` times faster) over a :class:`PtyLink` or a
:class:`SocketLink`.

Unplug on a pty: a USB CDC device that is pulled out disappears (its ``/dev/ttyACM*`` node goes
away, open handles fail with EIO) and, when plugged back, reappears as a fresh device that has
lost power (sample counter restarts), usually under the same stable ``/dev/serial/by-id/...``
symlink. The emulator does exactly that: the path it prints is a symlink; on unplug it removes
the symlink and closes the pty (readers get an error), and after the pause it opens a NEW pty and
points the same symlink at it. The device state is reset as after a power cycle.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import tempfile
import threading
import time
import tty
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from firmware_bridge.decoder import FrameScanner
from firmware_bridge.faults import FaultConfig, FaultInjector
from firmware_bridge.internal_signal import internal_test_signal_codes
from firmware_bridge.text_mode import format_text_line
from firmware_bridge.frames import (
    CHANNEL_LEADS, CODE_MAX, CODE_MIN, MAX_PING_PAYLOAD, DeviceInfo, FrameType, NakReason, encode_data_payload,
    encode_frame, encode_info_payload,
)


@dataclass
class EmulatorCounters:
    frames_sent: int = 0
    samples_sent: int = 0
    commands: int = 0
    overruns: int = 0  # frames dropped because the host did not read (device FIFO full)
    unplugs: int = 0


class DeviceEmulator:
    """An ADS1298-class front-end replaying a recording.

    Parameters
    ----------
    signals_mv : ndarray, shape (8, n)
        Millivolts at ``info.sample_rate_hz``, rows in :data:`~firmware_bridge.frames.CHANNEL_LEADS`
        order (I, II, V1..V6).
    info : DeviceInfo
        What the device announces (LSB, channel map, samples per frame).
    loop : bool
        Restart the recording at its end instead of stopping.
    faults : FaultConfig
        Faults to inject.
    seed : int
        Seed of the fault injector.
    text_mode : bool
        Behave like a hobby front-end: stream text lines (microvolts) from power-up, ignore commands.

    Notes
    -----
    After START the sample counter restarts at 0 and sample ``k`` carries recording column
    ``k mod n``, so a host can check what it decoded against the recording. After TEST_SIGNAL 1
    every channel carries the internal test signal instead (:mod:`firmware_bridge.internal_signal`).
    Whole-session faults (``clock_hz``, ``announced_map``, ``silent_after_s``, unplug) are read from
    ``faults`` at construction; the others from ``self.injector``, which a subclass may swap.
    """

    def __init__(self, signals_mv: np.ndarray, *, info: DeviceInfo = DeviceInfo(), loop: bool = False,
                 faults: FaultConfig = FaultConfig(), seed: int = 0, text_mode: bool = False) -> None:
        signals = np.asarray(signals_mv, dtype=np.float64)
        if signals.ndim != 2 or signals.shape[0] != len(CHANNEL_LEADS) or signals.shape[1] == 0:
            raise ValueError(f"signals must be (8, n) millivolts in {CHANNEL_LEADS} order, got shape {signals.shape}")
        if not np.all(np.isfinite(signals)):
            raise ValueError("signals contain NaN or infinite values")
        problems = info.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.info = info
        self.loop = loop
        self.text_mode = text_mode
        by_lead = dict(zip(CHANNEL_LEADS, signals))
        in_device_order = np.stack([by_lead[name] for name in info.channel_map])
        codes = np.round(in_device_order * 1e6 / info.lsb_nv)
        self.codes = np.clip(codes, CODE_MIN, CODE_MAX).astype(np.int64).T  # (n, 8)
        self.injector = FaultInjector(faults, info.channel_map, info.lsb_nv, seed)
        self.clock_hz = float(faults.clock_hz or info.sample_rate_hz)  # the rate it really samples at
        self.silent_after_s = faults.silent_after_s
        self.announced_info = (info if faults.announced_map is None
                               else DeviceInfo(info.device_id, info.firmware_version, info.sample_rate_hz,
                                               info.samples_per_frame, tuple(faults.announced_map), info.lsb_nv))
        self.counters = EmulatorCounters()
        self._scanner = FrameScanner()
        self.power_cycle()

    @property
    def n_samples(self) -> int:
        return int(self.codes.shape[0])

    @property
    def frame_duration_s(self) -> float:
        return self.info.samples_per_frame / self.info.sample_rate_hz

    @property
    def stream_seconds(self) -> float:
        """Seconds of recording sent since the last START."""
        return self.sample_index / self.info.sample_rate_hz

    @property
    def finished(self) -> bool:
        return not self.loop and not self.test_signal and self.sample_index >= self.n_samples

    @property
    def hung(self) -> bool:
        """The stop-answering fault has struck: nothing is sent and commands are ignored."""
        if not self._hung and self.silent_after_s is not None and self.starts and self.stream_seconds >= self.silent_after_s:
            self._hung = True
        return self._hung

    def power_cycle(self) -> None:
        """State after power-up: idle, counters at zero, no partial command bytes."""
        self.streaming = self.text_mode  # a text-mode board streams as soon as it has power
        self.sample_index = 0
        self.seq = 0
        self.starts = 0
        self.test_signal = False
        self._hung = False
        self._scanner.reset()

    def _frame(self, frame_type: FrameType, payload: bytes = b"") -> bytes:
        data = encode_frame(frame_type, self.seq, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        return data

    def handle_bytes(self, data: bytes) -> bytes:
        """Feed host -> device bytes; returns the reply bytes to send."""
        if self.text_mode or self.hung:
            return b""
        out = bytearray()
        for frame in self._scanner.feed(data):
            self.counters.commands += 1
            kind = frame.type
            if kind == FrameType.START and not frame.payload:
                self.streaming, self.sample_index = True, 0
                self.starts += 1
                out += self._frame(FrameType.ACK, bytes([kind]))
            elif kind == FrameType.STOP and not frame.payload:
                self.streaming = False
                out += self._frame(FrameType.ACK, bytes([kind]))
            elif kind == FrameType.PING and len(frame.payload) <= MAX_PING_PAYLOAD:
                out += self._frame(FrameType.PONG, frame.payload)
            elif kind == FrameType.GET_INFO and not frame.payload:
                out += self._frame(FrameType.INFO, encode_info_payload(self.announced_info))
            elif kind == FrameType.SET_RATE and len(frame.payload) == 2:
                rate = struct.unpack("<H", frame.payload)[0]
                if rate == self.info.sample_rate_hz:  # a replayed file has one rate; resampling is the host's job
                    out += self._frame(FrameType.INFO, encode_info_payload(self.announced_info))
                else:
                    out += self._frame(FrameType.NAK, bytes([kind, NakReason.UNSUPPORTED_RATE]))
            elif kind == FrameType.TEST_SIGNAL and frame.payload in (b"\x00", b"\x01"):
                self.test_signal = frame.payload == b"\x01"
                out += self._frame(FrameType.ACK, bytes([kind]))
            elif kind in (FrameType.START, FrameType.STOP, FrameType.PING, FrameType.GET_INFO, FrameType.SET_RATE,
                          FrameType.TEST_SIGNAL):
                out += self._frame(FrameType.NAK, bytes([kind, NakReason.BAD_PAYLOAD]))
            else:
                out += self._frame(FrameType.NAK, bytes([kind, NakReason.UNKNOWN_COMMAND]))
        return bytes(out)

    def next_frame(self) -> bytes:
        """Wire bytes of the next DATA frame (after faults; may be empty when the frame is dropped)."""
        count = self.info.samples_per_frame
        if not self.loop and not self.test_signal:
            count = min(count, self.n_samples - self.sample_index)
        if count <= 0 or self.hung:
            return b""
        if self.test_signal:  # the input mux on the internal source: lead-off bits still reported, nothing railed
            codes = internal_test_signal_codes(self.sample_index, count, self.info.sample_rate_hz, self.info.lsb_nv)
            _, status = self.injector.apply_to_codes(codes)
        else:
            rows = (self.sample_index + np.arange(count)) % self.n_samples
            codes, status = self.injector.apply_to_codes(self.codes[rows])
        if self.text_mode:
            by_lead = dict(zip(self.info.channel_map, (codes * (self.info.lsb_nv * 1e-3)).T))
            values_uv = np.stack([by_lead[name] for name in CHANNEL_LEADS], axis=1)
            self.sample_index += count
            self.counters.frames_sent += 1
            self.counters.samples_sent += count
            return b"".join(format_text_line(row) for row in values_uv)
        frame = self._frame(FrameType.DATA, encode_data_payload(self.sample_index, codes, status))
        self.sample_index += count
        self.counters.frames_sent += 1
        self.counters.samples_sent += count
        return self.injector.apply_to_frame(frame, self.frame_duration_s)


class PtyLink:
    """A pseudo-terminal behind a stable symlink (``link_path``), re-created on replug."""

    def __init__(self, link_path: str | Path | None = None) -> None:
        self._own_dir = link_path is None
        self.link_path = Path(link_path) if link_path else Path(tempfile.mkdtemp(prefix="elvmass-emu-")) / "ttyECG0"
        self.master: int | None = None
        self.slave: int | None = None

    def open(self) -> str:
        master, slave = os.openpty()
        tty.setraw(slave)  # binary-clean before any client configures it
        os.set_blocking(master, False)
        # The emulator holds the slave open so a host closing and reopening the port is not an unplug.
        self.master, self.slave = master, slave
        staging = self.link_path.with_name(self.link_path.name + ".new")
        staging.unlink(missing_ok=True)
        os.symlink(os.ttyname(slave), staging)
        os.replace(staging, self.link_path)  # atomic re-point of the stable path
        return str(self.link_path)

    def read_fds(self) -> list[int]:
        return [] if self.master is None else [self.master]

    def write_fd(self) -> int | None:
        return self.master

    def read(self, fd: int) -> bytes | None:
        try:
            return os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except (BlockingIOError, InterruptedError):
            return 0

    def unplug(self) -> None:
        self.link_path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None

    def replug(self) -> str:
        return self.open()

    def close(self) -> None:
        self.unplug()
        if self._own_dir:
            try:
                self.link_path.parent.rmdir()
            except OSError:
                pass


class SocketLink:
    """A TCP server for ``socket://HOST:PORT`` hosts; one client at a time (a new one replaces it)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.listener: socket.socket | None = None
        self.client: socket.socket | None = None

    def open(self) -> str:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(1)
        self.port = listener.getsockname()[1]  # keep the port across unplugs
        self.listener = listener
        return f"socket://{self.host}:{self.port}"

    def read_fds(self) -> list[socket.socket]:
        return [s for s in (self.listener, self.client) if s is not None]

    def write_fd(self) -> socket.socket | None:
        return self.client

    def read(self, fd: socket.socket) -> bytes | None:
        if fd is self.listener:
            client, _ = self.listener.accept()
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.client is not None:
                self.client.close()
            self.client = client
            return b""
        try:
            data = fd.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:  # host closed the connection
            fd.close()
            self.client = None
            return None
        return data

    def write(self, data: bytes) -> int:
        try:
            return self.client.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return len(data)  # client gone; its read side will report it

    def unplug(self) -> None:
        for s in (self.client, self.listener):
            if s is not None:
                s.close()
        self.client = self.listener = None

    def replug(self) -> str:
        return self.open()

    def close(self) -> None:
        self.unplug()


def serve(emulator: DeviceEmulator, link: PtyLink | SocketLink, *, speed: float = 1.0,
          stop: threading.Event | None = None, on_ready: Callable[[str], None] | None = None,
          on_event: Callable[[str], None] | None = None, max_backlog_bytes: int = 1 << 16) -> EmulatorCounters:
    """Run the emulator over ``link`` until ``stop`` is set.

    Parameters
    ----------
    emulator : DeviceEmulator
    link : PtyLink or SocketLink
    speed : float
        Replay speed (1 = real time, 10 = ten times faster).
    stop : threading.Event, optional
        Set it to end the loop (the link is closed on exit).
    on_ready : callable, optional
        Called with the address hosts connect to (pty symlink or ``socket://``) once it exists.
    on_event : callable, optional
        Called with a short text for notable moments (unplug, replug, end of recording).
    max_backlog_bytes : int
        Bytes queued for a host that is not reading before new frames are dropped (like a FIFO overrun).
    """
    if not speed > 0:
        raise ValueError("speed must be > 0")
    stop = stop or threading.Event()
    notify = on_event or (lambda text: None)
    rate = emulator.clock_hz * speed  # the device's real sample clock (a wrong-rate fault differs from INFO)
    address = link.open()
    if on_ready:
        on_ready(address)
    backlog = bytearray()
    starts_seen = emulator.starts
    start_time = time.monotonic()
    unplug_at = emulator.injector.config.unplug_at_s
    reported_end = False
    try:
        while not stop.is_set():
            now = time.monotonic()
            if emulator.starts != starts_seen:  # a START arrived: pace from now
                starts_seen, start_time, reported_end = emulator.starts, now, False
            timeout = 0.05
            if emulator.hung:
                backlog.clear()  # a hung firmware sends nothing, not even what it had queued
            elif emulator.streaming and not emulator.finished:
                due = (now - start_time) * rate
                while emulator.streaming and not emulator.finished and not emulator.hung and emulator.sample_index < due:
                    if unplug_at is not None and emulator.stream_seconds >= unplug_at:
                        unplug_at = None
                        _unplug(emulator, link, stop, notify)
                        backlog.clear()
                        starts_seen, start_time = emulator.starts, time.monotonic()
                        break
                    frame = emulator.next_frame()
                    if len(backlog) + len(frame) > max_backlog_bytes:
                        emulator.counters.overruns += 1
                    else:
                        backlog += frame
                next_due = start_time + (emulator.sample_index + emulator.info.samples_per_frame) / rate
                timeout = min(timeout, max(0.0, next_due - time.monotonic()))
            elif emulator.finished and not reported_end:
                notify("end of recording")
                reported_end = True
            writer = link.write_fd()
            readable, writable, _ = select.select(link.read_fds(), [writer] if backlog and writer is not None else [],
                                                  [], timeout)
            for fd in readable:
                data = link.read(fd)
                if data is None:  # socket host went away: the device stops streaming
                    emulator.streaming = False
                    backlog.clear()
                elif data:
                    backlog += emulator.handle_bytes(data)
            if writable and backlog:
                del backlog[:link.write(bytes(backlog[:65536]))]
    finally:
        link.close()
    return emulator.counters


def _unplug(emulator: DeviceEmulator, link: PtyLink | SocketLink, stop: threading.Event,
            notify: Callable[[str], None]) -> None:
    pause = emulator.injector.config.unplug_for_s
    notify(f"unplugged at sample {emulator.sample_index} for {pause:g} s")
    link.unplug()
    emulator.counters.unplugs += 1
    stop.wait(pause)
    emulator.power_cycle()
    if not stop.is_set():
        notify(f"plugged back in at {link.replug()}")


def counters_dict(emulator: DeviceEmulator) -> dict[str, int]:
    """Emulator and fault counters as one flat dict (for the end-of-run summary)."""
    return {**asdict(emulator.counters), **asdict(emulator.injector.counters)}
