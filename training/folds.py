"""The paper's cross-validation folds: sort by LV mass, deal subjects to folds in turn (every fifth).

Every fold then spans the whole LV-mass range. A validation subset for epoch selection is drawn from
the training folds the same way, so the test fold is never looked at before the end.
"""

from __future__ import annotations

import numpy as np


def paper_folds(lvm_g: np.ndarray, n_folds: int = 5) -> np.ndarray:
    """Fold index (0..n_folds-1) of every subject.

    Parameters
    ----------
    lvm_g : ndarray, shape (n,)
        LV mass labels.
    n_folds : int
        Number of folds (the paper uses 5).

    Returns
    -------
    ndarray of int, shape (n,)
        ``fold[i]`` is the test fold of subject ``i``: the i-th lightest subject goes to fold ``rank % n_folds``.
        Ties are broken by the original order (stable sort), so the folds are deterministic.
    """
    lvm_g = np.asarray(lvm_g, dtype=float)
    if lvm_g.ndim != 1 or not np.all(np.isfinite(lvm_g)):
        raise ValueError("lvm_g must be a 1-D array of finite values")
    if n_folds < 2 or lvm_g.size < n_folds:
        raise ValueError(f"need at least n_folds={n_folds} >= 2 subjects, got {lvm_g.size}")
    order = np.argsort(lvm_g, kind="stable")
    folds = np.empty(lvm_g.size, dtype=int)
    folds[order] = np.arange(lvm_g.size) % n_folds
    return folds


def validation_split(lvm_g: np.ndarray, train_index: np.ndarray, fraction: float = 0.1,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (fit, validation) by the same every-k-th rule on LV mass.

    The phase of the every-k-th rule is chosen by ``seed`` so repeated runs are deterministic.
    """
    train_index = np.asarray(train_index)
    if not 0.0 < fraction < 0.5:
        raise ValueError("validation fraction must be in (0, 0.5)")
    step = max(2, int(round(1.0 / fraction)))
    order = train_index[np.argsort(np.asarray(lvm_g)[train_index], kind="stable")]
    phase = np.random.default_rng(seed).integers(min(step, max(order.size, 1)))  # >= 1 validation subject
    is_val = (np.arange(order.size) % step) == phase
    return np.sort(order[~is_val]), np.sort(order[is_val])


def final_holdout(lvm_g: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of the subjects the final model leaves out (every k-th by LV mass, phase from ``seed + 1``).

    Empty for ``fraction == 0``. They are still in the CV folds; only the exported model never sees
    them, which is what an INT8-vs-fp32 comparison on "held-out rows" needs.
    """
    if fraction == 0:
        return np.zeros(0, dtype=int)
    _, held = validation_split(lvm_g, np.arange(len(lvm_g)), fraction, seed + 1)
    return held
