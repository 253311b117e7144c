"""Raw 8-channel stream -> consecutive 10 s 12-lead windows, bridging only short gaps.

The front-end measures I, II, V1-V6 (``INDEPENDENT_LEADS``); the other four limb leads are derived
with :func:`edge_runtime.record.derive_limb_leads` when a window is complete. Windows do not
overlap. A short gap of known length (a few lost frames, :data:`MAX_FILL_S`) is filled by linear
interpolation and marked (``Window.gap_mask``), so the window and the sample clock go on and the
analysis can leave the beats touching it out; a longer gap, or one of unknown length (unplug), throws
the partial window away, so no window ever joins samples across a real discontinuity. Lead-off reported by the front-end inside a window is carried as
a ``lead_off`` flag on that window (the estimate then gives no number); the buffered samples are
the raw millivolts, exactly what the offline analysis of a file would see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.frames import ELECTRODES
from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, standard_from_independent
from edge_runtime.flags import Flag

WINDOW_S = 10.0
MAX_FILL_S = 0.06  # a gap up to this long (6 frames of 5 samples at 500 Hz) is bridged, not fatal
_ELECTRODE_ORDER = {name: i for i, name in enumerate(("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6", "I", "II"))}


@dataclass
class Window:
    """One complete raw 10 s window in standard 12-lead order."""

    signals_mv: np.ndarray  # (12, n) float32 mV, STANDARD_LEADS order
    fs: float
    start_sample: int  # index of the first sample in the stream (counting gaps' missing samples)
    flags: list[Flag] = field(default_factory=list)
    lead_names: tuple[str, ...] = STANDARD_LEADS
    lead_off: frozenset[str] = frozenset()  # electrodes the front-end reported off during the window
    gap_mask: np.ndarray | None = None  # (n,) True where samples were lost and interpolated; None = no gap
    n_gaps: int = 0  # short gaps bridged inside this window

    @property
    def n_filled(self) -> int:
        """Samples of this window that were interpolated over a gap."""
        return 0 if self.gap_mask is None else int(self.gap_mask.sum())

    @property
    def leads_off(self) -> frozenset[str]:
        """Leads an off electrode corrupts: its own V lead; any limb electrode spoils every lead
        (the limb leads directly, the V leads through Wilson's central terminal)."""
        if self.lead_off & {"RA", "LA", "LL"}:
            return frozenset(STANDARD_LEADS)
        return frozenset(name for name in self.lead_off if name in STANDARD_LEADS)


def twelve_from_independent(independent_mv: np.ndarray) -> np.ndarray:
    """(8, n) I, II, V1-V6 -> (12, n) standard order, limb leads derived (float32)."""
    return standard_from_independent(independent_mv).astype(np.float32, copy=False)


class WindowAssembler:
    """Buffer raw 8-channel chunks into 10 s windows.

    Parameters
    ----------
    fs : float
        Stream rate in Hz (500 for the firmware bridge).
    window_s : float
        Window length in seconds.
    channels : tuple of str
        The channel order of pushed chunks (default ``INDEPENDENT_LEADS``).
    max_fill_s : float
        Longest gap of known length that :meth:`bridge` fills instead of dropping the window.
    """

    def __init__(self, fs: float = 500.0, window_s: float = WINDOW_S,
                 channels: tuple[str, ...] = INDEPENDENT_LEADS, max_fill_s: float = MAX_FILL_S) -> None:
        if tuple(channels) != INDEPENDENT_LEADS:
            raise ValueError(f"channels must be {INDEPENDENT_LEADS}, got {channels}")
        self.fs = float(fs)
        self.window_length = int(round(window_s * fs))
        self._buffer = np.empty((len(channels), self.window_length), dtype=np.float32)
        self._gap_mask = np.zeros(self.window_length, dtype=bool)
        self._window_gaps = 0
        self.max_fill_samples = int(round(max_fill_s * fs))
        self._filled = 0
        self._lead_off: set[str] = set()
        self._pending: list[Window] = []
        self._stream_position = 0  # samples seen or known missing since the start
        self._window_start = 0
        self.n_gaps = 0

    @property
    def progress(self) -> float:
        """Fraction of the current window already buffered (0..1)."""
        return self._filled / self.window_length

    def push(self, samples_mv: np.ndarray,
             lead_off: set[str] | frozenset[str] | np.ndarray | None = None) -> list[Window]:
        """Add a chunk (8, n) in mV; returns the windows it completed (usually none or one).

        ``lead_off`` is either the set of electrodes the front-end reported off during this chunk,
        or the per-sample matrix (n, 9) of :class:`firmware_bridge.events.Samples` (columns in
        ``ELECTRODES`` order): then each window gets exactly the electrodes off within its own
        samples, however large the chunk (a decoder that coalesces frames delivers ~140-sample
        chunks that may straddle a window boundary).
        """
        samples_mv = np.asarray(samples_mv, dtype=np.float32)
        if samples_mv.ndim != 2 or samples_mv.shape[0] != self._buffer.shape[0]:
            raise ValueError(f"chunk must be ({self._buffer.shape[0]}, n), got {samples_mv.shape}")
        per_sample = isinstance(lead_off, np.ndarray)
        if per_sample and lead_off.shape != (samples_mv.shape[1], len(ELECTRODES)):
            raise ValueError(f"lead_off must be ({samples_mv.shape[1]}, {len(ELECTRODES)}), got {lead_off.shape}")
        windows = []
        position = 0
        while position < samples_mv.shape[1]:
            if self._filled == 0:
                self._window_start = self._stream_position + position
                self._lead_off = set()
                self._gap_mask[:] = False
                self._window_gaps = 0
            take = min(self.window_length - self._filled, samples_mv.shape[1] - position)
            if per_sample:
                self._lead_off |= _electrodes_off(lead_off[position:position + take])
            elif lead_off:
                self._lead_off |= set(lead_off)
            self._buffer[:, self._filled:self._filled + take] = samples_mv[:, position:position + take]
            self._filled += take
            position += take
            if self._filled == self.window_length:
                windows.append(self._complete())
        self._stream_position += samples_mv.shape[1]
        return windows

    def bridge(self, n_missing: int | None) -> bool:
        """A short gap of known length: fill it (interpolated when the window completes) and keep the
        window. Returns ``False``, changing nothing, when the gap is too long or of unknown length (then
        call :meth:`gap`)."""
        if n_missing is None or not 0 < int(n_missing) <= self.max_fill_samples:
            return False
        remaining = int(n_missing)
        while remaining:
            if self._filled == 0:  # the gap starts a window: it still belongs to that window's clock
                self._window_start = self._stream_position
                self._lead_off = set()
                self._gap_mask[:] = False
                self._window_gaps = 0
            take = min(self.window_length - self._filled, remaining)
            self._buffer[:, self._filled:self._filled + take] = np.nan
            self._gap_mask[self._filled:self._filled + take] = True
            self._filled += take
            self._stream_position += take
            remaining -= take
            self._window_gaps += 1
            if self._filled == self.window_length:
                self._pending.append(self._complete())
        self.n_gaps += 1
        return True

    def take_pending(self) -> list[Window]:
        """Windows that a bridged gap completed (rare: the gap filled a window's last samples)."""
        pending, self._pending = self._pending, []
        return pending

    def gap(self, n_missing: int = 0) -> int:
        """A discontinuity: drop the partial window. Returns how many buffered samples were dropped."""
        dropped = self._filled
        self._filled = 0
        self._lead_off = set()
        self._stream_position += max(0, int(n_missing))
        self.n_gaps += 1
        return dropped

    def _complete(self) -> Window:
        flags = []
        if self._lead_off:
            off = sorted(self._lead_off, key=_ELECTRODE_ORDER.get)
            flags.append(Flag("lead_off", f"front-end reported electrode(s) off during the window: {', '.join(off)}",
                              where=", ".join(off)))
        independent = self._buffer.copy()
        gap_mask = None
        if self._gap_mask.any():
            gap_mask = self._gap_mask.copy()
            _interpolate(independent, gap_mask)
        window = Window(twelve_from_independent(independent), self.fs, self._window_start, flags,
                        lead_off=frozenset(self._lead_off), gap_mask=gap_mask, n_gaps=self._window_gaps)
        self._filled = 0
        self._lead_off = set()
        self._gap_mask[:] = False
        self._window_gaps = 0
        return window


def _interpolate(signals: np.ndarray, missing: np.ndarray) -> None:
    """Fill ``signals[:, missing]`` in place by straight lines between the samples either side (the
    edge value at a window's edge); the mask keeps saying which samples are not measured."""
    known = np.flatnonzero(~missing)
    if known.size == 0:
        signals[:] = 0.0
        return
    holes = np.flatnonzero(missing)
    for row in signals:
        row[holes] = np.interp(holes, known, row[known])


def _electrodes_off(lead_off: np.ndarray) -> set[str]:
    """Electrodes reported off in any row of a per-sample (n, 9) lead-off matrix."""
    if not lead_off.any():  # the usual case, kept cheap
        return set()
    return {ELECTRODES[i] for i in np.flatnonzero(lead_off.any(axis=0))}
