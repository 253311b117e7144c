"""Linear filters on the 8 independent leads when III, aVR, aVL and aVF are I/II combinations.

A front-end measures I, II and V1-V6; the runtime derives III, aVR, aVL and aVF from I and II
(:func:`edge_runtime.record.derive_limb_leads`). A linear, time-invariant filter commutes with
those combinations, so filtering the 8 independent leads and deriving the 4 others afterwards
gives the same signal as filtering all 12 (up to floating-point rounding: ~1e-7 relative in
float32) for two thirds of the work. The shortcut is taken only when the window's limb leads are
*exactly* what ``derive_limb_leads`` makes of its I and II (every device window); a recorded
12-lead file whose limb leads were rounded or measured separately is filtered lead by lead.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, derive_limb_leads, standard_from_independent

DERIVED_LEADS = ("III", "aVR", "aVL", "aVF")
_INDEPENDENT_ROWS = [STANDARD_LEADS.index(name) for name in INDEPENDENT_LEADS]
_DERIVED_ROWS = [STANDARD_LEADS.index(name) for name in DERIVED_LEADS]


def derived_exactly(signals: np.ndarray, lead_names: tuple[str, ...]) -> bool:
    """Whether ``signals`` (standard 12-lead order) holds limb leads derived from its I and II, bit for bit."""
    if tuple(lead_names) != STANDARD_LEADS or signals.ndim != 2:
        return False
    derived = derive_limb_leads(signals[0], signals[1])
    return all(np.array_equal(signals[row], derived[name]) for row, name in zip(_DERIVED_ROWS, DERIVED_LEADS))


def every_lead(linear_filter: Callable[[np.ndarray], np.ndarray], signals: np.ndarray) -> np.ndarray:
    """``linear_filter(signals)``: the lead-by-lead counterpart of :func:`filter_independent` (any window)."""
    return linear_filter(signals)


def filter_independent(linear_filter: Callable[[np.ndarray], np.ndarray], signals: np.ndarray) -> np.ndarray:
    """``linear_filter`` of a standard 12-lead window, run on its 8 independent leads only.

    Parameters
    ----------
    linear_filter : callable
        ``(n_leads, n) -> (n_leads, n)``, linear and the same for every lead (a filter, not a
        detector).
    signals : ndarray, shape (12, n)
        Standard lead order, with :func:`derived_exactly` true.

    Returns
    -------
    ndarray, shape (12, n)
        The filtered independent leads, and III, aVR, aVL, aVF derived from the filtered I and II
        in the filter's output dtype.
    """
    return standard_from_independent(linear_filter(signals[_INDEPENDENT_ROWS]))
