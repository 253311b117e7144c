"""The label table: a site's CSV manifest pointing training at its own ECGs and LV masses.

Header ``record,lvm_g,age_years,sex,height_cm,weight_kg`` plus the optional columns
``subject_id,ecg_time,lvm_time,qrs_ms,p_axis,r_axis,t_axis`` (other columns are ignored).
``record`` is a path relative to the CSV's folder (WFDB ``.hea``, ``.xml``, ``.csv``, ...); ``sex``
is ``M`` or ``F``; an empty cell means unknown (``lvm_g`` and ``record`` are required). Row numbers
in errors are line numbers of the file (the header is line 1).

``subject_id`` names the PATIENT: several rows (ECGs) may share it, and training keeps all of them
in one cross-validation fold. When the column is absent or empty the record's file stem stands in
(one patient per ECG), with a :class:`RepeatedPatientWarning` when file names look like several
ECGs of one patient (``P12_1``, ``P12_2``). ``closest_ecg=True`` applies the paper's rule: one ECG
per LV-mass measurement (same ``subject_id`` and ``lvm_time``), the one closest in time to it.
"""

from __future__ import annotations

import csv
import io
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge_runtime.formats.limits import read_limited
from edge_runtime.record import PatientContext, RecordError

REQUIRED_COLUMNS = ("record", "lvm_g", "age_years", "sex", "height_cm", "weight_kg")
PARAMETER_COLUMNS = ("qrs_ms", "p_axis", "r_axis", "t_axis")
TIME_COLUMNS = ("ecg_time", "lvm_time")  # ISO 8601 date or date-time (YYYY-MM-DD[THH:MM[:SS]])
OPTIONAL_COLUMNS = ("subject_id",) + TIME_COLUMNS + PARAMETER_COLUMNS
LVM_RANGE_G = (0.0, 1000.0)  # exclusive low, inclusive high: no human LV weighs more than 1 kg
MAX_PROBLEMS_LISTED = 20


@dataclass(frozen=True)
class LabelEntry:
    """One row of the label table.

    ``parameters`` always has the keys ``qrs_ms, p_axis, r_axis, t_axis``; NaN means unknown.
    ``subject_id`` is the patient; it defaults to the record's file stem when the column is absent
    or empty (``subject_id_from_file`` is then True). ``ecg_time``/``lvm_time`` are ``None`` when unknown.
    """

    record_path: Path
    lvm_g: float
    patient: PatientContext
    parameters: dict[str, float]
    subject_id: str
    row: int
    subject_id_from_file: bool = False
    ecg_time: datetime | None = None
    lvm_time: datetime | None = None


class RepeatedPatientWarning(UserWarning):
    """File names suggest several ECGs of one patient, but the table has no ``subject_id`` for them."""


