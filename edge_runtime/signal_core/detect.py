"""R-peak detection: a multi-lead Pan-Tompkins detector, streaming with bounded latency.

Method ``"pan-tompkins-multilead"`` (Pan & Tompkins 1985, with the multi-lead energy of
spatial-velocity detectors):

1. per lead, a band-pass differentiator ``c[n] - c[n - 2k]`` on the conditioned signal
   (``k`` = 14 ms: gain peaks near 18 Hz, the QRS band, and is small for P/T waves and baseline);
2. the squared differences are summed over leads (every lead contributes; a lead that shows the
   QRS weakly does not hide it in the others) and integrated over a 120 ms moving window;
3. local maxima of the integrated energy go through the adaptive signal/noise peak levels
   (SPKI/NPKI, threshold NPKI + 0.25 (SPKI - NPKI)), a 200 ms refractory period, T-wave
   discrimination within 360 ms (slope below half the previous QRS slope) and search-back at
   half threshold when no beat came within 1.66 mean RR;
4. the R peak is the maximum of the spatial magnitude ``sum_l c_l[n]^2`` in the QRS region
   behind the energy peak.

Latency: a beat is reported once the integrated-energy maximum that marks it has passed
(about 120 ms + 14 ms after the R peak) except beats found by search-back, reported at most
1.66 x (mean RR, capped at 2 s) = 3.3 s after the previous beat; nothing is reported during
the first 2 s learning phase (those beats are reported when it ends).

Input is the conditioned signal of :mod:`edge_runtime.signal_core.filters`; R-peak indices refer
to it. :func:`detect_r_peaks` is the batch wrapper (same object, one chunk, then flush).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from edge_runtime.signal_core.filters import check_fs, condition, group_delay_s

METHODS = ("pan-tompkins-multilead",)
DIFF_HALF_SPAN_S = 0.014
INTEGRATION_S = 0.120
REFRACTORY_S = 0.200
T_WAVE_WINDOW_S = 0.360
LEARNING_S = 2.0
SEARCHBACK_FACTOR = 1.66
RR_LIMITS_S = (0.2, 2.0)
HISTORY_S = 4.5
SPKI_DECAY = 0.5
PEAK_NEIGHBOURHOOD_S = 0.03
DETECTION_BAND = (0.5, 40.0)


class StreamingRPeakDetector:
    """Chunk-invariant multi-lead R-peak detector.

    Parameters
    ----------
    fs : float
        Sampling rate of the conditioned input, 200-1000 Hz.
    n_leads : int
        Rows of every chunk.

    Notes
    -----
    ``process(chunk)`` returns the R peaks (absolute sample indices from the stream start) that
    became final with this chunk; ``flush()`` returns the rest at the end of the stream.
    """

    def __init__(self, fs: float, n_leads: int) -> None:
        self.fs = check_fs(fs)
        if n_leads < 1:
            raise ValueError("need at least one lead")
        self.n_leads = int(n_leads)
        self.k = max(1, int(round(DIFF_HALF_SPAN_S * self.fs)))
        self.w = max(2, int(round(INTEGRATION_S * self.fs)))
        self.refractory = int(round(REFRACTORY_S * self.fs))
        self.m = max(1, int(round(PEAK_NEIGHBOURHOOD_S * self.fs)))
        self.t_window = int(round(T_WAVE_WINDOW_S * self.fs))
        self.learn_n = int(round(LEARNING_S * self.fs))
        self.history_n = int(round(HISTORY_S * self.fs))
        self._mwi_b = np.full(self.w, 1.0 / self.w)
        self._diff_tail: np.ndarray | None = None  # last 2k conditioned samples per lead
        self._mwi_zi = np.zeros(self.w - 1)
        # history buffers (absolute index of element 0 = _start)
        self._start = 0
        self._mwi = np.zeros(0)
        self._energy = np.zeros(0)
        self._magnitude = np.zeros(0)
        self._n_seen = 0
        self._next_scan = 1
        self._initialized = False
        self._pending: list[tuple[int, float, float]] = []  # candidates before learning ends
        self.spki = 0.0
        self.npki = 0.0
        self._last_qrs: int | None = None  # energy-peak index of the last QRS
        self._last_slope = 0.0
        self._rr: list[int] = []
        self._noise_peaks: list[tuple[int, float, float]] = []
        self._due: int | None = None  # search-back time
        self._provisional: int | None = None  # R peak not yet final (refractory period running)
        self._last_value = 0.0
        self._undo: tuple = ()

    # ------------------------------------------------------------------ features
    def _features(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._diff_tail is None:
            self._diff_tail = np.repeat(chunk[:, :1], 2 * self.k, axis=1)
        joined = np.concatenate([self._diff_tail, chunk], axis=1)
        diff = joined[:, 2 * self.k:] - joined[:, :-2 * self.k]
        self._diff_tail = joined[:, -2 * self.k:]
        energy = np.einsum("ln,ln->n", diff, diff)
        mwi, self._mwi_zi = lfilter(self._mwi_b, [1.0], energy, zi=self._mwi_zi)
        magnitude = np.einsum("ln,ln->n", chunk, chunk)
        return energy, mwi, magnitude

    def _at(self, buffer: np.ndarray, lo: int, hi: int) -> np.ndarray:
        lo = max(lo, self._start)
        return buffer[lo - self._start:max(hi - self._start, lo - self._start)]

    # ------------------------------------------------------------------ thresholds
    @property
    def threshold(self) -> float:
        return self.npki + 0.25 * (self.spki - self.npki)

    def _rr_mean(self) -> float:
        if not self._rr:
            return self.fs  # 60 bpm until two beats are known
        return float(np.mean(self._rr[-8:]))

    def _emit(self, out: list[int]) -> None:
        if self._provisional is not None:
            out.append(self._provisional)
            self._provisional = None

    def _accept(self, peak: int, value: float, slope: float, searchback: bool, out: list[int]) -> None:
        """Take a QRS; it stays provisional for the refractory period (a larger peak there replaces it)."""
        self._emit(out)
        self._undo = (self.spki, list(self._rr), self._last_qrs, self._last_slope)
        self._last_value = value
        weight = 0.25 if searchback else 0.125
        self.spki = weight * value + (1.0 - weight) * self.spki
        if self._last_qrs is not None:
            rr = peak - self._last_qrs
            lo, hi = (int(limit * self.fs) for limit in RR_LIMITS_S)
            self._rr.append(min(max(rr, lo), hi))
            del self._rr[:-8]
        self._last_qrs = peak
        self._last_slope = slope
        self._due = None
        self._noise_peaks.clear()
        region = self._at(self._magnitude, peak - self.w - 2 * self.k, peak + 1)
        first = max(peak - self.w - 2 * self.k, self._start)
        self._provisional = first + int(np.argmax(region)) if region.size else peak

    def _replace(self, peak: int, value: float, slope: float) -> None:
        self.spki, self._rr, self._last_qrs, self._last_slope = self._undo
        self._provisional = None
        self._accept(peak, value, slope, searchback=False, out=[])

    def _searchback_due(self) -> int | None:
        if self._last_qrs is None:
            return None
        if self._due is None:
            self._due = self._last_qrs + int(SEARCHBACK_FACTOR * min(self._rr_mean(), RR_LIMITS_S[1] * self.fs))
        return self._due

    def _searchback(self, until: int, out: list[int]) -> None:
        """Pan-Tompkins search-back; when it finds nothing, the signal level decays (amplitude drops)."""
        due = self._searchback_due()
        while due is not None and due <= until:
            eligible = [c for c in self._noise_peaks
                        if c[0] <= due and c[1] > 0.5 * self.threshold and not self._is_t_wave(c[0], c[2])]
            if not eligible:
                # No beat at half threshold for 1.66 RR: the QRS amplitude must have dropped.
                self.spki = self.npki + SPKI_DECAY * (self.spki - self.npki)
                self._due = due + int(0.5 * min(self._rr_mean(), RR_LIMITS_S[1] * self.fs))
                due = self._due
                continue
            best = max(eligible, key=lambda c: c[1])
            remaining = [c for c in self._noise_peaks if c[0] > best[0]]
            self._accept(*best, searchback=True, out=out)
            self._noise_peaks = remaining
            due = self._searchback_due()

    def _is_t_wave(self, peak: int, slope: float) -> bool:
        return (self._last_qrs is not None and peak - self._last_qrs < self.t_window
                and slope < 0.5 * self._last_slope)

    def _classify(self, peak: int, value: float, slope: float, out: list[int]) -> None:
        self._searchback(peak - 1, out)
        if self._last_qrs is not None and peak - self._last_qrs < self.refractory:
            if self._provisional is not None and value > self._last_value:
                self._replace(peak, value, slope)
            return
        self._emit(out)
        if value > self.threshold:
            if not self._is_t_wave(peak, slope):
                self._accept(peak, value, slope, searchback=False, out=out)
                return
        self.npki = 0.125 * value + 0.875 * self.npki
        self._noise_peaks.append((peak, value, slope))

    def _initialize(self) -> None:
        learning = self._at(self._mwi, 0, self.learn_n)
        self.spki = float(learning.max()) / 3.0 if learning.size else 0.0
        self.npki = float(learning.mean()) / 2.0 if learning.size else 0.0
        self._initialized = True

    # ------------------------------------------------------------------ public
    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Feed conditioned samples ``(n_leads, n)``; returns R peaks that became final."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim == 1:
            chunk = chunk[None, :]
        if chunk.ndim != 2 or chunk.shape[0] != self.n_leads:
            raise ValueError(f"chunk must be ({self.n_leads}, n_samples), got shape {chunk.shape}")
        if chunk.shape[1] == 0:
            return np.zeros(0, dtype=np.int64)
        if not np.all(np.isfinite(chunk)):
            raise ValueError("chunk contains NaN or inf samples")
        energy, mwi, magnitude = self._features(chunk)
        self._mwi = np.concatenate([self._mwi, mwi])
        self._energy = np.concatenate([self._energy, energy])
        self._magnitude = np.concatenate([self._magnitude, magnitude])
        self._n_seen += chunk.shape[1]
        out: list[int] = []
        self._scan(self._n_seen - 1, out)
        self._trim()
        return np.asarray(out, dtype=np.int64)

    def flush(self) -> np.ndarray:
        """End of stream: decide what is still pending; returns those R peaks."""
        out: list[int] = []
        self._scan(self._n_seen - 1, out, final=True)
        return np.asarray(out, dtype=np.int64)

    def _padded(self, buffer: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``buffer[lo:hi]`` in absolute indices, -inf outside what was seen."""
        out = np.full(hi - lo, -np.inf)
        a, b = max(lo, self._start), min(hi, self._n_seen)
        if b > a:
            out[a - lo:b - lo] = buffer[a - self._start:b - self._start]
        return out

    def _scan(self, complete: int, out: list[int], final: bool = False) -> None:
        # A candidate is a rising local maximum of the integrated energy that is also the largest
        # value within +-PEAK_NEIGHBOURHOOD_S: it is decidable once that much signal follows it.
        lo = self._next_scan
        hi = complete + 1 if final else complete + 1 - self.m
        if hi > lo:
            seg = self._padded(self._mwi, lo - self.m, hi + self.m)
            centre = seg[self.m:-self.m]
            largest = sliding_window_view(seg, 2 * self.m + 1).max(axis=1)
            is_peak = (centre > seg[self.m - 1:-self.m - 1]) & (centre >= largest)
            peaks = lo + np.flatnonzero(is_peak)
            if peaks.size:
                index = peaks[:, None] + np.arange(-self.w, 1)[None, :]
                slopes = self._padded(self._energy, int(index.min()), int(index.max()) + 1)[index - index.min()]
                for peak, value, slope in zip(peaks.tolist(), centre[peaks - lo].tolist(), slopes.max(axis=1).tolist()):
                    self._pending.append((peak, value, slope))
            self._next_scan = hi
        if not self._initialized:
            if self._n_seen < self.learn_n and not final:
                return
            self._initialize()
        pending, self._pending = self._pending, []
        for peak, value, slope in pending:
            self._classify(peak, value, slope, out)
        self._searchback(complete if not final else self._n_seen, out)
        if final or (self._last_qrs is not None and complete - self._last_qrs >= self.refractory):
            self._emit(out)

    def _trim(self) -> None:
        drop = self._n_seen - self.history_n - self._start
        if drop > 0 and self._initialized:
            self._mwi = self._mwi[drop:]
            self._energy = self._energy[drop:]
            self._magnitude = self._magnitude[drop:]
            self._start += drop


