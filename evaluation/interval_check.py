"""Check and calibrate the LV-mass interval on held-out labelled records (split conformal).

The runtime reports ``median +- q``. With ``q`` the split-conformal quantile of the absolute
residuals on ``n`` held-out subjects (the ``ceil((n + 1) * coverage)``-th smallest), a new subject
from the same population falls inside with probability >= ``coverage`` (Vovk et al. 2005; Lei et al.
2018). :func:`interval_check` runs the device chain on a label table and returns that ``q`` and
the coverage the bundle's current interval actually has there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.conformal import conformal_halfwidth


@dataclass
class IntervalCheck:
    """What :func:`interval_check` measured."""

    n_records: int
    n_with_number: int
    statuses: dict[str, int]
    mae_g: float
    current_halfwidth_g: float | None
    current_coverage: float | None  # fraction of held-out subjects inside the bundle's interval
    conformal_halfwidth_g: float  # what the manifest's calibration field should hold
    coverage: float


def interval_check(analyzer: object, label_table: str | Path, coverage: float = 0.9) -> IntervalCheck:
    """Run the device chain on every record of a label table (interface 2) and score the interval.

    Parameters
    ----------
    analyzer : edge_runtime.runtime.pipeline.Analyzer
    label_table : str or Path
        ``labels.csv`` of subjects the model never saw (e.g. a synthetic cohort with another seed).
    coverage : float
        Nominal coverage of the conformal half-width.
    """
    from edge_runtime.formats import read_record
    from edge_runtime.formats.labels import read_label_table
    from edge_runtime.runtime.pipeline import analyze_file_record

    entries = read_label_table(Path(label_table))
    residuals, statuses = [], {}
    for entry in entries:
        best, _ = analyze_file_record(analyzer, read_record(entry.record_path), entry.patient)  # type: ignore[arg-type]
        status = best.report["estimate_status"]
        statuses[status] = statuses.get(status, 0) + 1
        if best.estimate.lvm_g is not None:
            residuals.append(best.estimate.lvm_g - entry.lvm_g)
    errors = np.abs(np.asarray(residuals, dtype=np.float64))
    if errors.size == 0:
        raise ValueError(f"{label_table}: no record gave a number")
    current = getattr(getattr(analyzer, "model", None), "interval_halfwidth_g", None)
    return IntervalCheck(
        n_records=len(entries), n_with_number=int(errors.size), statuses=statuses, mae_g=float(errors.mean()),
        current_halfwidth_g=current,
        current_coverage=None if current is None else float(np.mean(errors <= current)),
        conformal_halfwidth_g=conformal_halfwidth(errors, coverage), coverage=coverage)
