"""Streaming ECG conditioning: band-pass plus mains notch as SOS IIR filters with carried state.

The filter is causal, so a streaming device and a batch call compute the same samples when both
start from the same deterministic initial state (the filter's steady state for a constant input
equal to each lead's first sample: the baseline offset does not ring through the high-pass).

Design: 2nd-order Butterworth high-pass (baseline wander), 4th-order Bessel low-pass (muscle and
high-frequency noise; Bessel because its near-constant group delay keeps the QRS shape and
moves every wave by the same few milliseconds), and an IIR notch at the mains frequency.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import bessel, butter, iirnotch, sosfilt, sosfilt_zi, sosfreqz, tf2sos

try:  # the compiled loop inside scipy.signal.sosfilt, run on buffers we own (sosfilt copies input and state first)
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_in_place
except ImportError:  # a scipy that moved it: the public function gives the same samples, a little slower
    _sosfilt_in_place = None

MIN_FS_HZ = 200.0
MAX_FS_HZ = 1000.0
NOTCH_Q = 30.0


def check_fs(fs: float) -> float:
    """``fs`` as float, or ``ValueError`` when outside the supported 200-1000 Hz."""
    fs = float(fs)
    if not np.isfinite(fs) or not MIN_FS_HZ <= fs <= MAX_FS_HZ:
        raise ValueError(f"sampling rate {fs!r} Hz outside the supported range {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz")
    return fs


@lru_cache(maxsize=32)
def design_conditioner(fs: float, highpass_hz: float, lowpass_hz: float, notch_hz: float | None) -> np.ndarray:
    """Second-order sections of the conditioning filter (cached per settings).

    Parameters
    ----------
    fs : float
        Sampling rate, Hz (200-1000).
    highpass_hz, lowpass_hz : float
        Band edges (-3 dB), Hz. ``lowpass_hz`` must be below ``fs / 2``.
    notch_hz : float or None
        Mains frequency to notch (50 or 60), or ``None`` for no notch. Skipped when at or above
        the low-pass edge's Nyquist limit.

    Returns
    -------
    ndarray, shape (n_sections, 6)
    """
    fs = check_fs(fs)
    if not 0.0 < highpass_hz < lowpass_hz < fs / 2.0:
        raise ValueError(f"need 0 < highpass ({highpass_hz}) < lowpass ({lowpass_hz}) < fs/2 ({fs / 2:g}) Hz")
    sos = np.vstack([butter(2, highpass_hz, btype="highpass", fs=fs, output="sos"),
                     design_smoothing(fs, lowpass_hz, notch_hz)])
    sos.setflags(write=False)
    return sos


@lru_cache(maxsize=32)
def design_smoothing(fs: float, lowpass_hz: float, notch_hz: float | None) -> np.ndarray:
    """The conditioner's low-pass and mains notch without its high-pass (second-order sections)."""
    fs = check_fs(fs)
    if not 0.0 < lowpass_hz < fs / 2.0:
        raise ValueError(f"need 0 < lowpass ({lowpass_hz}) < fs/2 ({fs / 2:g}) Hz")
    sections = [bessel(4, lowpass_hz, btype="lowpass", fs=fs, output="sos", norm="mag")]
    if notch_hz is not None and 0.0 < notch_hz < fs / 2.0:
        b, a = iirnotch(notch_hz, NOTCH_Q, fs=fs)
        sections.append(tf2sos(b, a))
    sos = np.vstack(sections)
    sos.setflags(write=False)
    return sos


