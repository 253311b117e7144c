"""Live terminal status: electrodes, heart rate, signal quality, progress to the next estimate.

One line, rewritten in place on a terminal (``\\r``), or a plain line every few seconds when the
output is a file or pipe. Heart rate comes from a light streaming detector on lead II (the same
conditioner and detector classes the analysis uses), so the operator sees a pulse before the
first 10 s window is complete.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import numpy as np

from firmware_bridge.events import Gap, Samples


class HeartRateMeter:
    """Streaming heart rate (bpm) from one lead: median of the last RR intervals."""

    def __init__(self, fs: float, mains_hz: float = 50.0) -> None:
        from edge_runtime.signal_core.detect import StreamingRPeakDetector
        from edge_runtime.signal_core.filters import StreamingConditioner

        self.fs = fs
        self._conditioner = StreamingConditioner(fs, 0.5, 40.0, mains_hz if mains_hz < fs / 2 else None)
        self._detector = StreamingRPeakDetector(fs, 1)
        self._peaks: list[int] = []

    def process(self, lead_mv: np.ndarray) -> float | None:
        """Feed samples of the lead; returns the current heart rate or ``None`` while unknown."""
        peaks = self._detector.process(self._conditioner.process(np.asarray(lead_mv, dtype=np.float64))[None, :])
        self._peaks = (self._peaks + peaks.tolist())[-9:]
        return self.bpm

    @property
    def bpm(self) -> float | None:
        if len(self._peaks) < 3:
            return None
        rr = np.diff(self._peaks) / self.fs
        return float(60.0 / np.median(rr))


class LiveDisplay:
    """Renders the session's status; pass :meth:`update` as ``RuntimeSession(on_status=...)``."""

    def __init__(self, stream: TextIO = sys.stderr, mains_hz: float = 50.0, interval_s: float = 0.25) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.mains_hz = mains_hz
        self.interval_s = interval_s if self.tty else 5.0
        self._meter: HeartRateMeter | None = None
        self._last = 0.0

    def line(self, session: object) -> str:
        """The status line for ``session`` (a :class:`~edge_runtime.runtime.session.RuntimeSession`)."""
        assembler = getattr(session, "assembler", None)
        progress = 0.0 if assembler is None else assembler.progress
        off = sorted(getattr(session, "lead_off", ()))
        summary = session.summary  # type: ignore[attr-defined]
        bpm = None if self._meter is None else self._meter.bpm
        if not getattr(session, "streaming", True):
            leads = "NO SIGNAL (waiting for the device)"
        else:
            leads = "electrodes ok" if not off else f"LEAD OFF {','.join(off)}"
        last = summary.results[-1] if summary.results else None
        quality = "-" if last is None else ("ok" if last["estimate_status"] != "no_estimate"
                                            else ",".join(f["name"] for f in last["flags"][:2]))
        next_text = "first estimate" if summary.n_estimates == 0 else "next estimate"
        bar = "#" * int(progress * 20)
        return (f"{leads} | HR {'--' if bpm is None else f'{bpm:.0f}'} bpm | last window {quality} | "
                f"{next_text} [{bar:<20}] {progress * 10:4.1f}/10 s | estimates {summary.n_estimates}")

    def update(self, session: object, event: object) -> None:
        """Feed every event; redraws at most every ``interval_s``."""
        if isinstance(event, Samples):
            if self._meter is None or self._meter.fs != event.fs:
                self._meter = HeartRateMeter(float(event.fs), self.mains_hz)
            self._meter.process(event.signals_mv[1])
        elif isinstance(event, Gap):
            self._meter = None  # the detector must not bridge a gap either
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        text = self.line(session)
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(160))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def log(self, event: object) -> None:
        """Print a session event (gap, lead-off, disconnect ...) on its own line."""
        prefix = "\r" + " " * 160 + "\r" if self.tty else ""
        self.stream.write(f"{prefix}{event.utc[11:19]} {event.name}: {event.reason}\n")  # type: ignore[attr-defined]
        self.stream.flush()
        self._last = 0.0  # redraw the status line at the next event

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
