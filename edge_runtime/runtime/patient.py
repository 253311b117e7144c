"""Operator input -> a validated :class:`PatientContext`, with messages a clinician can act on."""

from __future__ import annotations

import math
import re

from edge_runtime.record import PatientContext, normalize_sex

# A pseudonymous id: letters, digits and . _ - only, no spaces (a space is how names look).
_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# What the operator may enter; the model's training population is narrower and is checked against
# the bundle, not here.
OPERATOR_LIMITS = {
    "age_years": (18.0, 110.0, "years"),
    "height_cm": (100.0, 230.0, "cm"),
    "weight_kg": (25.0, 300.0, "kg"),
}


class PatientInputError(ValueError):
    """Operator input that cannot describe a real adult patient; the message lists every problem."""


def _number(name: str, value: object, problems: list[str]) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        problems.append(f"{name}: {value!r} is not a number")
        return None
    low, high, unit = OPERATOR_LIMITS[name]
    if not math.isfinite(number) or not low <= number <= high:
        problems.append(f"{name}: {value} {unit} is impossible here (expected {low:g}-{high:g} {unit})")
        return None
    return number


def patient_from_operator(age: object = None, sex: object = None, height: object = None, weight: object = None,
                          patient_id: object = None) -> PatientContext:
    """Validate what the operator typed and return the patient context.

    Parameters
    ----------
    age, height, weight : number or str, optional
        Age in years, height in cm, weight in kg. ``None`` or empty = unknown (imputed later as
        the model bundle says, and listed in the result's flags).
    sex : str, optional
        ``M``/``F`` (``male``/``female`` accepted).
    patient_id : str, optional
        A pseudonymous id (letters, digits, ``._-``, no spaces). Names are refused.

    Returns
    -------
    PatientContext

    Raises
    ------
    PatientInputError
        Listing every impossible value, e.g. ``height_cm: 17 cm is impossible here (expected 100-230 cm)``.
    """
    problems: list[str] = []
    values = {name: _number(name, raw, problems)
              for name, raw in (("age_years", age), ("height_cm", height), ("weight_kg", weight))}
    sex_code = None
    if sex is not None and str(sex).strip():
        sex_code = normalize_sex(sex)
        if sex_code is None:
            problems.append(f"sex: {sex!r} is not M or F")
    pseudonym = None
    if patient_id is not None and str(patient_id).strip():
        pseudonym = str(patient_id).strip()
        if not _PSEUDONYM.match(pseudonym):
            problems.append(f"id: {pseudonym!r} is not a pseudonymous id (use letters, digits, '.', '_', '-'; "
                            "no spaces, never a name)")
    if problems:
        raise PatientInputError("patient context refused: " + "; ".join(problems))
    return PatientContext(sex=sex_code, patient_id=pseudonym, **values).validated()


def merge_patient(operator: PatientContext, from_file: PatientContext) -> PatientContext:
    """Operator values win; the file fills what the operator left empty."""
    fields = ("age_years", "sex", "height_cm", "weight_kg", "patient_id")
    merged = {name: getattr(operator, name) if getattr(operator, name) is not None else getattr(from_file, name)
              for name in fields}
    return PatientContext(**merged)
