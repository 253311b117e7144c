"""The stored window's codec: microvolt-exact, bounded in size, legacy rows still read, corruption refused."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.formats.wfdb_reader import read_wfdb
from edge_runtime.runtime.window_codec import (
    LEGACY_ZLIB_CODEC, WINDOW_CODEC, decode_window, encode_window, microvolts_int16,
)


def _expected(window) -> np.ndarray:
    microvolts = np.clip(np.rint(np.asarray(window, dtype=np.float64) * 1000.0), -32768, 32767)
    return microvolts.astype(np.float32) / 1000.0


@pytest.mark.parametrize("window", [
    np.random.default_rng(0).normal(0, 1, (12, 5000)).astype(np.float32),  # steps mostly escaped: raw mode
    np.cumsum(np.random.default_rng(1).normal(0, 0.02, (12, 5000)), axis=1),  # ECG-like steps: delta mode
    np.random.default_rng(2).normal(0, 40.0, (12, 5000)),  # beyond +-32.7 mV: clipped
    np.array([[0.0005, -0.0005, 0.0015, 40.0, -40.0, 32.7675, -32.7685]]),  # rounding half to even, rails
    np.array([[0.0, 0.127, 0.0, -0.128, 0.0, 0.128, -0.001, -0.129] * 10]),  # steps at the escape boundary
    np.zeros((12, 1)),
])
def test_round_trip_is_the_rounded_clipped_microvolts(window):
    back = decode_window(encode_window(window), np.atleast_2d(window).shape[0])
    np.testing.assert_array_equal(back, _expected(np.atleast_2d(window)))


def test_a_real_window_is_delta_coded_and_never_above_two_bytes_a_sample():
    record = read_wfdb(CINC_LVH_RECORD)
    window = np.asarray(record.signals_mv, dtype=np.float64)[:, :5000]
    blob = encode_window(window)
    np.testing.assert_array_equal(decode_window(blob, 12), _expected(window))
    assert blob[0] == 1 and len(blob) < 0.6 * 2 * window.size  # delta mode, < 60 % of plain int16
    noise = np.random.default_rng(3).uniform(-30, 30, (12, 5000))
    assert len(encode_window(noise)) <= 2 * noise.size + 7  # falls back to plain int16


def test_rows_written_with_the_zlib_codec_still_read():
    window = np.cumsum(np.random.default_rng(4).normal(0, 0.05, (12, 500)), axis=1)
    legacy = zlib.compress(microvolts_int16(window).astype("<i2").tobytes(), level=1)
    np.testing.assert_array_equal(decode_window(legacy, 12, LEGACY_ZLIB_CODEC), _expected(window))


def test_corrupt_or_mismatched_blobs_are_refused():
    blob = encode_window(np.cumsum(np.random.default_rng(5).normal(0, 0.05, (12, 500)), axis=1))
    with pytest.raises(ValueError, match="unknown window codec"):
        decode_window(blob, 12, "int16-uV-lz4")
    with pytest.raises(ValueError, match="leads"):
        decode_window(blob, 8)
    for broken in (blob[:3], blob[:-1], blob + b"\0", b"\x07" + blob[1:]):
        with pytest.raises(ValueError):
            decode_window(broken, 12, WINDOW_CODEC)
