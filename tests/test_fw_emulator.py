"""Device emulator protocol core and fault injection, without I/O."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.emulator import DeviceEmulator
from firmware_bridge.events import Samples
from firmware_bridge.faults import FaultConfig, FaultInjector
from firmware_bridge.frames import CHANNEL_LEADS, CODE_MAX, DeviceInfo, FrameType, encode_frame
from firmware_bridge.text_mode import TextLineDecoder

LSB_MV = DeviceInfo().lsb_nv * 1e-6


def signals(n: int = 23) -> np.ndarray:
    return np.linspace(-3, 3, 8 * n).reshape(8, n)


def command(kind: FrameType, payload: bytes = b"", seq: int = 0) -> bytes:
    return encode_frame(kind, seq, payload)


def test_commands_and_replies():
    emulator = DeviceEmulator(signals())
    decoder = StreamDecoder()
    replies = decoder.feed(emulator.handle_bytes(
        command(FrameType.GET_INFO) + command(FrameType.PING, b"abc") + command(FrameType.SET_RATE, struct.pack("<H", 500))
        + command(FrameType.SET_RATE, struct.pack("<H", 1000)) + command(FrameType.SET_RATE, b"\x01")
        + command(FrameType.PONG, b"?") + command(FrameType.STOP)))
    kinds = [(type(e).__name__, getattr(e, "kind", None)) for e in replies]
    assert kinds == [("InfoReceived", None), ("Reply", "pong"), ("InfoReceived", None), ("Reply", "nak"),
                     ("Reply", "nak"), ("Reply", "nak"), ("Reply", "ack")]
    assert replies[1].payload == b"abc"
    assert [r.payload for r in replies[3:6]] == [bytes([FrameType.SET_RATE, 3]), bytes([FrameType.SET_RATE, 2]),
                                                 bytes([FrameType.PONG, 1])]
    assert not emulator.streaming


def test_start_streams_record_from_sample_zero_and_stops_at_end_without_loop():
    emulator = DeviceEmulator(signals(23), info=DeviceInfo(samples_per_frame=5))
    decoder = StreamDecoder(DeviceInfo())
    decoder.feed(emulator.handle_bytes(command(FrameType.START)))
    stream = b""
    while not emulator.finished:
        stream += emulator.next_frame()
    blocks = [e for e in decoder.feed(stream) if isinstance(e, Samples)]
    assert [b.n_samples for b in blocks] == [5, 5, 5, 5, 3]
    np.testing.assert_allclose(np.concatenate([b.signals_mv for b in blocks], axis=1), signals(23), atol=LSB_MV * 0.51)


def test_loop_wraps_the_record():
    emulator = DeviceEmulator(signals(7), loop=True, info=DeviceInfo(samples_per_frame=5))
    emulator.handle_bytes(command(FrameType.START))
    blocks = [e for e in StreamDecoder(DeviceInfo()).feed(emulator.next_frame() + emulator.next_frame()) if isinstance(e, Samples)]
    np.testing.assert_allclose(blocks[1].signals_mv, signals(7)[:, [5, 6, 0, 1, 2]], atol=LSB_MV * 0.51)


def test_channel_map_is_honoured():
    info = DeviceInfo(channel_map=tuple(reversed(CHANNEL_LEADS)))
    emulator = DeviceEmulator(signals(), info=info)
    decoder = StreamDecoder()
    decoder.feed(emulator.handle_bytes(command(FrameType.GET_INFO) + command(FrameType.START)))
    (block,) = [e for e in decoder.feed(emulator.next_frame()) if isinstance(e, Samples)]
    np.testing.assert_allclose(block.signals_mv, signals()[:, :5], atol=LSB_MV * 0.51)


def test_text_mode_streams_lines_from_power_up():
    emulator = DeviceEmulator(signals(10), text_mode=True)
    assert emulator.streaming and emulator.handle_bytes(command(FrameType.STOP)) == b""
    events = TextLineDecoder().feed(emulator.next_frame() + emulator.next_frame())
    values = np.concatenate([e.signals_mv for e in events], axis=1)
    np.testing.assert_allclose(values, signals(10), atol=0.0006)  # whole microvolts


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match=r"\(8, n\)"):
        DeviceEmulator(np.zeros((12, 10)))
    with pytest.raises(ValueError, match="NaN"):
        DeviceEmulator(np.full((8, 10), np.nan))
    with pytest.raises(ValueError, match="probability"):
        FaultInjector(FaultConfig(drop_frame_prob=1.5))
    with pytest.raises(ValueError, match="unknown lead"):
        FaultInjector(FaultConfig(saturate=("aVR",)))


def test_signal_faults_noise_saturation_lead_off():
    injector = FaultInjector(FaultConfig(noise_uv=20.0, saturate=("V5",), lead_off=("LL",)), seed=1)
    codes, status = injector.apply_to_codes(np.zeros((20000, 8), dtype=np.int64))
    noise_uv = codes[:, [0, 2, 3, 4, 5, 7]] * injector.lsb_nv / 1000.0
    assert noise_uv.std() == pytest.approx(20.0, rel=0.03)
    assert (codes[:, CHANNEL_LEADS.index("V5")] == CODE_MAX).all()
    assert (codes[:, CHANNEL_LEADS.index("II")] == CODE_MAX).all()  # LL open drives lead II to the rail
    assert (status == 0xC00000 | (1 << 13)).all()  # LOFF_STATP bit 1 = IN2P = LL


def test_wire_faults_rates():
    frame = bytes(152)
    dropper = FaultInjector(FaultConfig(drop_frame_prob=0.2), seed=2)
    assert sum(dropper.apply_to_frame(frame, 0.01) == b"" for _ in range(5000)) == pytest.approx(1000, rel=0.1)
    flipper = FaultInjector(FaultConfig(bit_error_rate=1e-3), seed=3)
    flipped = sum(bin(a ^ b).count("1") for _ in range(500) for a, b in zip(flipper.apply_to_frame(frame, 0.01), frame))
    assert flipped == flipper.counters.bits_flipped == pytest.approx(500 * 152 * 8 * 1e-3, rel=0.15)
    bursts = FaultInjector(FaultConfig(garbage_bursts_per_s=10.0, garbage_max_bytes=8), seed=4)
    out = [bursts.apply_to_frame(frame, 0.01) for _ in range(5000)]
    assert bursts.counters.garbage_bursts == pytest.approx(500, rel=0.15)
    assert sum(len(o) - len(frame) for o in out) == bursts.counters.garbage_bytes
