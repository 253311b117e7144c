"""Calibration inputs for static INT8: real preprocessed beats plus training beats over the LV-mass range.

Real records go through the signal core (``edge_runtime.preprocess.analyze_record``) exactly as on
the device, so activation ranges include real amplitudes and noise, not only synthetic ones.
Training rows are picked at evenly spaced LV-mass quantiles so the output layer's range covers
the smallest and largest hearts (an INT8 output saturates outside its calibration range).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.contract import SEX_CODES, SEX_COLUMN, demographics_row, impute, parameters_row
from edge_runtime.record import NORMALIZED_AMPLITUDE_NOTE


@dataclass
class ModelInputs:
    """Rows of model inputs in raw units (``beats`` (n, 12, L), ``demographics`` (n, 4), ``parameters`` (n, 4))."""

    beats: np.ndarray
    demographics: np.ndarray
    parameters: np.ndarray
    sources: list[str] = field(default_factory=list)  # one label per row (record or subject)

    def __len__(self) -> int:
        return len(self.beats)

    def as_feeds(self) -> dict[str, np.ndarray]:
        """The dict the quantizers take: interface input name -> array."""
        return {"beat": self.beats, "demographics": self.demographics, "parameters": self.parameters}

    def rows(self, index: np.ndarray) -> "ModelInputs":
        return ModelInputs(self.beats[index], self.demographics[index], self.parameters[index],
                           [self.sources[i] for i in np.arange(len(self))[index]])

    @staticmethod
    def concat(parts: Iterable["ModelInputs"]) -> "ModelInputs":
        parts = [p for p in parts if len(p)]
        return ModelInputs(np.concatenate([p.beats for p in parts]).astype(np.float32),
                           np.concatenate([p.demographics for p in parts]).astype(np.float32),
                           np.concatenate([p.parameters for p in parts]).astype(np.float32),
                           [s for p in parts for s in p.sources])


def real_record_inputs(record_paths: Iterable[Path], imputation: Mapping[str, float], config=None,
                       max_beats_per_record: int = 8) -> tuple[ModelInputs, list[tuple[str, str]]]:
    """Beats of real 12-lead records through the device's preprocessing.

    Parameters
    ----------
    record_paths
        Record files ``edge_runtime.formats.read_record`` reads.
    imputation
        Values for unknown demographics/parameters. Unknown sex gives one copy of each beat per sex.
    config
        ``PreprocessConfig`` (default settings when ``None``).
    max_beats_per_record
        Beats taken per record (evenly spaced), so no long record dominates.

    Returns
    -------
    ModelInputs, list of (record, reason)
        The rows and the records left out with why (unreadable, not 12-lead, normalized
        amplitudes (LUDB), quality flags, no beats).
    """
    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import PreprocessConfig, analyze_record

    config = config or PreprocessConfig()
    parts, skipped = [], []
    for path in record_paths:
        try:
            record = read_record(path)
            if NORMALIZED_AMPLITUDE_NOTE in " ".join(record.notes or []):
                skipped.append((str(path), "amplitudes normalized per lead (not physiological voltages)"))
                continue
            analysis = analyze_record(record, config)
        except (ValueError, OSError) as error:
            skipped.append((str(path), str(error)))
            continue
        if not analysis.usable or len(analysis.beats) == 0:
            reason = "; ".join(f"{f.name}: {f.reason}" for f in analysis.flags) or "no beats"
            skipped.append((str(path), reason))
            continue
        take = np.unique(np.linspace(0, len(analysis.beats) - 1, min(max_beats_per_record, len(analysis.beats))).astype(int))
        beats = analysis.beats[take]
        row = demographics_row(record.patient)
        sexes = [SEX_CODES["M"], SEX_CODES["F"]] if np.isnan(row[SEX_COLUMN]) else [row[SEX_COLUMN]]
        for sex in sexes:
            row[SEX_COLUMN] = sex
            demo, params = impute(np.array([row] * len(beats)), np.array([parameters_row(analysis.parameters)] * len(beats)),
                                  imputation)
            parts.append(ModelInputs(beats.astype(np.float32), demo, params, [str(Path(path).name)] * len(beats)))
    if not parts:
        return ModelInputs(np.zeros((0, 12, config.beat_length), np.float32), np.zeros((0, 4), np.float32),
                           np.zeros((0, 4), np.float32)), skipped
    return ModelInputs.concat(parts), skipped


def lvm_range_rows(lvm_g: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` rows at evenly spaced LV-mass quantiles, always including the smallest and largest."""
    order = np.argsort(lvm_g, kind="stable")
    picks = np.unique(np.round(np.linspace(0, len(order) - 1, min(n, len(order)))).astype(int))
    return order[picks]


def input_extreme_rows(*columns: np.ndarray) -> np.ndarray:
    """Indices of the rows holding the smallest and the largest value of every column (NaN ignored).

    Calibration must span every input's range: a static INT8 scale fitted without the heaviest patient
    clips that patient's weight later (measured: a 133 kg held-out patient moved 23 g under INT8 when
    the calibration rows stopped at 117 kg).
    """
    picks: list[int] = []
    for values in columns:
        values = np.asarray(values, dtype=np.float64)
        for column in values.reshape(len(values), -1).T:
            if np.isfinite(column).any():
                picks += [int(np.nanargmin(column)), int(np.nanargmax(column))]
    return np.unique(np.asarray(picks, dtype=int))


def default_real_records(shared_data: Path | None) -> list[Path]:
    """The bundled real records plus the shared CinC 2021 / PTB 12-lead records when present.

    LUDB is left out on purpose: its header gains normalize every lead to 1 mV peak to peak.
    """
    from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD

    records = [CINC_LVH_RECORD, PTBXL_RECORD]
    if shared_data is not None:
        for folder in ("cinc2021", "ptbdb"):
            records.extend(sorted((shared_data / folder).rglob("*.hea")))
    return records