def detect_r_peaks(signals: np.ndarray, fs: float, *, method: str = "pan-tompkins-multilead",
                   conditioned: bool = False, notch_hz: float | None = 50.0) -> np.ndarray:
    """R peaks of a whole recording (batch wrapper of :class:`StreamingRPeakDetector`).

    Parameters
    ----------
    signals : ndarray, shape (n_leads, n) or (n,)
        ECG in mV, any number of leads.
    fs : float
        Sampling rate, 200-1000 Hz.
    method : str
        ``"pan-tompkins-multilead"`` (the only one).
    conditioned : bool
        True when ``signals`` already went through the conditioning filter; the peaks then index
        it directly. Otherwise the signals are conditioned here (0.5-40 Hz + notch) and the peaks
        are shifted back by the filter's group delay so they index the raw input.
    notch_hz : float or None
        Mains notch used when conditioning here.

    Returns
    -------
    ndarray of int64, sorted sample indices.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim == 1:
        signals = signals[None, :]
    fs = check_fs(fs)
    shift = 0
    if not conditioned:
        signals = condition(signals, fs, *DETECTION_BAND, notch_hz)
        shift = int(round(group_delay_s(fs, *DETECTION_BAND, notch_hz) * fs))
    detector = StreamingRPeakDetector(fs, signals.shape[0])
    peaks = np.concatenate([detector.process(signals), detector.flush()])
    peaks = np.unique(peaks) - shift
    return peaks[(peaks >= 0) & (peaks < signals.shape[1])]
