"""A point-wise monotonicity penalty: more QRS voltage must not lower the LV-mass estimate.

Why: on the synthetic cohort (and in people) LV mass raises QRS voltage, so a perfect reader's estimate
rises when the voltage does (docs/training.md: a log-linear reader of the noise-free ECG features rises on
every subject, +1.2 g for x1.25 on every lead, +3.1 g for x1.25 on the QRS only). A network fitted by MAE
alone learns that answer only on average and its sign per record is left to chance. The penalty of Gupta et
al. (2019, "How to incorporate monotonicity in deep networks while preserving flexibility", NeurIPS workshop
on ML with guarantees, arXiv:1909.10662) asks it pointwise: for a training beat ``x`` and the same beat with
its voltage raised by a random gain ``s``, ``f(s x) - f(x) >= slope * log(s)``, as a hinge in grams.

The slopes are half the ideal reader's (so the constraint never asks for more than the cohort's truth),
and the pairs share one forward pass so BatchNorm sees both in the same batch statistics.
"""

from __future__ import annotations

import math

import numpy as np

# Half of the ideal log-linear reader's response, in g per unit of log gain (docs/training.md, "How much an ideal
# reader moves"): every lead +1.2 g and QRS only +3.1 g at log(1.25) = 0.223.
SLOPE_EVERY_LEAD_G = 0.5 * 1.2 / math.log(1.25)
SLOPE_QRS_G = 0.5 * 3.1 / math.log(1.25)
GAIN_RANGE = (1.05, 1.30)
QRS_MARGIN_S = 0.010  # the QRS widened by 10 ms, then a cosine taper of 10 ms (evaluation.metamorphic uses this profile too)


def qrs_gain_profile(qrs_onset: np.ndarray, qrs_offset: np.ndarray, n_samples: int, fs: float,
                     margin_s: float = QRS_MARGIN_S) -> np.ndarray:
    """(n, n_samples) float32 weight per QRS: 1 inside the QRS widened by ``margin_s``, a cosine taper of
    the same length outside it, 0 elsewhere.

    Parameters
    ----------
    qrs_onset, qrs_offset : (n,) int
        Sample indices of each QRS: inside a beat window (``EcgDataset.qrs_onset``, training) or a whole
        conditioned window (the signal core's delineation, ``evaluation.metamorphic.qrs_weight``).
    n_samples : int
        Length of that window.
    fs : float
        Sampling rate (Hz).
    """
    margin = max(1, int(round(margin_s * fs)))
    index = np.arange(n_samples)[None, :]
    start = np.asarray(qrs_onset)[:, None] - margin
    stop = np.asarray(qrs_offset)[:, None] + margin
    outside = np.maximum(np.maximum(start - index, index - stop), 0) / margin
    return (0.5 + 0.5 * np.cos(np.pi * np.minimum(outside, 1.0))).astype(np.float32)


def raised_voltage(beats, qrs_profile, rng: np.random.Generator):
    """The batch with its voltage raised: even rows on every lead, odd rows on the QRS only.

    Parameters
    ----------
    beats : torch.Tensor (B, 12, L)
    qrs_profile : torch.Tensor (B, L)
        :func:`qrs_gain_profile` of each row.
    rng : numpy Generator
        Draws the gains, log-uniform in ``GAIN_RANGE``.

    Returns
    -------
    raised : torch.Tensor (B, 12, L)
    margin_g : torch.Tensor (B,)
        How much the estimate must rise at least, ``slope * log(gain)`` in grams.
    """
    import torch

    n = beats.shape[0]
    log_gain = rng.uniform(math.log(GAIN_RANGE[0]), math.log(GAIN_RANGE[1]), n)
    every_lead = (np.arange(n) % 2) == 0
    profile = torch.where(torch.from_numpy(every_lead)[:, None], torch.ones_like(qrs_profile), qrs_profile)
    gain = torch.from_numpy(np.expm1(log_gain).astype(np.float32)).to(beats.device)
    raised = beats * (1.0 + gain[:, None, None] * profile.to(beats.device)[:, None, :])
    slope = np.where(every_lead, SLOPE_EVERY_LEAD_G, SLOPE_QRS_G)
    return raised, torch.from_numpy((slope * log_gain).astype(np.float32)).to(beats.device)


def monotone_hinge(estimate, estimate_raised, margin_g):
    """Per-row penalty in grams: how far the raised beat's estimate falls short of ``estimate + margin_g``."""
    import torch

    return torch.relu(margin_g - (estimate_raised - estimate))
