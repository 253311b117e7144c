"""Local result store: SQLite in WAL mode, one transaction per result, owner-only file.

Durability: ``synchronous=FULL`` with WAL makes every committed result survive a process kill
(``kill -9``) and a power cut; a result is either fully there or absent. The file holds health
data, so it is created ``0600`` and holds a pseudonymous id only (never a name).

The raw 10 s window is stored as int16 microvolts (1 uV resolution, +-32.7 mV range; larger
values are clipped, which the saturation flag already reports), delta-coded
(:mod:`edge_runtime.runtime.window_codec`; rows written before it keep their zlib codec and stay readable).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge_runtime.runtime.window_codec import LEGACY_ZLIB_CODEC, WINDOW_CODEC, decode_window, encode_window

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_utc TEXT NOT NULL,
    stored_utc TEXT NOT NULL,
    patient_id TEXT,
    age_years REAL, sex TEXT, height_cm REAL, weight_kg REAL,
    estimate_status TEXT NOT NULL,
    lvm_g REAL, lvm_low_g REAL, lvm_high_g REAL, lvm_index_g_m2 REAL, lvh INTEGER,
    n_beats INTEGER NOT NULL,
    flags TEXT NOT NULL,
    model_id TEXT, model_sha256 TEXT,
    source TEXT,
    window_fs REAL NOT NULL,
    window_leads TEXT NOT NULL,
    window_n_samples INTEGER NOT NULL,
    window_codec TEXT NOT NULL,
    window BLOB NOT NULL,
    report TEXT NOT NULL
);
"""
# Schema 2 (issue 18): patient provenance, BSA, the index interval and the three-state verdict. Added by
# ALTER TABLE so a version-1 database keeps every row (its new columns read NULL: not recorded then).
_ADDED_IN_2 = (("bsa_m2", "REAL"), ("lvm_index_low_g_m2", "REAL"), ("lvm_index_high_g_m2", "REAL"),
               ("lvh_verdict", "TEXT"), ("patient_sources", "TEXT"), ("patient_conflicts", "TEXT"))
EXPORT_COLUMNS = ("id", "recorded_utc", "stored_utc", "patient_id", "age_years", "sex", "height_cm", "weight_kg",
                  "estimate_status", "lvm_g", "lvm_low_g", "lvm_high_g", "lvm_index_g_m2", "lvh", "n_beats", "flags",
                  "model_id", "model_sha256", "source", "bsa_m2", "lvm_index_low_g_m2", "lvm_index_high_g_m2",
                  "lvh_verdict", "patient_sources", "patient_conflicts")
_JSON_COLUMNS = ("flags", "patient_sources", "patient_conflicts")


class StoreError(Exception):
    """The result database cannot be opened or used (not SQLite, a folder, no permission, newer schema)."""


def utc_now() -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class StoredWindow:
    """A raw window read back from the store."""

    signals_mv: np.ndarray
    fs: float
    lead_names: tuple[str, ...]


