"""The fixed tuning / report split of the annotated records in ``../shared/data`` (docs/signal.md).

Detector and AF-flag settings are chosen on the ``tune`` half only; the ``report`` half is what the
documented accuracy is measured on (records, or for CPSC 2021 whole patients, never seen while
tuning). The split is by a rule fixed before tuning, not by looking at results:

* **mitdb**: even record numbers tune, odd record numbers report;
* **ludb**: even record numbers tune, odd report;
* **cpsc2021** (records ``data_<patient>_<n>``): by patient, patient 101 tunes (paroxysmal AF: AF
  and non-AF windows), patients 21 (no AF) and 84 (persistent AF) report;
* **cinc2021** (10 s 12-lead records with no AF label, used for the AF flag's specificity only):
  even digits of the record name tune, odd report.
"""

from __future__ import annotations

SPLITS = ("tune", "report")
CPSC2021_TUNE_PATIENTS = frozenset({"101"})


def _number(name: str) -> int:
    digits = "".join(character for character in name if character.isdigit())
    if not digits:
        raise ValueError(f"record name {name!r} has no number to split on")
    return int(digits)


def split_of(database: str, record: str) -> str:
    """``"tune"`` or ``"report"`` for a record of a shared database.

    Parameters
    ----------
    database : str
        ``"mitdb"``, ``"ludb"``, ``"cpsc2021"`` or ``"cinc2021"``.
    record : str
        Record name as in the file name (``"203"``, ``"data_84_1"``, ``"JS20014"``).

    Returns
    -------
    str
    """
    if database == "cpsc2021":
        parts = record.split("_")
        if len(parts) != 3 or parts[0] != "data":
            raise ValueError(f"cpsc2021 record names are data_<patient>_<n>, got {record!r}")
        return "tune" if parts[1] in CPSC2021_TUNE_PATIENTS else "report"
    if database in ("mitdb", "ludb", "cinc2021"):
        return "tune" if _number(record) % 2 == 0 else "report"
    raise ValueError(f"no split defined for database {database!r}")
