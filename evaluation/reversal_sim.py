"""Simulated electrode reversals on correct 12-lead ECGs (Krasteva, Jekova & Schmid, Sensors 2019;19:2920).

The 12 leads are turned back into electrode potentials (RA = 0 as reference; LA = I, LL = II; chest
electrode Ci = Vi + Wilson's terminal), the two cables are exchanged, and the leads are computed again from the
swapped potentials. A reversal that involves the neutral electrode RL puts RL's potential on the other cable;
RL's potential is not recorded, so it is taken equal to LL's, as Krasteva et al. suggest (both legs are far
from the heart): in simulation the affected lead is then exactly flat, which real swaps only approach.
"""

from __future__ import annotations

import numpy as np

REVERSALS = ("LA/RA", "LA/LL", "RA/LL", "RA/RL", "LA/RL")


def electrode_potentials(signals: np.ndarray) -> dict[str, np.ndarray]:
    """RA, LA, LL, RL (= LL) and C1-C6 potentials (RA = 0) from the 12 standard leads."""
    lead_i, lead_ii = signals[0], signals[1]
    ra = np.zeros_like(lead_i)
    la, ll = lead_i, lead_ii
    wilson = (ra + la + ll) / 3.0
    potentials = {"RA": ra, "LA": la, "LL": ll, "RL": ll}
    potentials.update({f"C{i + 1}": signals[6 + i] + wilson for i in range(6)})
    return potentials


def leads_from_potentials(p: dict[str, np.ndarray]) -> np.ndarray:
    """The 12 standard leads (I, II, III, aVR, aVL, aVF, V1-V6) from electrode potentials."""
    ra, la, ll = p["RA"], p["LA"], p["LL"]
    wilson = (ra + la + ll) / 3.0
    limb = [la - ra, ll - ra, ll - la, ra - (la + ll) / 2.0, la - (ra + ll) / 2.0, ll - (ra + la) / 2.0]
    return np.stack(limb + [p[f"C{i + 1}"] - wilson for i in range(6)])


def simulate_reversal(signals: np.ndarray, reversal: str) -> np.ndarray:
    """The 12 leads an ECG cart would record with the two cables of ``reversal`` ("LA/RA", ...) exchanged."""
    if reversal not in REVERSALS:
        raise ValueError(f"unknown reversal {reversal!r}; known: {', '.join(REVERSALS)}")
    a, b = reversal.split("/")
    p = electrode_potentials(np.asarray(signals, dtype=np.float64))
    swapped = dict(p)
    swapped[a], swapped[b] = p[b], p[a]
    return leads_from_potentials(swapped)
