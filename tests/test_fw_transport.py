"""Transport against an in-process emulator (socket://), loop://, and failing ports."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import serial

from firmware_bridge.emulator import DeviceEmulator, SocketLink, serve
from firmware_bridge.events import Connected, Disconnected, Gap, InfoReceived, Reconnecting, Samples, Stopped
from firmware_bridge.frames import DeviceInfo
from firmware_bridge.text_mode import format_text_line
from firmware_bridge.transport import SerialTransport, TransportError

LSB_MV = DeviceInfo().lsb_nv * 1e-6


def smooth_signals(n: int = 1500, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / 500.0
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(8, 1))
    return (np.sin(2 * np.pi * 1.3 * t + phases) * np.linspace(0.2, 2.0, 8)[:, None]).astype(np.float32)


class EmulatorThread:
    def __init__(self, emulator: DeviceEmulator, speed: float = 20.0) -> None:
        self.emulator, self.stop = emulator, threading.Event()
        self.ready: list[str] = []
        self.thread = threading.Thread(target=serve, args=(emulator, SocketLink()), daemon=True,
                                       kwargs=dict(speed=speed, stop=self.stop, on_ready=self.ready.append))

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.ready and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.ready[0]

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


def collect(transport: SerialTransport, done, timeout_s: float = 20.0) -> list:
    events, started = [], time.monotonic()
    for event in transport.events():
        events.append(event)
        if done(events) or time.monotonic() - started > timeout_s:
            transport.stop()
    return events


def n_samples(events) -> int:
    return sum(e.n_samples for e in events if isinstance(e, Samples))


def test_socket_stream_equals_replayed_signal_and_stop_is_clean():
    signals = smooth_signals()
    emulator = DeviceEmulator(signals, loop=True)
    with EmulatorThread(emulator) as url:
        transport = SerialTransport(url)
        events = collect(transport, lambda ev: n_samples(ev) >= 2000)
        time.sleep(0.3)
        assert not emulator.streaming, "STOP was not sent on a clean stop"
    assert isinstance(events[0], Connected) and isinstance(events[-1], Stopped)
    assert any(isinstance(e, InfoReceived) for e in events)
    assert not any(isinstance(e, Gap) for e in events)
    for block in (e for e in events if isinstance(e, Samples)):
        columns = (block.first_sample + np.arange(block.n_samples)) % signals.shape[1]
        np.testing.assert_allclose(block.signals_mv, signals[:, columns], atol=LSB_MV * 0.51, rtol=0)


def test_refused_sample_rate_is_a_clear_error():
    with EmulatorThread(DeviceEmulator(smooth_signals())) as url:
        with pytest.raises(TransportError, match="refused sample rate 250"):
            collect(SerialTransport(url, sample_rate_hz=250), lambda ev: False, timeout_s=5)


def test_reconnect_back_off_is_bounded_and_gives_up():
    attempts = []

    def unplugged(url, **kwargs):
        attempts.append(time.monotonic())
        raise serial.SerialException(f"could not open port {url}: No such file or directory")

    transport = SerialTransport("/dev/ttyACM9", open_port=unplugged, backoff_initial_s=0.01, backoff_max_s=0.04,
                                max_attempts=6)
    seen = []
    with pytest.raises(TransportError, match="after 6 attempt"):
        for event in transport.events():
            seen.append(event)
    delays = [e.delay_s for e in seen if isinstance(e, Reconnecting)]
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert len(attempts) == 6


def test_silent_port_fails_handshake_with_reason():
    # loop:// echoes the host's own commands back: frames, but never an INFO reply
    transport = SerialTransport("loop://", handshake_timeout_s=0.4, reconnect=False)
    events = list(transport.events())
    assert isinstance(events[-1], Disconnected) and "no INFO reply" in events[-1].reason


def test_text_mode_over_loop_port():
    port = serial.serial_for_url("loop://", timeout=0.05)
    values = np.arange(80).reshape(10, 8) * 10.0
    port.write(b"".join(format_text_line(row) for row in values))
    transport = SerialTransport("loop://", text_mode=True, text_fs=250.0, open_port=lambda url, **kw: port,
                                stall_timeout_s=0.3, reconnect=False)
    events = list(transport.events())
    blocks = [e for e in events if isinstance(e, Samples)]
    np.testing.assert_allclose(np.concatenate([b.signals_mv for b in blocks], axis=1), values.T / 1000.0, rtol=1e-6)
    assert blocks[0].fs == 250.0
    assert isinstance(events[-1], Disconnected) and "no data" in events[-1].reason
