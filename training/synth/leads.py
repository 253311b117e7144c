"""Frank-axis VCG -> the 12 standard leads.

The 8 independent leads (I, II, V1-V6) are the Dower projection of the VCG (Dower et al.,
J Electrocardiol 1980;13:189; the same matrix whose pseudo-inverse is the "inverse Dower" of
Edenbrandt & Pahlm, J Electrocardiol 1988;21:361). Electrode placement varies between
recordings, so each subject's precordial rows are turned and scaled a little. III, aVR, aVL and
aVF then come from :func:`edge_runtime.record.derive_limb_leads` on the quantized I and II, so
Einthoven's and Goldberger's relations hold exactly in the stored digital samples.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, derive_limb_leads
from training.synth.phenotype import rotation_matrix

# rows I, II, V1..V6 (INDEPENDENT_LEADS order); columns X (left), Y (feet), Z (back)
DOWER_MATRIX = np.array([
    [0.632, -0.235, 0.059],  # I
    [0.235, 1.066, -0.132],  # II
    [-0.515, 0.157, -0.917],  # V1
    [0.044, 0.164, -1.387],  # V2
    [0.882, 0.098, -1.277],  # V3
    [1.213, 0.127, -0.601],  # V4
    [1.125, 0.127, -0.086],  # V5
    [0.831, 0.076, 0.230],  # V6
])

# Stored resolution: 0.5 uV per LSB (gain 2000/mV) so that I and II rounded to whole microvolts
# give aVR = -(I+II)/2 and aVL, aVF exactly on the grid. Format 16 spans +-16.38 mV.
ADC_GAIN_PER_MV = 2000.0


def jittered_dower(rng: np.random.Generator, precordial_turn_sd_deg: float = 6.0,
                   precordial_gain_sd: float = 0.07, limb_gain_sd: float = 0.03) -> tuple[np.ndarray, dict]:
    """The Dower matrix with this recording's electrode-placement jitter, and the jitter drawn."""
    matrix = DOWER_MATRIX.copy()
    gains = np.exp(np.concatenate([rng.normal(0.0, limb_gain_sd, 2), rng.normal(0.0, precordial_gain_sd, 6)]))
    turns = rng.normal(0.0, precordial_turn_sd_deg, size=(6, 3))
    for row in range(2, 8):
        matrix[row] = rotation_matrix(turns[row - 2]) @ matrix[row]
    matrix *= gains[:, None]
    latents = {f"lead_gain_{name}": float(g) for name, g in zip(INDEPENDENT_LEADS, gains)}
    latents.update({f"lead_turn_deg_{name}": float(np.linalg.norm(t)) for name, t in zip(INDEPENDENT_LEADS[2:], turns)})
    return matrix, latents


def project_independent(vcg: np.ndarray, lead_matrix: np.ndarray) -> np.ndarray:
    """(8, n) independent leads I, II, V1-V6 in mV from a (3, n) VCG."""
    return lead_matrix @ vcg


def to_digital_12(independent_mv: np.ndarray) -> np.ndarray:
    """Quantize the 8 independent leads and derive the rest: (12, n) int32 ADC units at ``ADC_GAIN_PER_MV``.

    I and II are rounded to whole microvolts (2 LSB), the precordial leads to 0.5 uV; III, aVR, aVL
    and aVF are then exact on the grid (see :data:`ADC_GAIN_PER_MV`).
    """
    limb_uv = np.round(independent_mv[:2] * 1000.0)
    derived = derive_limb_leads(limb_uv[0], limb_uv[1])
    rows = {"I": limb_uv[0] * 2.0, "II": limb_uv[1] * 2.0}
    rows.update({name: values * 2.0 for name, values in derived.items()})
    precordial = np.round(independent_mv[2:] * ADC_GAIN_PER_MV)
    rows.update({name: precordial[i] for i, name in enumerate(INDEPENDENT_LEADS[2:])})
    digital = np.stack([rows[name] for name in STANDARD_LEADS])
    limit = 32767
    if np.abs(digital).max() > limit:
        raise ValueError(f"synthetic signal exceeds the 16-bit range (+-{limit / ADC_GAIN_PER_MV:.2f} mV)")
    return digital.astype(np.int32)
