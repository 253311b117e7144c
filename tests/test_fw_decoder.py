"""Streaming decoder: chunking, resync, CRC rejection, gaps, lead-off, millivolts; text mode; fuzz."""

from __future__ import annotations

import numpy as np
import pytest

from firmware_bridge.decoder import StreamDecoder, _PAYLOAD_LIMIT
from firmware_bridge.events import Gap, InfoReceived, LeadOffChanged, Reply, Samples
from firmware_bridge.frames import FrameError, PROTOCOL_VERSION, decode_data_payload, decode_data_payloads, header_problem
from firmware_bridge.frames import (
    CHANNEL_LEADS, DeviceInfo, FrameType, encode_data_payload, encode_frame, encode_info_payload, status_word,
)
from evaluation.fuzz_decoder import run_fuzz
from firmware_bridge.text_mode import TextLineDecoder, format_text_line

INFO = DeviceInfo(samples_per_frame=5)
LSB_MV = INFO.lsb_nv * 1e-6


def data_frame(seq: int, first: int, codes: np.ndarray, lead_off=()) -> bytes:
    status = np.full(len(codes), status_word(lead_off))
    return encode_frame(FrameType.DATA, seq, encode_data_payload(first, codes, status))


def samples_of(events) -> list[Samples]:
    return [e for e in events if isinstance(e, Samples)]


def stream_of(n_frames: int, rng: np.random.Generator, start_seq: int = 0) -> tuple[bytes, np.ndarray]:
    codes = rng.integers(-2**20, 2**20, size=(n_frames * 5, 8))
    frames = b"".join(data_frame(start_seq + k, 5 * k, codes[5 * k:5 * k + 5]) for k in range(n_frames))
    return frames, codes


def test_millivolts_use_announced_lsb_and_channel_map():
    info = DeviceInfo(channel_map=("V6", "V5", "V4", "V3", "V2", "V1", "II", "I"), lsb_nv=1000.0)  # 1 code = 1 uV
    codes = np.arange(1, 9)[None, :] * 1000  # device channel k carries (k+1) mV
    events = StreamDecoder().feed(encode_frame(FrameType.INFO, 0, encode_info_payload(info)) + data_frame(1, 0, codes))
    assert isinstance(events[0], InfoReceived)
    (block,) = samples_of(events)
    # rows come out as I, II, V1..V6 whatever the wiring: I is device channel 8 (8 mV), V6 channel 1 (1 mV)
    np.testing.assert_allclose(block.signals_mv[:, 0], [8, 7, 6, 5, 4, 3, 2, 1], rtol=1e-6)
    assert block.leads == CHANNEL_LEADS and block.signals_mv.dtype == np.float32


def test_byte_by_byte_equals_one_chunk():
    stream, codes = stream_of(20, np.random.default_rng(1))
    one = samples_of(StreamDecoder(INFO).feed(stream))
    decoder = StreamDecoder(INFO)
    split = [e for i in range(len(stream)) for e in samples_of(decoder.feed(stream[i:i + 1]))]
    assert len(one) == len(split) == 20
    joined = np.concatenate([s.signals_mv for s in split], axis=1)
    np.testing.assert_array_equal(joined, np.concatenate([s.signals_mv for s in one], axis=1))
    np.testing.assert_allclose(joined, codes.T * LSB_MV, atol=LSB_MV / 2)


def test_resyncs_after_garbage_and_counts_crc_failures():
    rng = np.random.default_rng(2)
    stream, _ = stream_of(3, rng)
    frame_len = len(stream) // 3
    corrupted = bytearray(stream[frame_len:2 * frame_len])
    corrupted[40] ^= 0x10
    garbage = b"\xa5\x5a\x01\x01\x00\x00\x20\x00" + rng.integers(0, 256, 50, dtype=np.uint8).tobytes()  # false sync
    decoder = StreamDecoder(INFO)
    events = decoder.feed(garbage + stream[:frame_len] + bytes(corrupted) + stream[2 * frame_len:])
    blocks = samples_of(events)
    assert [b.first_sample for b in blocks] == [0, 10]  # the frame right after garbage decodes
    gaps = [e for e in events if isinstance(e, Gap)]
    assert len(gaps) == 1 and gaps[0].expected_sample == 5 and gaps[0].missing_samples == 5
    assert decoder.stats.crc_errors >= 2 and decoder.stats.frames_missed == 1
    assert decoder.stats.bytes_discarded >= len(garbage) + frame_len


