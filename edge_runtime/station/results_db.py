"""Read-only queries of the result database for the Results screen (newest first, by id and date)."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from pathlib import Path

from edge_runtime.runtime.store import EXPORT_COLUMNS

PAGE_ROWS = 200
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SearchError(ValueError):
    """A search field the operator can correct (the message says how)."""


def parse_filters(patient_id: str, date: str) -> tuple[str | None, str | None]:
    """Validated search fields; empty means 'any'. :class:`SearchError` with plain words otherwise."""
    from edge_runtime.runtime.patient import PatientInputError, patient_from_operator

    patient_id, date = (patient_id or "").strip(), (date or "").strip()
    if patient_id:
        try:  # the same rule as the patient form
            patient_from_operator(patient_id=patient_id)
        except PatientInputError:
            raise SearchError("Patient ID: use letters, digits, '.', '_' or '-' (no spaces).") from None
    if date:
        try:
            if not _DATE.match(date):
                raise ValueError
            dt.date.fromisoformat(date)
        except ValueError:
            raise SearchError("Date: use the form YYYY-MM-DD, e.g. 2026-11-26.") from None
    return patient_id or None, date or None


def _connect(path: Path) -> sqlite3.Connection | None:
    if not Path(path).exists():
        return None
    connection = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=5.0)
    connection.row_factory = sqlite3.Row
    return connection


def search(path: Path, patient_id: str | None = None, date: str | None = None, limit: int | None = PAGE_ROWS) -> list[dict]:
    """Stored results (no raw windows), newest first; ``date`` is the UTC recording day ``YYYY-MM-DD``."""
    connection = _connect(path)
    if connection is None:
        return []
    clauses, values = [], []
    if patient_id:
        clauses.append("patient_id = ?")
        values.append(patient_id)
    if date:
        clauses.append("substr(recorded_utc, 1, 10) = ?")
        values.append(date)
    query = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM results"
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    query += " ORDER BY id DESC"
    if limit is not None:
        query += f" LIMIT {int(limit)}"
    try:
        rows = [dict(row) for row in connection.execute(query, values)]
    except sqlite3.OperationalError:  # no table yet: nothing stored
        return []
    finally:
        connection.close()
    for row in rows:
        try:
            row["flags"] = json.loads(row["flags"] or "[]")
        except ValueError:
            row["flags"] = []
        row["lvh"] = None if row["lvh"] is None else bool(row["lvh"])
    return rows


def stored_report(path: Path, result_id: int) -> dict | None:
    """The full stored report of ``result_id`` (with ``result_id`` set), or ``None``."""
    connection = _connect(path)
    if connection is None:
        return None
    try:
        row = connection.execute("SELECT id, report FROM results WHERE id = ?", (int(result_id),)).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        connection.close()
    if row is None:
        return None
    report = json.loads(row["report"])
    report["result_id"] = int(row["id"])
    return report
