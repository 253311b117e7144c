"""Regression floors for the LUDB delineation numbers of docs/signal.md (same thresholds as the doc states).

The detector and AF floors belong to the detector's own tests; these hold QRS onset/offset and the intervals.
"""

from __future__ import annotations

import pytest

from evaluation.delineation_check import ludb_delineation_errors


@pytest.mark.shared
def test_ludb_qrs_boundaries_and_intervals_hold_the_documented_numbers(shared_data):
    s = ludb_delineation_errors(shared_data).summary()
    assert s["n"] >= 600, s  # matched complexes (609 documented)
    assert abs(s["onset_bias"]) <= 2 and s["onset_abs_median"] <= 6 and s["onset_p90"] <= 16, s
    assert abs(s["offset_bias"]) <= 1 and s["offset_abs_median"] <= 8 and s["offset_p90"] <= 22, s
    assert abs(s["qrs_ms_bias"]) <= 3 and s["qrs_ms_abs_median"] <= 8, s
    assert abs(s["pr_ms_bias"]) <= 6 and s["pr_ms_abs_median"] <= 6, s
    assert abs(s["qt_ms_bias"]) <= 6 and s["qt_ms_abs_median"] <= 11, s