def sosfilt_rows(sos: np.ndarray, rows: np.ndarray, zi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.sosfilt(sos, rows, axis=-1, zi=zi)``, bit for bit, filtering ``rows`` in place.

    Parameters
    ----------
    sos : ndarray, float64, shape (n_sections, 6)
    rows : ndarray, float64, C-contiguous, shape (n_rows, n)
        Given up by the caller: overwritten with the output (sosfilt would copy it first).
    zi : ndarray, shape (n_sections, n_rows, 2)
        Initial state (not modified).

    Returns
    -------
    out : ndarray
        ``rows`` itself, filtered.
    zf : ndarray, shape (n_sections, n_rows, 2)
        Final state.
    """
    if _sosfilt_in_place is None or rows.dtype != np.float64 or rows.ndim != 2 or not rows.flags.c_contiguous:
        return sosfilt(_writable(sos), rows, axis=-1, zi=zi)
    state = np.array(np.asarray(zi, dtype=np.float64).transpose(1, 0, 2), order="C")  # a copy, sosfilt's layout
    _sosfilt_in_place(_writable(sos), rows, state)
    return rows, state.transpose(1, 0, 2)


def _writable(sos: np.ndarray) -> np.ndarray:
    # The compiled loop takes a writable float64 buffer (it never writes to sos).
    return sos if sos.flags.writeable and sos.dtype == np.float64 else np.array(sos, dtype=np.float64)


@lru_cache(maxsize=64)
def _unit_state(sos_bytes: bytes, n_sections: int) -> np.ndarray:
    """``sosfilt_zi`` of the sections whose float64 bytes are given (cached: a few linear solves per call)."""
    zi = sosfilt_zi(np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6))
    zi.setflags(write=False)
    return zi


def cached_zi(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi(sos)`` (read-only), computed once per design."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    return _unit_state(sos.tobytes(), sos.shape[0])


def smooth(signals: np.ndarray, fs: float, lowpass_hz: float, notch_hz: float | None) -> np.ndarray:
    """Low-pass + notch of the conditioner (same delay), cold-started at each lead's first sample; float64."""
    rows = np.array(signals, dtype=np.float64, order="C")  # ours: filtered in place
    sos = design_smoothing(check_fs(fs), float(lowpass_hz), None if notch_hz is None else float(notch_hz))
    zi = cached_zi(sos)[:, None, :] * rows[None, :, 0, None]
    return sosfilt_rows(sos, rows, zi)[0]


@lru_cache(maxsize=32)
def _unit_zi(fs: float, highpass_hz: float, lowpass_hz: float, notch_hz: float | None) -> np.ndarray:
    return cached_zi(design_conditioner(fs, highpass_hz, lowpass_hz, notch_hz))


def group_delay_s(fs: float, highpass_hz: float, lowpass_hz: float, notch_hz: float | None,
                  at_hz: float = 10.0) -> float:
    """Group delay of the conditioning filter at ``at_hz`` (QRS band), seconds.

    Waves in the conditioned signal appear this much later than in the raw signal; reports in
    raw-record time subtract it.
    """
    sos = design_conditioner(fs, highpass_hz, lowpass_hz, notch_hz)
    freqs = np.array([at_hz - 0.5, at_hz + 0.5])
    _, response = sosfreqz(sos, worN=freqs, fs=fs)
    phase = np.unwrap(np.angle(response))
    return float(-(phase[1] - phase[0]) / (2.0 * np.pi * (freqs[1] - freqs[0])))


class StreamingConditioner:
    """Band-pass + notch over chunks of any size with carried state (chunk-invariant).

    Parameters
    ----------
    fs, highpass_hz, lowpass_hz, notch_hz
        See :func:`design_conditioner`.

    Examples
    --------
    >>> conditioner = StreamingConditioner(500.0, 0.5, 40.0, 50.0)
    >>> out = conditioner.process(chunk)      # chunk: (n_leads, n) mV -> (n_leads, n) float32
    """

    def __init__(self, fs: float, highpass_hz: float, lowpass_hz: float, notch_hz: float | None = 50.0) -> None:
        self.fs = check_fs(fs)
        self.settings = (self.fs, float(highpass_hz), float(lowpass_hz), None if notch_hz is None else float(notch_hz))
        self.sos = design_conditioner(*self.settings).copy()  # sosfilt needs a writable array
        self._zi: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the carried state; the next chunk starts cold again."""
        self._zi = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter one chunk ``(n_leads, n)`` (or ``(n,)`` for one lead); returns float32 of the same shape."""
        chunk = np.array(chunk, dtype=np.float64, order="C")  # ours: filtered in place below
        single = chunk.ndim == 1
        if single:
            chunk = chunk[None, :]
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be (n_leads, n_samples), got shape {chunk.shape}")
        if chunk.shape[1] == 0:
            return np.zeros(chunk.shape, dtype=np.float32)[0 if single else slice(None)]
        if not np.all(np.isfinite(chunk)):
            raise ValueError("chunk contains NaN or inf samples; replace or drop them before filtering")
        if self._zi is None:
            # Deterministic cold start: steady state for a constant input equal to the first sample.
            self._zi = _unit_zi(*self.settings)[:, None, :] * chunk[None, :, 0, None]
        elif self._zi.shape[1] != chunk.shape[0]:
            raise ValueError(f"chunk has {chunk.shape[0]} leads, the stream has {self._zi.shape[1]}")
        out, self._zi = sosfilt_rows(self.sos, chunk, self._zi)
        out = out.astype(np.float32)
        return out[0] if single else out


def condition(signals: np.ndarray, fs: float, highpass_hz: float, lowpass_hz: float,
              notch_hz: float | None = 50.0) -> np.ndarray:
    """Batch conditioning: exactly what a fresh :class:`StreamingConditioner` returns for the whole input."""
    return StreamingConditioner(fs, highpass_hz, lowpass_hz, notch_hz).process(signals)