class LabelTableError(RecordError):
    """A label table with problems; ``problems`` lists each one as ``row N: ...``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_LISTED]
        more = f"; ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(source, "; ".join(shown) + more)


def read_label_table(path: str | Path, *, require_records: bool = True, closest_ecg: bool = False) -> list[LabelEntry]:
    """Read and validate a label table.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    require_records : bool
        Check that every ``record`` file exists (default). Turn off only to inspect a table whose
        records are elsewhere.
    closest_ecg : bool
        The paper's rule: keep one ECG per LV-mass measurement (rows with the same ``subject_id``
        and ``lvm_time``), the one whose ``ecg_time`` is closest to ``lvm_time`` (ties: the earlier
        row). Needs ``subject_id``, ``ecg_time`` and ``lvm_time`` in every row.

    Returns
    -------
    list of LabelEntry
        In file order.

    Raises
    ------
    LabelTableError
        Listing every problem with its row: missing columns, non-numeric or out-of-range LV mass,
        impossible age/height/weight/sex, non-numeric parameters, unreadable times, a record listed
        twice, file-stem subject ids that collide (give ``subject_id``), missing record files; with
        ``closest_ecg``, missing ids/times and one measurement with two different LV masses.

    Warns
    -----
    RepeatedPatientWarning
        When ``subject_id`` is missing and file names suggest several ECGs of one patient.
    """
    path = Path(path)
    source = str(path)
    try:
        text = read_limited(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LabelTableError(source, ["not UTF-8 text"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise LabelTableError(source, [f"row 1: missing column(s) {', '.join(missing)} (header is {header})"])
    reader.fieldnames = header
    entries: list[LabelEntry] = []
    problems: list[str] = []
    first_row_of: dict[str, int] = {}
    first_row_of_record: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:  # more cells than header columns
            problems.append(f"row {line}: more cells than header columns")
            continue
        cells = {key: (value or "").strip() for key, value in row.items()}
        if not any(cells.values()):
            continue
        entry, row_problems = _parse_row(cells, line, path.parent, require_records)
        problems.extend(row_problems)
        if entry is None:
            continue
        record_key = str(entry.record_path)
        if record_key in first_row_of_record:
            problems.append(f"row {line}: record {cells['record']!r} already listed in row {first_row_of_record[record_key]}")
            continue
        if entry.subject_id_from_file and entry.subject_id in first_row_of:
            # two files with one stem in different folders: never silently one patient
            problems.append(f"row {line}: subject_id {entry.subject_id!r} (from the file name) already used in row "
                            f"{first_row_of[entry.subject_id]}; give subject_id")
            continue
        first_row_of.setdefault(entry.subject_id, line)
        first_row_of_record[record_key] = line
        entries.append(entry)
    if closest_ecg and not problems:
        entries, closest_problems = closest_ecg_per_measurement(entries)
        problems.extend(closest_problems)
    if problems:
        raise LabelTableError(source, problems)
    if not entries:
        raise LabelTableError(source, ["no data rows"])
    _warn_if_repeated_patients(entries, source)
    return entries


# A trailing "_2", "-v3", "_ecg1", "_2019-03-04" or "_20190304" after a patient part: how sites name
# several ECGs of one patient. A bare number ("00012", "JS00001") is not read as a repeat.
_REPEAT_SUFFIX = re.compile(r"^(?P<patient>.*?[A-Za-z0-9])[_\-. ](?:ecg|v|visit|rec)?\d[\d\-]*$", re.IGNORECASE)


def patient_stem(stem: str) -> str:
    """The file stem without a trailing repeat/date suffix (``P12_2`` -> ``P12``); unchanged otherwise."""
    match = _REPEAT_SUFFIX.match(stem)
    return match.group("patient") if match else stem


def _warn_if_repeated_patients(entries: list[LabelEntry], source: str) -> None:
    by_patient: dict[str, list[str]] = {}
    for entry in entries:
        if entry.subject_id_from_file:
            by_patient.setdefault(patient_stem(entry.subject_id), []).append(entry.subject_id)
    repeated = {k: v for k, v in by_patient.items() if len(v) > 1}
    if repeated:
        example = next(iter(repeated.items()))
        warnings.warn(f"{source}: no subject_id, but {len(repeated)} file-name group(s) look like several ECGs of one "
                      f"patient (e.g. {', '.join(example[1][:3])}); each ECG is treated as its own patient, so one "
                      "patient may land in training and test folds. Add a subject_id column.",
                      RepeatedPatientWarning, stacklevel=3)


def closest_ecg_per_measurement(entries: list[LabelEntry]) -> tuple[list[LabelEntry], list[str]]:
    """One ECG per LV-mass measurement (``subject_id``, ``lvm_time``): the closest in time. Problems listed."""
    problems = []
    for entry in entries:
        missing = [name for name, value in (("subject_id", None if entry.subject_id_from_file else entry.subject_id),
                                            ("ecg_time", entry.ecg_time), ("lvm_time", entry.lvm_time)) if value is None]
        if missing:
            problems.append(f"row {entry.row}: closest-ECG rule needs {', '.join(missing)}")
    if problems:
        return entries, problems
    best: dict[tuple[str, datetime], LabelEntry] = {}
    for entry in entries:
        key = (entry.subject_id, entry.lvm_time)
        kept = best.get(key)
        if kept is not None and kept.lvm_g != entry.lvm_g:
            problems.append(f"row {entry.row}: LV mass {entry.lvm_g:g} g differs from row {kept.row} "
                            f"({kept.lvm_g:g} g) for the same measurement ({entry.subject_id}, {entry.lvm_time:%Y-%m-%d %H:%M})")
            continue
        if kept is None or abs(entry.ecg_time - entry.lvm_time) < abs(kept.ecg_time - kept.lvm_time):
            best[key] = entry
    chosen = {id(e) for e in best.values()}
    return [e for e in entries if id(e) in chosen], problems


def _parse_time(text: str) -> datetime:
    """ISO 8601 date or date-time; raises ValueError otherwise."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is None else value.astimezone(timezone.utc).replace(tzinfo=None)  # naive = as written


def _parse_row(cells: dict[str, str], line: int, folder: Path, require_records: bool) -> tuple[LabelEntry | None, list[str]]:
    problems: list[str] = []

    def number(column: str) -> float | None:
        text = cells.get(column, "")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            problems.append(f"row {line}: {column}={text!r} is not a number")
            return None
        if not math.isfinite(value):
            problems.append(f"row {line}: {column}={text!r} is not finite")
            return None
        return value

    record_text = cells["record"]
    record_path = folder / record_text
    if not record_text:
        problems.append(f"row {line}: record is empty")
    elif require_records and not record_path.is_file():
        problems.append(f"row {line}: record file {record_path} not found")
    lvm_g = number("lvm_g")
    if lvm_g is None and not cells["lvm_g"]:
        problems.append(f"row {line}: lvm_g is empty")
    elif lvm_g is not None and not LVM_RANGE_G[0] < lvm_g <= LVM_RANGE_G[1]:
        problems.append(f"row {line}: lvm_g={lvm_g:g} outside {LVM_RANGE_G[0]:g} < LVM <= {LVM_RANGE_G[1]:g} g")
        lvm_g = None
    sex = cells["sex"].upper() or None
    patient = PatientContext(
        age_years=number("age_years"), sex=sex, height_cm=number("height_cm"), weight_kg=number("weight_kg")
    )
    problems.extend(f"row {line}: {problem}" for problem in patient.problems())
    parameters = {name: (value if (value := number(name)) is not None else math.nan) for name in PARAMETER_COLUMNS}
    times = {}
    for column in TIME_COLUMNS:
        text = cells.get(column, "")
        times[column] = None
        if text:
            try:
                times[column] = _parse_time(text)
            except ValueError:
                problems.append(f"row {line}: {column}={text!r} is not an ISO 8601 date/time (YYYY-MM-DD[THH:MM])")
    given_id = cells.get("subject_id", "")
    subject_id = given_id or Path(record_text).stem
    if problems or lvm_g is None:
        return None, problems
    entry = LabelEntry(record_path, lvm_g, patient, parameters, subject_id, line, subject_id_from_file=not given_id,
                       ecg_time=times["ecg_time"], lvm_time=times["lvm_time"])
    return entry, problems
