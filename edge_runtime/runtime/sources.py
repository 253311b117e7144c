"""Where the runtime's samples come from; every source yields :mod:`firmware_bridge.events`.

* :class:`SerialSource`: a serial port, the emulator's pty or any pyserial URL, through the firmware
  bridge's :class:`~firmware_bridge.transport.SerialTransport` (handshake, lead-off, gaps, reconnect).
* :class:`ReplaySource`: a record file replayed at real time (or ``speed`` times faster) as the
  8 measured channels I, II, V1-V6 at the file's own rate. Channels the file lacks are sent as
  zeros with their electrodes reported off, as a front-end would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from firmware_bridge.events import Connected, Event, Samples, Stopped
from firmware_bridge.frames import CHANNEL_LEADS, ELECTRODES

# Which electrode carries each measured channel (V leads: their own electrode; I and II: the limbs).
_ELECTRODE_OF_CHANNEL = {"I": ("RA", "LA"), "II": ("RA", "LL"), **{f"V{k}": (f"V{k}",) for k in range(1, 7)}}


class SerialSource:
    """Events from a front-end on ``url`` (``/dev/ttyUSB0``, a pty path, ``socket://host:port``)."""

    def __init__(self, url: str, reconnect: bool = True, **transport_options: object) -> None:
        from firmware_bridge.decoder import StreamDecoder
        from firmware_bridge.transport import SerialTransport

        self.url = url
        self.transport = SerialTransport(url, reconnect=reconnect, **transport_options)  # type: ignore[arg-type]
        # The runtime only buffers samples: one Samples event per run of contiguous frames in a
        # serial read instead of one per 5-sample frame (same samples, gaps and lead-off events).
        if isinstance(self.transport.decoder, StreamDecoder):
            self.transport.decoder.coalesce = True

    def events(self) -> Iterator[Event]:
        return self.transport.events()

    def stop(self) -> None:
        self.transport.stop()

    def describe(self) -> str:
        return f"serial {self.url}"


def channels_from_record(record: object) -> tuple[np.ndarray, np.ndarray]:
    """The 8 measured channels of a record (zeros where absent) and the electrodes that are off.

    Returns
    -------
    signals_mv : ndarray, shape (8, n) float32
    lead_off : ndarray of bool, shape (9,)
        In :data:`firmware_bridge.frames.ELECTRODES` order.
    """
    names = list(record.lead_names)  # type: ignore[attr-defined]
    signals = record.signals_mv  # type: ignore[attr-defined]
    n = signals.shape[1]
    rows, off = [], set()
    for channel in CHANNEL_LEADS:
        if channel in names:
            rows.append(signals[names.index(channel)])
        else:
            rows.append(np.zeros(n, dtype=np.float32))
            off.update(_ELECTRODE_OF_CHANNEL[channel] if channel.startswith("V") else ())
    if "I" not in names or "II" not in names:
        off.update(("RA", "LA", "LL"))
    lead_off = np.array([electrode in off for electrode in ELECTRODES], dtype=bool)
    return np.stack(rows).astype(np.float32), lead_off


class ReplaySource:
    """A record replayed as if a front-end were streaming it.

    Parameters
    ----------
    path : str or Path
        Any file :func:`edge_runtime.formats.read_record` reads.
    speed : float
        1 = real time; larger is faster (tests), ``inf`` = as fast as possible.
    chunk_s : float
        Seconds of signal per event (a front-end frame batch).
    max_s : float, optional
        Replay at most this many seconds of the record.
    """

    def __init__(self, path: str | Path, speed: float = 1.0, chunk_s: float = 0.1, max_s: float | None = None) -> None:
        from edge_runtime.formats import read_record

        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.path = str(path)
        self.record = read_record(path)
        self.speed = float(speed)
        self.chunk_s = float(chunk_s)
        self.max_s = max_s
        self._stop = threading.Event()

    def describe(self) -> str:
        return f"replay {self.path}"

    def stop(self) -> None:
        self._stop.set()

    def events(self) -> Iterator[Event]:
        signals, off = channels_from_record(self.record)
        fs = float(self.record.fs)
        if self.max_s is not None:
            signals = signals[:, :int(round(self.max_s * fs))]
        chunk = max(1, int(round(self.chunk_s * fs)))
        yield Connected(self.describe(), 1)
        start = time.monotonic()
        for first in range(0, signals.shape[1], chunk):
            if self._stop.is_set():
                break
            block = signals[:, first:first + chunk]
            due = start + (first + block.shape[1]) / fs / self.speed
            delay = due - time.monotonic()
            if delay > 0 and np.isfinite(delay):
                self._stop.wait(delay)  # a front-end delivers a chunk once it has been measured
            yield Samples(first, block, np.repeat(off[None, :], block.shape[1], axis=0), fs)
        yield Stopped(self.describe())
