"""How many real 12-lead windows the ``pacing`` flag catches once synthetic pacemaker spikes are added.

Each record (evaluation/real_records.py) is brought to the front-end rate ``fs`` (resampled when it differs),
its R peaks found by the signal core, and one pulse per beat added 80 ms before R (evaluation/pacing_sim.py)
with a random dipole direction per record (seeded). The outcome of each window is ``pacing``, ``noise``
(spikes judged impulsive artefacts), ``wide_qrs`` (no pacing flag, a wide QRS) or ``none``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from edge_runtime.preprocess import PreprocessConfig, analyze_window
from edge_runtime.resample import resample_signals
from evaluation.pacing_sim import add_pacing_spikes, lead_weights
from evaluation.real_records import RealWindow


def outcome(flag_names: list[str]) -> str:
    for name in ("pacing", "noise", "wide_qrs"):
        if name in flag_names:
            return name
    return "none"


def at_rate(window: RealWindow, fs: float) -> np.ndarray:
    return window.signals_mv if window.fs == fs else resample_signals(window.signals_mv, window.fs, fs)


def paced_outcomes(windows: list[RealWindow], fs: float, width_ms: float, amplitude_mv: float,
                   seed: int = 0) -> Counter:
    """Outcome counts of the windows at ``fs`` with spikes of ``width_ms`` and ``amplitude_mv``."""
    rng = np.random.default_rng(seed)
    delay_s = PreprocessConfig().delay_s
    counts: Counter = Counter()
    for window in windows:
        signals = at_rate(window, fs)
        clean = analyze_window(signals, fs)
        r_raw = np.round((clean.r_peaks / clean.fs - delay_s) * fs).astype(np.int64)
        paced = add_pacing_spikes(signals, fs, r_raw, width_ms, amplitude_mv, lead_weights(rng))
        counts[outcome(analyze_window(paced, fs).flag_names)] += 1
    return counts


def unpaced_outcomes(windows: list[RealWindow], fs: float) -> Counter:
    """Outcome counts of the windows as recorded (brought to ``fs``): a pacing flag here is a false alarm."""
    return Counter(outcome(analyze_window(at_rate(w, fs), fs).flag_names) for w in windows)
