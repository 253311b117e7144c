"""Operator input -> a validated :class:`PatientContext`, with messages a clinician can act on."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

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


# --- where each value came from --------------------------------------------------------------

PATIENT_FIELDS = ("age_years", "sex", "height_cm", "weight_kg")
SOURCE_FILE = "file"
SOURCE_OPERATOR = "operator"
SOURCE_IMPUTED = "imputed"
PREFER_CHOICES = (SOURCE_FILE, SOURCE_OPERATOR)
# Differences below these are rounding (a header's 77 vs an entered 77.4), not a disagreement.
_SAME_WITHIN = {"age_years": 1.0, "height_cm": 1.0, "weight_kg": 1.0}
_FIELD_WORDS = {"age_years": ("age", "y"), "sex": ("sex", ""), "height_cm": ("height", "cm"),
                "weight_kg": ("weight", "kg")}


def field_word(name: str) -> str:
    """The operator's word for a patient field (``height_cm`` -> ``height``)."""
    return _FIELD_WORDS.get(name, (name, ""))[0]


def format_value(name: str, value: object) -> str:
    """``77 y``, ``F``, ``160 cm``: a patient value as the operator reads it."""
    if value is None:
        return "unknown"
    unit = _FIELD_WORDS.get(name, ("", ""))[1]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


@dataclass(frozen=True)
class PatientConflict:
    """The file and the operator disagree on one field."""

    field: str
    file_value: object
    operator_value: object
    used: str | None = None  # "file", "operator", or None when nothing was used (refused)

    def text(self) -> str:
        """``sex: file F, entered M`` (+ which one was used)."""
        used = "" if self.used is None else f" (used the {'file' if self.used == SOURCE_FILE else 'entered'} value)"
        return (f"{field_word(self.field)}: file {format_value(self.field, self.file_value)}, entered "
                f"{format_value(self.field, self.operator_value)}{used}")

    def to_dict(self) -> dict:
        return {"field": self.field, "file": self.file_value, "operator": self.operator_value, "used": self.used}


class PatientConflictError(PatientInputError):
    """The file and the operator disagree and nobody said which to use; the message names both values."""

    def __init__(self, conflicts: list[PatientConflict]) -> None:
        self.conflicts = conflicts
        listed = "; ".join(conflict.text() for conflict in conflicts)
        super().__init__(f"the file and the entered patient data disagree: {listed}. Check the patient, then "
                         "pass --prefer file or --prefer operator")


@dataclass
class PatientData:
    """The patient context used for the estimate, where each value came from, and any disagreement.

    ``sources[name]`` is ``"file"``, ``"operator"`` or ``None`` (unknown: the bundle imputes it when it
    can, see :func:`PatientData.sources_after`).
    """

    patient: PatientContext
    sources: dict[str, str | None]
    conflicts: list[PatientConflict] = field(default_factory=list)
    prefer: str | None = None

    def sources_after(self, imputed: list[str] | tuple[str, ...] = ()) -> dict[str, str | None]:
        """Sources with the fields the model imputed marked ``"imputed"``."""
        return {name: (SOURCE_IMPUTED if source is None and name in imputed else source)
                for name, source in self.sources.items()}


def operator_only(patient: PatientContext) -> PatientData:
    """Provenance when every value came from the operator (a live stream: there is no file)."""
    return PatientData(patient, {name: (SOURCE_OPERATOR if getattr(patient, name) is not None else None)
                                 for name in PATIENT_FIELDS})


def _disagree(name: str, file_value: object, operator_value: object) -> bool:
    if file_value is None or operator_value is None:
        return False
    if name in _SAME_WITHIN:
        return abs(float(file_value) - float(operator_value)) >= _SAME_WITHIN[name]  # type: ignore[arg-type]
    return file_value != operator_value


def resolve_patient(operator: PatientContext, from_file: PatientContext, prefer: str | None = None) -> PatientData:
    """Combine the operator's entries with the file's header, recording where each value came from.

    Parameters
    ----------
    operator, from_file : PatientContext
        What was entered, and what the file says.
    prefer : {"file", "operator"}, optional
        Which side wins where they disagree. ``None`` (the default) refuses a disagreement: silently
        replacing a file's sex or age can flip the verdict.

    Returns
    -------
    PatientData

    Raises
    ------
    PatientConflictError
        When they disagree and ``prefer`` is ``None``; the message names both values of every field.
    """
    if prefer not in (None, *PREFER_CHOICES):
        raise ValueError(f"prefer must be one of {PREFER_CHOICES}, got {prefer!r}")
    disagreements = [name for name in PATIENT_FIELDS
                     if _disagree(name, getattr(from_file, name), getattr(operator, name))]
    if disagreements and prefer is None:
        raise PatientConflictError([PatientConflict(name, getattr(from_file, name), getattr(operator, name))
                                    for name in disagreements])
    values: dict[str, object] = {}
    sources: dict[str, str | None] = {}
    for name in PATIENT_FIELDS:
        entered, filed = getattr(operator, name), getattr(from_file, name)
        if name in disagreements:
            use_file = prefer == SOURCE_FILE
        else:  # agreeing or one-sided: the entered value (the operator saw the patient), else the file's
            use_file = entered is None
        values[name] = filed if use_file else entered
        sources[name] = None if values[name] is None else (SOURCE_FILE if use_file else SOURCE_OPERATOR)
    patient_id = operator.patient_id if operator.patient_id is not None else from_file.patient_id
    conflicts = [PatientConflict(name, getattr(from_file, name), getattr(operator, name), prefer)
                 for name in disagreements]
    return PatientData(PatientContext(patient_id=patient_id, **values), sources, conflicts,  # type: ignore[arg-type]
                       prefer if disagreements else None)
