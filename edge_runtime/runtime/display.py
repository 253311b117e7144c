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

LEAD_OFF_PROMPT_S = 3.0  # an electrode off longer than this replaces the progress bar with "attach electrode"
HR_BRIDGE_S = 0.06  # the heart-rate detector runs on across gaps up to this long (same as the windows)


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


def _ordered(electrodes: list[str]) -> list[str]:
    from firmware_bridge.frames import ELECTRODES

    return sorted(electrodes, key=lambda name: ELECTRODES.index(name) if name in ELECTRODES else 99)


def first_sentence(text: str) -> str:
    """``"An electrode is off or loose."`` from a longer operator text."""
    head, dot, _ = text.partition(". ")
    return head + "." if dot else text


def last_window_text(report: dict | None) -> str:
    """The last window in a few plain words: ``estimate 104 g`` or the main problem's first sentence."""
    if report is None:
        return "-"
    if report.get("lvm_g") is not None:
        return f"estimate {report['lvm_g']:.0f} g"
    messages = report.get("operator_messages") or [f.get("operator_text", f["name"]) for f in report["flags"]]
    return "no estimate" + (f": {first_sentence(messages[0])}" if messages else "")


class LiveDisplay:
    """Renders the session's status; pass :meth:`update` as ``RuntimeSession(on_status=...)``."""

    def __init__(self, stream: TextIO = sys.stderr, mains_hz: float = 50.0, interval_s: float = 0.25) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.mains_hz = mains_hz
        self.interval_s = interval_s if self.tty else 5.0
        self._meter: HeartRateMeter | None = None
        self._last_ii = 0.0
        self._last = 0.0

    def line(self, session: object) -> str:
        """The status line for ``session`` (a :class:`~edge_runtime.runtime.session.RuntimeSession`).

        Plain words only: the operator texts of the flag registry, never flag names."""
        assembler = getattr(session, "assembler", None)
        progress = 0.0 if assembler is None else assembler.progress
        off = list(getattr(session, "lead_off", ()))
        summary = session.summary  # type: ignore[attr-defined]
        bpm = None if self._meter is None else self._meter.bpm
        heart = f"HR {'--' if bpm is None else f'{bpm:.0f}'} bpm"
        done = f"estimates {summary.n_estimates}"
        if not getattr(session, "streaming", True):
            return f"NO SIGNAL: waiting for the ECG front-end | {done}"
        since = getattr(session, "lead_off_since", None)
        if off and since is not None and time.monotonic() - since >= LEAD_OFF_PROMPT_S:
            # No progress bar: no window can give a number while an electrode is off.
            return f"ATTACH ELECTRODE {', '.join(_ordered(off))} | {heart} | {done}"
        leads = "electrodes ok" if not off else f"electrode off: {', '.join(_ordered(off))}"
        if getattr(summary, "link_unstable", False) and getattr(session, "_lost_in_row", 0):
            leads = "LINK UNSTABLE: check the cable"
        last = summary.results[-1] if summary.results else None
        next_text = "first estimate" if summary.n_estimates == 0 else "next estimate"
        bar = "#" * int(progress * 20)
        return (f"{leads} | {heart} | last: {last_window_text(last)} | "
                f"{next_text} [{bar:<20}] {progress * 10:4.1f}/10 s | {done}")

    def update(self, session: object, event: object) -> None:
        """Feed every event; redraws at most every ``interval_s``."""
        if isinstance(event, Samples):
            if self._meter is None or self._meter.fs != event.fs:
                self._meter = HeartRateMeter(float(event.fs), self.mains_hz)
            self._meter.process(event.signals_mv[1])
            self._last_ii = float(event.signals_mv[1][-1]) if event.signals_mv.shape[1] else self._last_ii
        elif isinstance(event, Gap):
            missing = event.missing_samples
            if (self._meter is not None and missing is not None
                    and 0 < missing <= int(round(HR_BRIDGE_S * self._meter.fs))):
                # Keep the detector's sample clock: feed the lost stretch as the last value held.
                self._meter.process(np.full(int(missing), self._last_ii))
            else:
                self._meter = None  # the detector must not bridge a long gap
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

    def message(self, text: str) -> None:
        """Print one line without mixing it into the status line (cleared first on a terminal)."""
        prefix = "\r" + " " * 160 + "\r" if self.tty else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
        self._last = 0.0  # redraw the status line at the next event

    def log(self, event: object) -> None:
        """Print a session event in plain words (events without operator text stay in the log only)."""
        text = getattr(event, "operator_text", "")
        if text:
            self.message(f"{event.utc[11:19]} {text}")  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
