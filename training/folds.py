"""The paper's cross-validation folds: sort by LV mass, deal subjects to folds in turn (every fifth).

Every fold then spans the whole LV-mass range. A validation subset for epoch selection is drawn from
the training folds the same way, so the test fold is never looked at before the end.

With ``groups`` (the label table's ``subject_id``: one patient), the unit dealt is the patient, not
the ECG: patients are sorted by their mean LV mass and dealt every fifth, so all ECGs of one patient
land in the same fold (and on the same side of the validation split). Without groups (or with
every group of one ECG) the folds are exactly the per-ECG folds.
"""

from __future__ import annotations

import numpy as np


def _group_codes(groups: np.ndarray | None, n: int) -> np.ndarray:
    """Integer code per row (first appearance order); every row its own group when ``groups`` is None."""
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one entry per subject ({n}), got shape {groups.shape}")
    _, first, codes = np.unique(groups, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # renumber groups by first appearance: stable, input-ordered
    return order[codes.ravel()]


def _group_mean(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    n_groups = int(codes.max()) + 1 if codes.size else 0
    return np.bincount(codes, weights=values, minlength=n_groups) / np.bincount(codes, minlength=n_groups)


def paper_folds(lvm_g: np.ndarray, n_folds: int = 5, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0..n_folds-1) of every ECG.

    Parameters
    ----------
    lvm_g : ndarray, shape (n,)
        LV mass labels.
    n_folds : int
        Number of folds (the paper uses 5).
    groups : ndarray, shape (n,), optional
        Patient of each ECG (the label table's ``subject_id``). All ECGs of one patient get the
        same fold; patients are dealt in order of their mean LV mass.

    Returns
    -------
    ndarray of int, shape (n,)
        ``fold[i]`` is the test fold of ECG ``i``: the i-th lightest patient goes to fold ``rank % n_folds``.
        Ties are broken by the original order (stable sort), so the folds are deterministic.
    """
    lvm_g = np.asarray(lvm_g, dtype=float)
    if lvm_g.ndim != 1 or not np.all(np.isfinite(lvm_g)):
        raise ValueError("lvm_g must be a 1-D array of finite values")
    codes = _group_codes(groups, lvm_g.size)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_folds < 2 or n_groups < n_folds:
        raise ValueError(f"need at least n_folds={n_folds} >= 2 patients, got {n_groups}")
    order = np.argsort(_group_mean(lvm_g, codes), kind="stable")
    group_fold = np.empty(n_groups, dtype=int)
    group_fold[order] = np.arange(n_groups) % n_folds
    return group_fold[codes]


def validation_split(lvm_g: np.ndarray, train_index: np.ndarray, fraction: float = 0.1,
                     seed: int = 0, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (fit, validation) by the same every-k-th rule on LV mass.

    The phase of the every-k-th rule is chosen by ``seed`` so repeated runs are deterministic.
    With ``groups`` (one patient per entry of the whole data set) patients are split, never ECGs.
    """
    train_index = np.asarray(train_index)
    if not 0.0 < fraction < 0.5:
        raise ValueError("validation fraction must be in (0, 0.5)")
    step = max(2, int(round(1.0 / fraction)))
    lvm_g = np.asarray(lvm_g, dtype=float)
    codes = _group_codes(None if groups is None else np.asarray(groups)[train_index], train_index.size)
    n_groups = int(codes.max()) + 1 if codes.size else 0
    order = np.argsort(_group_mean(lvm_g[train_index], codes), kind="stable")
    phase = np.random.default_rng(seed).integers(min(step, max(n_groups, 1)))  # >= 1 validation patient
    group_is_val = np.empty(n_groups, dtype=bool)
    group_is_val[order] = (np.arange(n_groups) % step) == phase
    is_val = group_is_val[codes]
    return np.sort(train_index[~is_val]), np.sort(train_index[is_val])


def final_holdout(lvm_g: np.ndarray, fraction: float, seed: int = 0, groups: np.ndarray | None = None) -> np.ndarray:
    """Indices of the subjects the final model leaves out (every k-th by LV mass, phase from ``seed + 1``).

    Empty for ``fraction == 0``. They are still in the CV folds; only the exported model never sees
    them, which is what an INT8-vs-fp32 comparison on "held-out rows" needs. With ``groups``
    (patients) whole patients are held out.
    """
    if fraction == 0:
        return np.zeros(0, dtype=int)
    _, held = validation_split(lvm_g, np.arange(len(lvm_g)), fraction, seed + 1, groups=groups)
    return held
