"""The label table: a site's CSV manifest pointing training at its own ECGs and LV masses.

Header ``record,lvm_g,age_years,sex,height_cm,weight_kg`` plus the optional columns
``subject_id,qrs_ms,p_axis,r_axis,t_axis`` (other columns are ignored). ``record`` is a path
relative to the CSV's folder (WFDB ``.hea``, ``.xml``, ``.csv``, ...); ``sex`` is ``M`` or ``F``;
an empty cell means unknown (``lvm_g`` and ``record`` are required). Row numbers in errors are
line numbers of the file (the header is line 1).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.formats.limits import read_limited
from edge_runtime.record import PatientContext, RecordError

REQUIRED_COLUMNS = ("record", "lvm_g", "age_years", "sex", "height_cm", "weight_kg")
PARAMETER_COLUMNS = ("qrs_ms", "p_axis", "r_axis", "t_axis")
OPTIONAL_COLUMNS = ("subject_id",) + PARAMETER_COLUMNS
LVM_RANGE_G = (0.0, 1000.0)  # exclusive low, inclusive high: no human LV weighs more than 1 kg
MAX_PROBLEMS_LISTED = 20


@dataclass(frozen=True)
class LabelEntry:
    """One row of the label table.

    ``parameters`` always has the keys ``qrs_ms, p_axis, r_axis, t_axis``; NaN means unknown.
    ``subject_id`` defaults to the record's file stem when the column is absent or empty.
    """

    record_path: Path
    lvm_g: float
    patient: PatientContext
    parameters: dict[str, float]
    subject_id: str
    row: int


class LabelTableError(RecordError):
    """A label table with problems; ``problems`` lists each one as ``row N: ...``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_PROBLEMS_LISTED]
        more = f"; ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(source, "; ".join(shown) + more)


def read_label_table(path: str | Path, *, require_records: bool = True) -> list[LabelEntry]:
    """Read and validate a label table.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    require_records : bool
        Check that every ``record`` file exists (default). Turn off only to inspect a table whose
        records are elsewhere.

    Returns
    -------
    list of LabelEntry
        In file order.

    Raises
    ------
    LabelTableError
        Listing every problem with its row: missing columns, non-numeric or out-of-range LV mass,
        impossible age/height/weight/sex, non-numeric parameters, duplicate subject ids, missing
        record files.
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
        if entry.subject_id in first_row_of:
            problems.append(f"row {line}: subject_id {entry.subject_id!r} already used in row {first_row_of[entry.subject_id]}")
            continue
        first_row_of[entry.subject_id] = line
        entries.append(entry)
    if problems:
        raise LabelTableError(source, problems)
    if not entries:
        raise LabelTableError(source, ["no data rows"])
    return entries


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
    subject_id = cells.get("subject_id", "") or Path(record_text).stem
    if problems or lvm_g is None:
        return None, problems
    entry = LabelEntry(record_path, lvm_g, patient, parameters, subject_id, line)
    return entry, problems
