"""Fault injection for the device emulator: what goes wrong on real front-ends and cables.

Signal-level faults act on ADC codes before framing (lead-off, saturation, noise); wire-level
faults act on the bytes of each frame (dropped frames, bit errors, bursts of garbage); the
unplug fault is carried out by the emulator's I/O loop (see :mod:`firmware_bridge.emulator`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.frames import CHANNEL_LEADS, CODE_MAX, CODE_MIN, ELECTRODES, LEAD_CODES, status_word

# Channels an open electrode drives to the rail (standard ADS1298 ECG wiring, CH1 = LA-RA, CH2 = LL-RA).
ELECTRODE_CHANNELS: dict[str, tuple[str, ...]] = {
    "RA": ("I", "II"), "LA": ("I",), "LL": ("II",), **{f"V{k}": (f"V{k}",) for k in range(1, 7)},
}


@dataclass(frozen=True)
class FaultConfig:
    """Faults to inject; the default injects none.

    Parameters
    ----------
    bit_error_rate : float
        Probability that each transmitted bit is flipped.
    drop_frame_prob : float
        Probability that a DATA frame is never sent.
    garbage_bursts_per_s : float
        Mean bursts of random bytes per second of stream, inserted between frames.
    garbage_max_bytes : int
        Length of a burst, uniform in 1..garbage_max_bytes.
    lead_off : tuple of str
        Electrodes (RA, LA, LL, V1..V6) reported off; their channels sit at the positive rail.
    saturate : tuple of str
        Leads (I, II, V1..V6) pinned at positive full scale (amplifier saturation).
    noise_uv : float
        Standard deviation of white Gaussian noise added to every channel, microvolts.
    unplug_at_s : float or None
        Stream time (seconds of record replayed) at which the device is unplugged.
    unplug_for_s : float
        Wall-clock seconds the device stays unplugged.
    slip_prob : float
        Probability that a DATA frame suffers a byte slip (one byte lost or, as often, one extra byte
        inserted at a random position), as a UART overrun or a DMA race does.
    clock_hz : float or None
        The sample clock the device really runs at while announcing ``sample_rate_hz`` (e.g. 498).
    stuck_lead_off : tuple of str
        Electrodes whose lead-off bit is set although they are attached (the signal stays live).
    announced_map : tuple of str or None
        Channel map the INFO frame announces while the data keep the device's real channel order.
    silent_after_s : float or None
        Stream time (seconds since START, of record replayed) after which the device sends nothing
        and ignores every command, with the port still open (a hung firmware).
    """

    bit_error_rate: float = 0.0
    drop_frame_prob: float = 0.0
    garbage_bursts_per_s: float = 0.0
    garbage_max_bytes: int = 64
    lead_off: tuple[str, ...] = ()
    saturate: tuple[str, ...] = ()
    noise_uv: float = 0.0
    unplug_at_s: float | None = None
    unplug_for_s: float = 1.0
    slip_prob: float = 0.0
    clock_hz: float | None = None
    stuck_lead_off: tuple[str, ...] = ()
    announced_map: tuple[str, ...] | None = None
    silent_after_s: float | None = None

    def problems(self) -> list[str]:
        """Reasons this configuration is impossible (empty when valid)."""
        found = []
        for name in ("bit_error_rate", "drop_frame_prob", "slip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                found.append(f"{name} must be a probability in 0..1")
        if self.garbage_bursts_per_s < 0 or self.garbage_max_bytes < 1:
            found.append("garbage bursts need a rate >= 0 and a maximum length >= 1")
        found += [f"unknown electrode {e!r} (expected {', '.join(ELECTRODES)})" for e in self.lead_off if e not in ELECTRODES]
        found += [f"unknown lead {lead!r} (expected {', '.join(CHANNEL_LEADS)})" for lead in self.saturate if lead not in CHANNEL_LEADS]
        if self.noise_uv < 0:
            found.append("noise_uv must be >= 0")
        if self.unplug_at_s is not None and (self.unplug_at_s < 0 or self.unplug_for_s < 0):
            found.append("unplug times must be >= 0")
        found += [f"unknown electrode {e!r} (expected {', '.join(ELECTRODES)})" for e in self.stuck_lead_off if e not in ELECTRODES]
        if self.clock_hz is not None and not 1.0 <= self.clock_hz <= 32000.0:
            found.append("clock_hz must be in 1..32000")
        if self.announced_map is not None and (len(self.announced_map) != len(CHANNEL_LEADS)
                                               or not set(self.announced_map) <= set(LEAD_CODES)):
            found.append(f"announced_map must name {len(CHANNEL_LEADS)} leads from {', '.join(LEAD_CODES)}")
        if self.silent_after_s is not None and self.silent_after_s < 0:
            found.append("silent_after_s must be >= 0")
        return found


@dataclass
class FaultCounters:
    frames_dropped: int = 0
    bits_flipped: int = 0
    garbage_bursts: int = 0
    garbage_bytes: int = 0
    byte_slips: int = 0


@dataclass
class FaultInjector:
    """Apply a :class:`FaultConfig` to codes and frames, reproducibly from ``seed``."""

    config: FaultConfig
    channel_map: tuple[str, ...] = CHANNEL_LEADS
    lsb_nv: float = 47.6837158203125
    seed: int = 0
    counters: FaultCounters = field(default_factory=FaultCounters)

    def __post_init__(self) -> None:
        problems = self.config.problems()
        if problems:
            raise ValueError("invalid fault configuration: " + "; ".join(problems))
        self.rng = np.random.default_rng(self.seed)
        railed = {lead for e in self.config.lead_off for lead in ELECTRODE_CHANNELS[e]} | set(self.config.saturate)
        self._railed = [self.channel_map.index(lead) for lead in sorted(railed)]
        self._status = status_word(tuple(sorted(set(self.config.lead_off) | set(self.config.stuck_lead_off))))

    @property
    def status(self) -> int:
        """The status word every sample carries (lead-off and stuck lead-off bits set)."""
        return self._status

    def apply_to_codes(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signal-level faults on ``(n, 8)`` codes; returns ``(codes, status words)``."""
        codes = np.array(codes, dtype=np.int64)
        if self.config.noise_uv > 0:
            noise = self.rng.normal(0.0, self.config.noise_uv * 1000.0 / self.lsb_nv, size=codes.shape)
            codes = codes + np.round(noise).astype(np.int64)
        codes = np.clip(codes, CODE_MIN, CODE_MAX)
        if self._railed:
            codes[:, self._railed] = CODE_MAX
        return codes, np.full(codes.shape[0], self._status, dtype=np.int64)

    def apply_to_frame(self, frame: bytes, frame_duration_s: float) -> bytes:
        """Wire-level faults on one DATA frame's bytes (may return ``b""`` or extra bytes)."""
        config = self.config
        if config.drop_frame_prob and self.rng.random() < config.drop_frame_prob:
            self.counters.frames_dropped += 1
            return b""
        out = frame
        if config.bit_error_rate:
            n_flips = self.rng.binomial(len(frame) * 8, config.bit_error_rate)
            if n_flips:
                data = bytearray(frame)
                for bit in self.rng.choice(len(frame) * 8, size=n_flips, replace=False):
                    data[bit // 8] ^= 1 << (bit % 8)
                self.counters.bits_flipped += int(n_flips)
                out = bytes(data)
        if config.slip_prob and self.rng.random() < config.slip_prob:
            position = int(self.rng.integers(2, len(out)))  # after the sync: the frame must be seen and lost
            self.counters.byte_slips += 1
            if self.rng.random() < 0.5:
                out = out[:position] + out[position + 1:]
            else:
                out = out[:position] + bytes([int(self.rng.integers(0, 256))]) + out[position:]
        if config.garbage_bursts_per_s and self.rng.random() < config.garbage_bursts_per_s * frame_duration_s:
            garbage = self.rng.integers(0, 256, size=int(self.rng.integers(1, config.garbage_max_bytes + 1)), dtype=np.uint8)
            self.counters.garbage_bursts += 1
            self.counters.garbage_bytes += garbage.size
            out = garbage.tobytes() + out
        return out