def test_frame_cut_short_whose_crc_is_completed_by_the_next_sync_loses_no_frame():
    # A frame missing its last byte, when the next frame's first byte (A5) equals that byte,
    # still passes its CRC with every checked byte intact; the next frame starts inside it.
    codes = np.zeros((5, 8), dtype=int)
    first = next(k for k in range(0, 100_000, 5) if data_frame(0, k, codes)[-1] == 0xA5)
    cut = data_frame(0, first, codes)[:-1]
    stream = cut + data_frame(1, first + 5, codes) + data_frame(2, first + 10, codes)
    decoder = StreamDecoder(INFO)
    events = [e for i in range(0, len(stream), 7) for e in decoder.feed(stream[i:i + 7])]
    assert [b.first_sample for b in samples_of(events)] == [first, first + 5, first + 10]
    assert decoder.stats.bytes_discarded == 0


def test_gap_is_reported_never_spliced_and_restart_detected():
    rng = np.random.default_rng(3)
    codes = rng.integers(-1000, 1000, size=(5, 8))
    decoder = StreamDecoder(INFO)
    events = decoder.feed(data_frame(0, 100, codes) + data_frame(3, 120, codes) + data_frame(4, 0, codes))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Samples", "Gap", "Samples", "Gap", "Samples"]
    assert events[1].missing_samples == 15 and events[1].resumed_sample == 120
    assert events[3].missing_samples is None and "restarted" in events[3].reason
    assert decoder.expected_sample == 5


def test_counter_wrap_is_continuous():
    codes = np.zeros((5, 8), dtype=int)
    events = StreamDecoder(INFO).feed(data_frame(0, 2**32 - 5, codes) + data_frame(1, 0, codes))
    assert [type(e).__name__ for e in events] == ["Samples", "Samples"]


def test_data_before_info_is_dropped_and_counted():
    decoder = StreamDecoder()
    codes = np.zeros((5, 8), dtype=int)
    assert decoder.feed(data_frame(0, 0, codes)) == []
    assert decoder.stats.data_without_info == 1
    events = decoder.feed(encode_frame(FrameType.INFO, 1, encode_info_payload(INFO)) + data_frame(2, 5, codes))
    assert [type(e).__name__ for e in events] == ["InfoReceived", "Samples"]


def test_lead_off_per_electrode_changes():
    codes = np.zeros((5, 8), dtype=int)
    status = np.array([status_word()] * 2 + [status_word(["V2", "LA"])] * 3)
    frames = (encode_frame(FrameType.DATA, 0, encode_data_payload(0, codes, status))
              + data_frame(1, 5, codes, ["V2"]) + data_frame(2, 10, codes))
    events = StreamDecoder(INFO).feed(frames)
    changes = [e for e in events if isinstance(e, LeadOffChanged)]
    assert [(c.sample, set(c.electrodes)) for c in changes] == [(2, {"V2", "LA"}), (5, {"V2"}), (10, set())]
    assert changes[1].reattached == {"LA"} and changes[0].newly_off == {"V2", "LA"}
    first = samples_of(events)[0]
    assert first.lead_off.shape == (5, 9) and first.lead_off[2:, 1].all() and not first.lead_off[:2].any()


def test_replies_are_surfaced():
    events = StreamDecoder().feed(encode_frame(FrameType.PONG, 9, b"hi") + encode_frame(FrameType.NAK, 10, b"\x13\x03"))
    assert events == [Reply("pong", 9, b"hi"), Reply("nak", 10, b"\x13\x03")]


def test_text_mode_lines_chunks_and_malformed_lines():
    values = np.array([[100, -200, 300, 400, 500, 600, 700, 800], [1, 2, 3, 4, 5, 6, 7, 8]])
    stream = b"# hobby ECG v0.1\r\n" + format_text_line(values[0]) + b"12,abc,3\n" + format_text_line(values[1]).replace(b"\n", b"\r\n")
    decoder = TextLineDecoder(fs=250.0)
    events = [e for i in range(0, len(stream), 3) for e in decoder.feed(stream[i:i + 3])]
    assert [type(e).__name__ for e in events] == ["Samples", "Gap", "Samples"]
    np.testing.assert_allclose(events[0].signals_mv[:, 0], values[0] / 1000.0)
    assert events[2].first_sample == 2 and events[2].fs == 250.0
    assert decoder.stats.lines_rejected == 1 and decoder.stats.comments == 1
    assert TextLineDecoder().feed(b"1,2,3,4,5,6,7,nan\n")[0].reason == "malformed text line"


def test_text_mode_endless_line_without_newline_is_rejected():
    decoder = TextLineDecoder()
    events = decoder.feed(b"1" * 1000)
    assert len(events) == 1 and isinstance(events[0], Gap)


def test_fuzz_small_all_corruption_kinds():
    report = run_fuzz(2_000, seed=11, samples_per_frame=1, max_chunk=64)
    assert set(report.by_corruption.values()) == {400}
    assert report.exceptions == report.corrupted_accepted == report.intact_lost == report.intact_altered == 0
    assert report.gaps_reported == report.gaps_expected == 2_000


