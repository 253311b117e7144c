"""Frame codec: CRC, DATA/INFO payloads, lead-off bits, sizes; firmware_bridge's import boundary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT
from edge_runtime.record import INDEPENDENT_LEADS
from firmware_bridge.crc import crc32, crc32_reference
from firmware_bridge.frames import (
    CHANNEL_LEADS, CODE_MAX, CODE_MIN, ELECTRODES, MAX_SAMPLES_PER_FRAME, DeviceInfo, FrameError, FrameType,
    data_frame_size, decode_data_payload, decode_info_payload, encode_data_payload, encode_frame,
    encode_info_payload, lead_off_matrix, minimum_uart_baud, status_word,
)


def test_crc_matches_catalogue_check_value_and_reference():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32_reference(b"123456789") == 0xCBF43926


@given(st.binary(max_size=600))
@settings(max_examples=200, deadline=None)
def test_fast_crc_equals_reference(data):
    assert crc32(data) == crc32_reference(data)


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_data_payload_round_trip(data):
    count = data.draw(st.integers(1, MAX_SAMPLES_PER_FRAME))
    codes = np.array(data.draw(st.lists(st.integers(CODE_MIN, CODE_MAX), min_size=8 * count, max_size=8 * count))).reshape(count, 8)
    electrodes = data.draw(st.lists(st.sets(st.sampled_from(ELECTRODES)), min_size=count, max_size=count))
    status = np.array([status_word(e) for e in electrodes])
    first = data.draw(st.integers(0, 2**32 - 1))
    decoded_first, decoded_codes, decoded_status = decode_data_payload(encode_data_payload(first, codes, status))
    assert decoded_first == first
    np.testing.assert_array_equal(decoded_codes, codes)
    np.testing.assert_array_equal(decoded_status, status)
    lead_off = lead_off_matrix(decoded_status)
    for row, expected in zip(lead_off, electrodes):
        assert {e for e, flag in zip(ELECTRODES, row) if flag} == expected


def test_status_word_follows_ads129x_layout():
    assert status_word() == 0xC00000
    assert status_word(["LA"]) == 0xC00000 | (1 << 12)        # LOFF_STATP bit 0 (IN1P)
    assert status_word(["V6"]) == 0xC00000 | (1 << 19)        # LOFF_STATP bit 7 (IN8P)
    assert status_word(["RA"]) == 0xC00000 | (0b11 << 4)      # LOFF_STATN bits 0, 1 (IN1N, IN2N)
    with pytest.raises(FrameError, match="unknown electrode"):
        status_word(["RL"])


def test_encoder_refuses_out_of_range_input():
    with pytest.raises(FrameError, match="24-bit"):
        encode_data_payload(0, np.full((1, 8), CODE_MAX + 1), np.array([status_word()]))
    with pytest.raises(FrameError, match="1..20"):
        encode_data_payload(0, np.zeros((21, 8), dtype=int), np.full(21, status_word()))
    with pytest.raises(FrameError, match="exceeds"):
        encode_frame(FrameType.PING, 0, b"x" * 33)


def test_decoder_side_payload_checks():
    good = encode_data_payload(7, np.zeros((2, 8), dtype=int), np.full(2, status_word()))
    with pytest.raises(FrameError, match="does not hold"):
        decode_data_payload(good[:-1])
    no_marker = bytearray(good)
    no_marker[5] = 0x00  # first status byte without the 1100 marker
    with pytest.raises(FrameError, match="marker"):
        decode_data_payload(bytes(no_marker))


def test_info_round_trip_and_validation():
    info = DeviceInfo("ADS1298-0001", (1, 2, 3), 500, 5, ("V6", "V5", "V4", "V3", "V2", "V1", "II", "I"), 47.68)
    decoded = decode_info_payload(encode_info_payload(info))
    assert decoded.device_id == "ADS1298-0001" and decoded.channel_map == info.channel_map
    assert decoded.lsb_nv == pytest.approx(47.68, rel=1e-6)
    assert list(decoded.channel_order) == [7, 6, 5, 4, 3, 2, 1, 0]
    assert DeviceInfo(channel_map=("I", "II", "III", "V1", "V2", "V3", "V4", "V5")).problems()
    assert DeviceInfo(lsb_nv=0.0).problems()
    with pytest.raises(FrameError):
        decode_info_payload(b"\x00" * 35)


def test_frame_sizes_and_minimum_baud_stated_in_protocol_doc():
    assert data_frame_size(5) == 8 + 5 + 5 * 27 + 4 == 152
    assert minimum_uart_baud(500, 5) == 152_000
    assert minimum_uart_baud(500, 1) == 220_000
    doc = (REPO_ROOT / "firmware_bridge" / "PROTOCOL.md").read_text()
    assert "152,000" in doc and "230400" in doc


def test_channel_leads_are_the_edge_runtimes_independent_leads():
    assert CHANNEL_LEADS == INDEPENDENT_LEADS


def test_firmware_bridge_imports_nothing_of_ours():
    code = ("import importlib, json, pkgutil, sys, firmware_bridge\n"
            "for m in pkgutil.walk_packages(firmware_bridge.__path__, 'firmware_bridge.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    top_level = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not top_level & {"edge_runtime", "training", "quantization", "elvmass", "scipy"}
