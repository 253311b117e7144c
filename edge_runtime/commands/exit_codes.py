"""Exit codes of the ``elvmass`` commands, so a script can tell a result from a refusal (docs/runtime.md).

``0`` an estimate (status ``ok``); ``3`` no estimate (the report says why); ``4`` an estimate outside the
studied population (a number, marked); ``2`` usage (wrong or missing options, a patient-data conflict
left undecided); ``1`` an error (unreadable file, unusable database, device not found); ``130`` interrupted
(Ctrl-C); ``141`` the reader of the output went away (``| head``), as for any Unix tool on SIGPIPE.
"""

from __future__ import annotations

ESTIMATE = 0
ERROR = 1
USAGE = 2
NO_ESTIMATE = 3
OUTSIDE_POPULATION = 4
INTERRUPTED = 130
BROKEN_PIPE = 141

_BY_STATUS = {"ok": ESTIMATE, "no_estimate": NO_ESTIMATE, "outside_population": OUTSIDE_POPULATION}


def for_status(estimate_status: str) -> int:
    """The exit code of one result's ``estimate_status``."""
    return _BY_STATUS[estimate_status]


def for_session(statuses: list[str]) -> int:
    """A session's exit code: ``0`` when some window gave an in-population estimate, else ``4`` when some gave
    an estimate outside the population, else ``3`` (no window gave a number, or no window was completed)."""
    if "ok" in statuses:
        return ESTIMATE
    if "outside_population" in statuses:
        return OUTSIDE_POPULATION
    return NO_ESTIMATE
