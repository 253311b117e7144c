"""Typed events the decoders and the transport emit (one stream of these is all a consumer reads).

A consumer keeps a buffer of :class:`Samples` and must clear it on :class:`Gap`: samples on the two
sides of a gap are never contiguous, so splicing them would fake a signal that was never measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.frames import CHANNEL_LEADS, ELECTRODES, DeviceInfo


@dataclass(frozen=True, eq=False)
class Samples:
    """Consecutive samples of the 8 measured leads.

    Attributes
    ----------
    first_sample : int
        Device sample counter of column 0 (modulo 2**32 for binary frames).
    signals_mv : ndarray of float32, shape (8, n)
        Millivolts, rows in :data:`CHANNEL_LEADS` order (I, II, V1..V6).
    lead_off : ndarray of bool, shape (n, 9)
        Per-sample lead-off, columns in :data:`ELECTRODES` order (RA, LA, LL, V1..V6).
    fs : float
        Sampling rate in Hz.
    """

    first_sample: int
    signals_mv: np.ndarray
    lead_off: np.ndarray
    fs: float
    leads: tuple[str, ...] = CHANNEL_LEADS

    @property
    def n_samples(self) -> int:
        return int(self.signals_mv.shape[1])


@dataclass(frozen=True)
class Gap:
    """Samples are missing between the previous :class:`Samples` and the next one.

    ``missing_samples`` is exact when the device's sample counter continued, ``None`` when unknown
    (link lost, device restarted).
    """

    expected_sample: int | None
    resumed_sample: int | None
    missing_samples: int | None
    reason: str


@dataclass(frozen=True)
class LeadOffChanged:
    """The set of electrodes in lead-off changed at ``sample`` (empty set = all attached)."""

    sample: int
    electrodes: frozenset[str]
    newly_off: frozenset[str] = field(default_factory=frozenset)
    reattached: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class InfoReceived:
    info: DeviceInfo


@dataclass(frozen=True)
class Reply:
    """A device reply to a command: ``kind`` is ``pong``, ``ack`` or ``nak``."""

    kind: str
    seq: int
    payload: bytes


@dataclass(frozen=True)
class Connected:
    url: str
    attempt: int


@dataclass(frozen=True)
class Disconnected:
    url: str
    reason: str


@dataclass(frozen=True)
class Reconnecting:
    url: str
    attempt: int
    delay_s: float
    reason: str


@dataclass(frozen=True)
class Stopped:
    url: str


Event = Samples | Gap | LeadOffChanged | InfoReceived | Reply | Connected | Disconnected | Reconnecting | Stopped

__all__ = ["Samples", "Gap", "LeadOffChanged", "InfoReceived", "Reply", "Connected", "Disconnected",
           "Reconnecting", "Stopped", "Event", "CHANNEL_LEADS", "ELECTRODES"]
