"""Plain-text line mode for hobby front-ends: one line per sample, 8 comma-separated microvolt values.

``I,II,V1,V2,V3,V4,V5,V6`` in microvolts (integers or decimals), ``\\n`` or ``\\r\\n`` terminated.
Lines starting with ``#`` are comments (a front-end may print a banner). Text mode has no lead-off
bits, sequence numbers or checksum: a malformed line is dropped and reported as a one-sample
:class:`~firmware_bridge.events.Gap`, so nothing is spliced across it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_bridge.events import Event, Gap, Samples
from firmware_bridge.frames import CHANNEL_LEADS, ELECTRODES

MAX_LINE_BYTES = 256  # a longer run without a newline is garbage, not a sample


@dataclass
class TextStats:
    lines_ok: int = 0
    lines_rejected: int = 0
    comments: int = 0


def format_text_line(values_uv: np.ndarray) -> bytes:
    """One sample as a text-mode line (values rounded to whole microvolts)."""
    return (",".join(str(int(round(float(v)))) for v in values_uv) + "\n").encode("ascii")


class TextLineDecoder:
    """Decode text-mode bytes into :class:`~firmware_bridge.events.Samples`.

    Parameters
    ----------
    fs : float
        Sampling rate of the front-end (text mode cannot announce it).
    """

    def __init__(self, fs: float = 500.0) -> None:
        self.fs = float(fs)
        self.stats = TextStats()
        self._pending = bytearray()
        self._sample = 0
        self._gap_open = False

    @property
    def expected_sample(self) -> int | None:
        """Index the next line's sample gets (``None`` before the first sample)."""
        return self._sample if self.stats.lines_ok or self.stats.lines_rejected else None

    def reset(self) -> None:
        """Drop a partial line (port reopened); sample numbering continues."""
        self._pending.clear()

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        """Add bytes; return the events of every complete line."""
        self._pending += chunk
        *lines, rest = self._pending.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            lines.append(bytes(rest))
            rest = b""
        self._pending = bytearray(rest)
        rows: list[list[float]] = []
        events: list[Event] = []
        for line in lines:
            text = line.strip()
            if not text or text.startswith(b"#"):
                self.stats.comments += bool(text)
                continue
            values = self._parse(text)
            if values is None:
                self.stats.lines_rejected += 1
                self._flush(rows, events)
                events.append(Gap(self._sample, self._sample + 1, 1, "malformed text line"))
                self._sample += 1
                continue
            rows.append(values)
        self._flush(rows, events)
        return events

    @staticmethod
    def _parse(text: bytes) -> list[float] | None:
        fields = text.split(b",")
        if len(fields) != len(CHANNEL_LEADS):
            return None
        try:
            values = [float(field) for field in fields]
        except ValueError:
            return None
        if not all(np.isfinite(values)):
            return None
        return values

    def _flush(self, rows: list[list[float]], events: list[Event]) -> None:
        if not rows:
            return
        signals = (np.asarray(rows, dtype=np.float64).T / 1000.0).astype(np.float32)
        n = signals.shape[1]
        events.append(Samples(self._sample, signals, np.zeros((n, len(ELECTRODES)), dtype=bool), self.fs))
        self._sample += n
        self.stats.lines_ok += n
        rows.clear()
