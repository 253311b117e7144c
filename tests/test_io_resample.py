"""Resampling to the model rate keeps a sinusoid's frequency and amplitude."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.record import EcgRecord
from edge_runtime.resample import resample_record, resample_signals


def _tone(fs: float, freq_hz: float, seconds: float = 10.0, amplitude_mv: float = 1.3) -> np.ndarray:
    t = np.arange(int(round(seconds * fs))) / fs
    return (amplitude_mv * np.sin(2 * np.pi * freq_hz * t))[None, :]


def _dominant_frequency_and_amplitude(signal: np.ndarray, fs: float) -> tuple[float, float]:
    window = np.hanning(signal.size)
    spectrum = np.abs(np.fft.rfft(signal * window))
    peak = int(np.argmax(spectrum))
    # Parabolic interpolation of the peak bin, then the Hann window's coherent gain (0.5) undone.
    a, b, c = spectrum[peak - 1 : peak + 2]
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    freq = (peak + offset) * fs / signal.size
    middle = signal[signal.size // 10 : -signal.size // 10]  # away from the filter's edge transients
    return freq, float((middle.max() - middle.min()) / 2)


@pytest.mark.parametrize("fs_in", [1000.0, 360.0, 200.0, 257.0], ids=["ptb-1000", "mitdb-360", "cpsc-200", "odd-257"])
@pytest.mark.parametrize("freq_hz", [1.2, 17.0, 40.0])
def test_sinusoid_keeps_frequency_and_amplitude(fs_in, freq_hz):
    out = resample_signals(_tone(fs_in, freq_hz), fs_in, 500.0)
    assert out.dtype == np.float32 and out.shape == (1, 5000)
    freq, amplitude = _dominant_frequency_and_amplitude(out[0].astype(np.float64), 500.0)
    assert freq == pytest.approx(freq_hz, rel=2e-3)
    assert amplitude == pytest.approx(1.3, rel=0.01)


def test_downsampling_removes_content_above_the_new_nyquist():
    # 300 Hz at 1000 Hz would alias to 200 Hz at 500 Hz without the anti-aliasing filter.
    out = resample_signals(_tone(1000.0, 300.0), 1000.0, 500.0)
    assert np.abs(out[0, 500:-500]).max() < 0.02


def test_resample_record_keeps_context_and_is_identity_at_target():
    record = EcgRecord(_tone(360.0, 5.0), 360.0, ("MLII",), measurements={"qrs_ms": 90.0}, source="x", format="wfdb")
    out = resample_record(record, 500.0)
    assert out.fs == 500.0 and out.n_samples == 5000 and out.lead_names == ("MLII",) and out.measurements == {"qrs_ms": 90.0}
    assert resample_record(out, 500.0) is out
    with pytest.raises(ValueError):
        resample_signals(out.signals_mv, 0.0, 500.0)