class ResultStore:
    """The SQLite result database.

    Parameters
    ----------
    path : str or Path
        Database file; created owner-only (0600) with its folder (0700) when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a result database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                # Create the file ourselves so it is never world-readable, even for an instant.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
        except OSError as error:
            raise StoreError(f"cannot create the result database {self.path}: {error.strerror or error}") from None
        # SQLite gives the -wal/-shm files the main file's permissions; the umask covers the rest.
        previous_umask = os.umask(0o077)
        self._db = None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except sqlite3.DatabaseError as error:  # includes OperationalError: not a database, read-only, locked
            if self._db is not None:
                self._db.close()
            raise StoreError(f"{self.path} cannot be used as a result database: {error}") from None
        finally:
            os.umask(previous_umask)
        self._db.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION` keeping every row."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer elvmass (schema {version}, this one reads "
                             f"{SCHEMA_VERSION}); update elvmass")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(_SCHEMA.strip().rstrip(";"))
            present = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
            for name, kind in _ADDED_IN_2:
                if name not in present:
                    self._db.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, report: dict, window_mv: np.ndarray, fs: float, lead_names: tuple[str, ...] | list[str],
            recorded_utc: str | None = None) -> int:
        """Store one result and its raw window in a single transaction; returns the row id.

        ``report`` is the dict of :func:`edge_runtime.runtime.report.build_report`.
        """
        patient = report.get("patient", {})
        interval = report.get("lvm_interval_g") or [None, None]
        model = report.get("model") or {}
        lvh = report.get("lvh")
        row = {
            "recorded_utc": recorded_utc or report.get("recorded_utc") or utc_now(),
            "stored_utc": utc_now(),
            "patient_id": patient.get("patient_id"),
            "age_years": patient.get("age_years"), "sex": patient.get("sex"),
            "height_cm": patient.get("height_cm"), "weight_kg": patient.get("weight_kg"),
            "estimate_status": report["estimate_status"],
            "lvm_g": report.get("lvm_g"), "lvm_low_g": interval[0], "lvm_high_g": interval[1],
            "lvm_index_g_m2": report.get("lvm_index_g_m2"),
            "lvh": None if lvh is None else int(bool(lvh)),
            "n_beats": int(report.get("n_beats", 0)),
            "flags": json.dumps(report.get("flags", [])),
            "model_id": model.get("id"), "model_sha256": model.get("sha256"),
            "source": report.get("source"),
            "window_fs": float(fs), "window_leads": " ".join(lead_names),
            "window_n_samples": int(np.asarray(window_mv).shape[1]),
            "window_codec": WINDOW_CODEC, "window": encode_window(window_mv),
            "report": json.dumps(report),
            "bsa_m2": patient.get("bsa_m2"),
            "lvm_index_low_g_m2": (report.get("lvm_index_interval_g_m2") or [None, None])[0],
            "lvm_index_high_g_m2": (report.get("lvm_index_interval_g_m2") or [None, None])[1],
            "lvh_verdict": report.get("lvh_verdict"),
            "patient_sources": json.dumps(report.get("patient_sources")),
            "patient_conflicts": json.dumps(report.get("patient_conflicts") or []),
        }
        columns = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        self._db.execute("BEGIN IMMEDIATE")  # one transaction per result
        try:
            cursor = self._db.execute(f"INSERT INTO results ({columns}) VALUES ({marks})", row)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return int(cursor.lastrowid)

    def results(self, limit: int | None = None) -> list[dict]:
        """Stored results (without the raw window), oldest first; ``flags`` decoded to a list."""
        query = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM results ORDER BY id"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        rows = [dict(row) for row in self._db.execute(query)]
        for row in rows:
            for name in _JSON_COLUMNS:  # NULL in rows stored before schema 2
                row[name] = None if row[name] is None else json.loads(row[name])
            row["lvh"] = None if row["lvh"] is None else bool(row["lvh"])
        return rows

    def report(self, result_id: int) -> dict:
        """The full JSON report stored with result ``result_id``."""
        row = self._db.execute("SELECT report FROM results WHERE id = ?", (result_id,)).fetchone()
        if row is None:
            raise KeyError(f"no result with id {result_id} in {self.path}")
        return json.loads(row["report"])

    def window(self, result_id: int) -> StoredWindow:
        """The raw window stored with result ``result_id``."""
        row = self._db.execute("SELECT window, window_fs, window_leads, window_codec FROM results WHERE id = ?",
                               (result_id,)).fetchone()
        if row is None:
            raise KeyError(f"no result with id {result_id} in {self.path}")
        if row["window_codec"] not in (WINDOW_CODEC, LEGACY_ZLIB_CODEC):
            raise ValueError(f"result {result_id}: unknown window codec {row['window_codec']!r}")
        leads = tuple(row["window_leads"].split())
        signals = decode_window(row["window"], len(leads), row["window_codec"])
        return StoredWindow(signals, float(row["window_fs"]), leads)

    def integrity_ok(self) -> bool:
        """``PRAGMA integrity_check`` says ok."""
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
