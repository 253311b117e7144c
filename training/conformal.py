"""Split-conformal half-width of the LV-mass interval (Vovk et al. 2005; Lei et al. 2018).

The runtime reports ``median +- q``. With ``q`` the ``ceil((n + 1) * coverage)``-th smallest absolute residual on
``n`` held-out subjects, a new subject from the same population falls inside with probability >= ``coverage``.
``training.export`` writes ``q`` from the CV out-of-fold residuals; ``evaluation.interval_check`` re-checks it.
"""

from __future__ import annotations

import math

import numpy as np


def conformal_halfwidth(abs_residuals: np.ndarray, coverage: float = 0.9) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) * coverage)``-th smallest absolute residual.

    Raises
    ------
    ValueError
        When there are too few residuals for this coverage (``ceil((n + 1) * coverage) > n``).
    """
    values = np.sort(np.abs(np.asarray(abs_residuals, dtype=np.float64)))
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    rank = math.ceil((values.size + 1) * coverage)
    if rank > values.size:
        raise ValueError(f"{values.size} residuals are too few for {coverage:.0%} coverage")
    return float(values[rank - 1])
