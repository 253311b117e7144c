"""Metamorphic check: respiration-rate baseline wander must not move or remove the LV-mass estimate.

Each independent lead (I, II, V1-V6) gets a sinusoid of ``amplitude_mv`` at ``freq_hz`` with its own random
phase; III, aVR, aVL and aVF get the combinations Einthoven's and Goldberger's laws give (so the window stays
a consistent 12-lead ECG and those leads see 0-1 mV). The estimate of the bundled model with and without
wander is compared.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from evaluation.real_records import RealWindow

FREQUENCIES_HZ = (0.15, 0.3, 0.5)
AMPLITUDE_MV = 0.5


def lead_wander(n: int, fs: float, freq_hz: float, amplitude_mv: float, rng: np.random.Generator) -> np.ndarray:
    """Wander of the 12 standard leads, shape (12, n): independent-phase sinusoids on I, II, V1-V6."""
    from edge_runtime.record import derive_limb_leads

    t = np.arange(n) / fs
    phases = rng.uniform(0.0, 2.0 * np.pi, size=8)
    lead_i, lead_ii, *chest = (amplitude_mv * np.sin(2.0 * np.pi * freq_hz * t + phase) for phase in phases)
    limb = derive_limb_leads(lead_i, lead_ii)
    return np.stack([lead_i, lead_ii, limb["III"], limb["aVR"], limb["aVL"], limb["aVF"], *chest])


@dataclass
class WanderRow:
    record: str
    freq_hz: float
    clean_g: float | None
    wander_g: float | None
    wander_flags: list[str]


def estimate_g(analyzer, window: RealWindow, signals: np.ndarray) -> tuple[float | None, list[str]]:
    result = analyzer.analyze_12(signals, window.fs, window.patient)
    return result.report["lvm_g"], [f.name for f in result.estimate.flags]


def run_check(analyzer, windows: list[RealWindow], baseline_highpass_hz: float | None,
              frequencies: tuple[float, ...] = FREQUENCIES_HZ, amplitude_mv: float = AMPLITUDE_MV,
              seed: int = 0) -> tuple[list[WanderRow], float]:
    """Estimate every window clean and with wander at each frequency, with the given baseline setting.

    Returns the rows and the mean analysis time per window (seconds, the whole chain + model).
    """
    analyzer.preprocess_config = dataclasses.replace(analyzer.preprocess_config, baseline_highpass_hz=baseline_highpass_hz)
    rng = np.random.default_rng(seed)
    rows: list[WanderRow] = []
    elapsed, calls = 0.0, 0
    for window in windows:
        start = time.process_time()
        clean_g, _ = estimate_g(analyzer, window, window.signals_mv)
        elapsed += time.process_time() - start
        calls += 1
        for freq in frequencies:
            wander = lead_wander(window.signals_mv.shape[1], window.fs, freq, amplitude_mv, rng)
            start = time.process_time()
            wander_g, flags = estimate_g(analyzer, window, window.signals_mv + wander)
            elapsed += time.process_time() - start
            calls += 1
            rows.append(WanderRow(window.name, freq, clean_g, wander_g, flags))
    return rows, elapsed / max(calls, 1)


def summarize(rows: list[WanderRow]) -> dict:
    """Median / max |delta g| over windows that had an estimate clean and kept it; records that lost it."""
    kept = [abs(r.wander_g - r.clean_g) for r in rows if r.clean_g is not None and r.wander_g is not None]
    lost = sorted({r.record for r in rows if r.clean_g is not None and r.wander_g is None})
    with_estimate = sorted({r.record for r in rows if r.clean_g is not None})
    return {"records": len({r.record for r in rows}), "records_with_estimate": len(with_estimate),
            "pairs_kept": len(kept), "median_abs_delta_g": float(np.median(kept)) if kept else float("nan"),
            "p90_abs_delta_g": float(np.percentile(kept, 90)) if kept else float("nan"),
            "max_abs_delta_g": float(np.max(kept)) if kept else float("nan"),
            "records_losing_estimate": lost,
            "lost_per_frequency": {f: sum(r.clean_g is not None and r.wander_g is None for r in rows if r.freq_hz == f)
                                   for f in sorted({r.freq_hz for r in rows})}}
