"""Streaming conditioning: chunk-invariance, deterministic cold start, cached design, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.formats import read_record
from edge_runtime.signal_core.filters import StreamingConditioner, condition, design_conditioner, group_delay_s


@pytest.fixture(scope="module")
def raw_12() -> np.ndarray:
    return read_record(PTBXL_RECORD).to_standard_12().signals_mv[:, :2500].astype(np.float64)


def stream(signals: np.ndarray, sizes: list[int]) -> np.ndarray:
    conditioner = StreamingConditioner(500.0, 0.5, 40.0, 50.0)
    out, i, k = [], 0, 0
    while i < signals.shape[1]:
        n = sizes[k % len(sizes)]
        out.append(conditioner.process(signals[:, i:i + n]))
        i, k = i + n, k + 1
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("sizes", [[1], [7], [500], [3, 1, 250, 64]])
def test_chunked_output_equals_batch(raw_12, sizes):
    batch = condition(raw_12, 500.0, 0.5, 40.0, 50.0)
    np.testing.assert_array_equal(stream(raw_12, sizes), batch)


def test_constant_offset_gives_no_start_transient():
    # Cold start at the steady state of the first sample: a lead sitting at +300 mV stays at 0.
    signals = np.full((2, 1000), 300.0)
    out = condition(signals, 500.0, 0.5, 40.0, 50.0)
    assert np.max(np.abs(out)) < 1e-3


def test_band_passes_qrs_and_removes_baseline_and_mains():
    fs = 500.0
    t = np.arange(int(20 * fs)) / fs
    def gain(freq: float) -> float:
        out = condition(np.sin(2 * np.pi * freq * t), fs, 0.5, 40.0, 50.0)
        return float(np.std(out[-int(5 * fs):]) / np.std(np.sin(2 * np.pi * freq * t)))
    assert gain(10.0) > 0.95   # QRS band kept
    assert gain(0.05) < 0.05   # baseline wander removed
    assert gain(50.0) < 0.05   # mains notched
    assert gain(120.0) < 0.05  # high-frequency noise removed


def test_design_is_cached_and_delay_is_a_few_ms():
    assert design_conditioner(500.0, 0.5, 40.0, 50.0) is design_conditioner(500.0, 0.5, 40.0, 50.0)
    assert 0.002 < group_delay_s(500.0, 0.5, 40.0, 50.0) < 0.02


def test_clear_errors():
    with pytest.raises(ValueError, match="outside the supported range"):
        StreamingConditioner(100.0, 0.5, 40.0, 50.0)
    with pytest.raises(ValueError, match="outside the supported range"):
        StreamingConditioner(2000.0, 0.5, 40.0, 50.0)
    conditioner = StreamingConditioner(500.0, 0.5, 40.0, 50.0)
    with pytest.raises(ValueError, match="NaN"):
        conditioner.process(np.array([[0.0, np.nan]]))
    conditioner.process(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="leads"):
        conditioner.process(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="highpass"):
        design_conditioner(500.0, 40.0, 0.5, None)
