"""The model contract: what the trained model reads, in which order and units, and how gaps are filled.

Training (``training.dataset``, ``training.trainer``, ``training.export``), INT8 calibration
(``quantization``) and the device (``edge_runtime.inference``, ``edge_runtime.runtime.estimate``)
all build the model's inputs here, so one reordered tuple cannot feed the model wrong columns.
The bundle specification (:mod:`edge_runtime.bundle_spec`) writes these names into every
export and manifest and refuses a document that orders them otherwise.

Graph inputs (raw units; normalization is inside the graph):

* ``beat`` ``(batch, 12, L)`` float32 mV, leads in ``edge_runtime.record.STANDARD_LEADS`` order;
* ``demographics`` ``(batch, 4)``: :data:`DEMOGRAPHIC_FEATURES`;
* ``parameters`` ``(batch, 4)``: :data:`MODEL_PARAMETERS`, the ECG parameters fed to the model (the
  signal core measures more: ``edge_runtime.preprocess.MEASURED_PARAMETERS``).

Output ``lvm_g`` ``(batch, 1)``: left-ventricular mass in grams. Imports only numpy and the stdlib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

INPUT_NAMES: tuple[str, ...] = ("beat", "demographics", "parameters")
OUTPUT_NAME = "lvm_g"

DEMOGRAPHIC_FEATURES: tuple[str, ...] = ("age_years", "sex", "height_cm", "weight_kg")
DEMOGRAPHIC_UNITS: tuple[str, ...] = ("years", "1 = male, 0 = female", "cm", "kg")
MODEL_PARAMETERS: tuple[str, ...] = ("qrs_ms", "p_axis", "r_axis", "t_axis")
MODEL_PARAMETER_UNITS: tuple[str, ...] = ("ms", "degrees", "degrees", "degrees")

DEMOGRAPHIC_COLUMN: dict[str, int] = {name: column for column, name in enumerate(DEMOGRAPHIC_FEATURES)}
SEX_COLUMN = DEMOGRAPHIC_COLUMN["sex"]
SEX_CODES: dict[str, float] = {"M": 1.0, "F": 0.0}
# Sex is never imputed: it picks the sex-specific model and the LVH threshold, and a guess would be silent.
IMPUTED_FEATURES: tuple[str, ...] = tuple(n for n in DEMOGRAPHIC_FEATURES + MODEL_PARAMETERS if n != "sex")


def sex_code(sex: str | None) -> float:
    """``1.0`` for ``"M"``, ``0.0`` for ``"F"``, NaN when unknown."""
    return SEX_CODES.get(sex or "", math.nan)


def demographics_row(patient: Any) -> list[float]:
    """One row of :data:`DEMOGRAPHIC_FEATURES` from a ``PatientContext`` (NaN where unknown)."""
    values = {"sex": sex_code(patient.sex)}
    for name in DEMOGRAPHIC_FEATURES:
        if name != "sex":
            value = getattr(patient, name)
            values[name] = math.nan if value is None else float(value)
    return [values[name] for name in DEMOGRAPHIC_FEATURES]


def parameters_row(parameters: Mapping[str, float]) -> list[float]:
    """One row of :data:`MODEL_PARAMETERS` from the signal core's parameter dict (NaN where unknown)."""
    row = []
    for name in MODEL_PARAMETERS:
        value = parameters.get(name)
        row.append(math.nan if value is None else float(value))
    return row


def model_inputs(patient: Any, parameters: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The model's demographics and parameters for one window, NaN where unknown, and the unknown names.

    Parameters
    ----------
    patient : edge_runtime.record.PatientContext
        What the operator or the file says (``None`` = unknown).
    parameters : mapping
        ``BeatAnalysis.parameters`` of the window (NaN if the signal core could not measure one).

    Returns
    -------
    demographics : ndarray, shape (4,), float32
        :data:`DEMOGRAPHIC_FEATURES` in raw units.
    ecg_parameters : ndarray, shape (4,), float32
        :data:`MODEL_PARAMETERS` in raw units.
    missing : list of str
        The names whose value is unknown, demographics first.
    """
    demographics = np.array(demographics_row(patient), dtype=np.float32)
    ecg_parameters = np.array(parameters_row(parameters), dtype=np.float32)
    missing = [name for name, value in zip(DEMOGRAPHIC_FEATURES, demographics) if not np.isfinite(value)]
    missing += [name for name, value in zip(MODEL_PARAMETERS, ecg_parameters) if not np.isfinite(value)]
    return demographics, ecg_parameters, missing


def impute(demographics: np.ndarray, parameters: np.ndarray,
           imputation: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 copies of ``(n, 4)`` demographics and parameters with NaN replaced by the imputation values.

    Parameters
    ----------
    demographics, parameters : ndarray, shape (n, 4)
        Columns ordered as :data:`DEMOGRAPHIC_FEATURES` and :data:`MODEL_PARAMETERS`; NaN = unknown.
    imputation : mapping
        A value for every name of :data:`IMPUTED_FEATURES` (training-data medians; the bundle's
        ``imputation``).

    Returns
    -------
    tuple of ndarray
        The filled copies. Sex is never imputed: an unknown sex stays NaN for the caller to refuse
        or route.

    Raises
    ------
    ValueError
        An array of the wrong shape, an infinite value, or an imputable name without a value.
    """
    filled = []
    for values, features in ((demographics, DEMOGRAPHIC_FEATURES), (parameters, MODEL_PARAMETERS)):
        values = np.array(values, dtype=np.float32, copy=True)
        if values.ndim != 2 or values.shape[1] != len(features):
            raise ValueError(f"expected shape (n, {len(features)}) [{', '.join(features)}], got {values.shape}")
        if not np.isfinite(values).all():  # one pass in the usual case (nothing missing): this runs once per window
            if np.isinf(values).any():
                raise ValueError(f"infinite value among {', '.join(features)}")
            missing = np.isnan(values)
            for column in np.flatnonzero(missing.any(axis=0)):
                name = features[column]
                if name not in IMPUTED_FEATURES:
                    continue
                if name not in imputation:
                    raise ValueError(f"{name} is unknown for some rows and the imputation table has no value for it")
                values[missing[:, column], column] = imputation[name]
        filled.append(values)
    return filled[0], filled[1]