@pytest.mark.slow
def test_fuzz_100k_corrupted_frames():
    report = run_fuzz(100_000, seed=5)
    assert report.corrupted_frames == 100_000
    assert report.exceptions == 0
    assert report.corrupted_accepted == 0
    assert report.intact_lost == 0, "an intact frame after a corruption was not decoded (resync > 1 frame)"
    assert report.intact_altered == 0
    assert report.gaps_reported == report.gaps_expected


def _flatten(events) -> list[tuple]:
    """Events as comparable tuples, with Samples split into per-sample columns (granularity-free)."""
    flat = []
    for event in events:
        if isinstance(event, Samples):
            for column in range(event.n_samples):
                flat.append(("sample", (event.first_sample + column) % 2**32, event.signals_mv[:, column].tobytes(),
                             event.lead_off[column].tobytes()))
        else:
            flat.append((type(event).__name__, repr(event)))
    return flat


def test_coalesced_blocks_carry_the_same_samples_gaps_and_lead_off_as_per_frame():
    rng = np.random.default_rng(21)
    codes = rng.integers(-2**20, 2**20, size=(60 * 5, 8))
    frames = [data_frame(k, 5 * k + (40 if k >= 30 else 0), codes[5 * k:5 * k + 5],
                         lead_off=("V3",) if 12 <= k < 15 else ()) for k in range(60)]
    frames[20] = frames[20][:30] + bytes([frames[20][30] ^ 0xFF]) + frames[20][31:]  # CRC failure -> gap
    stream = b"".join(frames)
    per_frame, coalesced = StreamDecoder(INFO), StreamDecoder(INFO, coalesce=True)
    a = [e for i in range(0, len(stream), 333) for e in per_frame.feed(stream[i:i + 333])]
    b = [e for i in range(0, len(stream), 333) for e in coalesced.feed(stream[i:i + 333])]
    # Samples and gaps in the same order; lead-off changes (each stamped with its sample number)
    # come after their block instead of after their frame, so they are compared as a sequence of their own.
    changes = lambda events: [e for e in events if isinstance(e, LeadOffChanged)]  # noqa: E731
    others = lambda events: [e for e in events if not isinstance(e, LeadOffChanged)]  # noqa: E731
    assert _flatten(others(a)) == _flatten(others(b))
    assert changes(a) == changes(b) and [e.sample for e in changes(a)] == [60, 75]
    assert len(samples_of(b)) < len(samples_of(a)) == 59
    # a block never spans a gap: each block's counters are consecutive and a Gap separates blocks
    kinds = [type(e).__name__ for e in b if not isinstance(e, LeadOffChanged)]
    assert kinds.count("Gap") == 2 and "Samples" in kinds
    assert per_frame.stats.samples == coalesced.stats.samples == 59 * 5


def test_batch_payload_decode_equals_single_payload_decode():
    rng = np.random.default_rng(3)
    payloads = []
    for k in range(40):
        n = int(rng.integers(1, 21))
        payload = encode_data_payload(k * 100, rng.integers(-2**23, 2**23, size=(n, 8)),
                                      np.full(n, status_word(("LA",) if k % 7 == 0 else ())))
        if k % 9 == 4:
            payload = payload[:-1]  # length does not match the count
        elif k % 9 == 5:
            payload = payload[:5] + b"\x00" + payload[6:]  # status word without the ADS marker
        payloads.append(payload)
    payloads.append(b"\x01\x02")  # shorter than the prefix
    extremes = np.array([[-2**23, 2**23 - 1, -1, 0, 1, -2**22, 2**22, 0x7FFF]] * 2)  # sign extension's edges
    payloads.append(encode_data_payload(9000, extremes, np.array([status_word(), status_word(("RA", "V6"), gpio=15)])))
    accepted, firsts, counts, codes, status = decode_data_payloads(payloads)
    expected = []
    for index, payload in enumerate(payloads):
        try:
            expected.append((index, *decode_data_payload(payload)))
        except FrameError:
            pass
    assert accepted == [e[0] for e in expected] and firsts == [e[1] for e in expected]
    assert counts == [len(e[2]) for e in expected] and len(expected) < len(payloads) - 3
    np.testing.assert_array_equal(codes, np.concatenate([e[2] for e in expected]))
    np.testing.assert_array_equal(status, np.concatenate([e[3] for e in expected]))
    np.testing.assert_array_equal(codes[-2:], extremes)
    assert codes.dtype == np.int32 and status.dtype == np.int64


def test_scanner_header_check_equals_header_problem():
    for version in (0, PROTOCOL_VERSION, 2):
        for frame_type in range(256):
            for length in (0, 1, 2, 32, 36, 37, 545, 546, 65535):
                rejected = version != PROTOCOL_VERSION or length > _PAYLOAD_LIMIT[frame_type]
                assert rejected == (header_problem(frame_type, version, length) is not None)
