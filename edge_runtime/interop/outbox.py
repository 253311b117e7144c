"""The outbox: send stored results to the clinic's FHIR server when the network is up.

Off unless ``fhir_endpoint`` is set in the clinic config. Each pending result becomes its FHIR
resources (:mod:`edge_runtime.interop.fhir_results`) sent one by one as ``PUT [base]/Type/id``,
the DiagnosticReport last. Ids derive from the result, so a resend (after a lost response, a crash,
a server failing mid-batch) overwrites the same resources and never duplicates them. A result is
marked sent only after every PUT of it returned 2xx.

State lives in its own table ``fhir_outbox`` of the result database (one row per result and
endpoint); the ``results`` table is only read. Transient failures (connection errors, timeouts,
408/429/5xx) are retried ``max_attempts`` times with exponential back-off and then end the batch,
leaving the rest pending; other answers (4xx) are permanent for that result, recorded with the
server's reason, and the batch goes on with the next result.
"""

from __future__ import annotations

import json
import sqlite3
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge_runtime.config import fhir_endpoint_allowed
from edge_runtime.interop.fhir_results import DEFAULT_PATIENT_ID_SYSTEM, build_result_resources
from edge_runtime.runtime.store import ResultStore, utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fhir_outbox (
    result_id INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    sent_utc TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_utc TEXT,
    last_error TEXT,
    PRIMARY KEY (result_id, endpoint)
);
"""
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 60.0


class OutboxError(ValueError):
    """The outbox cannot run (no endpoint, an endpoint that is not https)."""


class _Permanent(Exception):
    """The server refused this request; retrying it unchanged will not help."""


class _Transient(Exception):
    """The server or the network failed every attempt; try again later."""


@dataclass
class SendReport:
    """What one :meth:`Outbox.send` did."""

    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    stopped: str | None = None  # why the batch ended early (endpoint unreachable), else None
    pending: int = 0  # results still not sent after this run


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` without a trailing slash, or :class:`OutboxError` when it is not https (or loopback http)."""
    if not fhir_endpoint_allowed(endpoint):
        raise OutboxError(f"FHIR endpoint {endpoint!r} must be https:// (http:// only to 127.0.0.1)")
    return endpoint.rstrip("/")


class Outbox:
    """Sender of stored results to one FHIR endpoint.

    Parameters
    ----------
    db_path : str or Path
        The result database (``storage_path``); the outbox adds its own table to it.
    endpoint : str
        FHIR base URL (``https://host/fhir``).
    token : str
        Bearer token, sent in the Authorization header ("" sends none).
    patient_id_system : str
        Identifier system of the pseudonymous patient ids.
    max_attempts : int
        Tries per request before the endpoint is considered down.
    backoff_s : float
        First wait between tries; doubled each time, at most 60 s.
    timeout_s : float
        Socket timeout per request.
    sleep : callable
        Injected for tests (defaults to :func:`time.sleep`).
    """

    def __init__(self, db_path: str | Path, endpoint: str, token: str = "", *,
                 patient_id_system: str = DEFAULT_PATIENT_ID_SYSTEM, max_attempts: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.db_path = Path(db_path)
        self.endpoint = check_endpoint(endpoint)
        self._token = token
        self.patient_id_system = patient_id_system
        self.max_attempts = max(1, int(max_attempts))
        self.backoff_s = max(0.0, float(backoff_s))
        self.timeout_s = float(timeout_s)
        self._sleep = sleep
        self._ssl = ssl.create_default_context()  # certificate and host name verified
        # No redirect handler: a PUT must not be re-sent (with its token) to wherever a 3xx points.
        self._opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self._ssl))
        if not self.db_path.exists():
            raise OutboxError(f"no result database at {self.db_path}")
        with ResultStore(self.db_path):  # creates the results table (and WAL mode) when it is new
            pass
        self._db = sqlite3.connect(self.db_path, isolation_level=None, timeout=10.0)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    @classmethod
    def from_config(cls, config, db_path: str | Path | None = None, **kwargs) -> "Outbox":
        """The outbox the clinic config describes; :class:`OutboxError` when it has no ``fhir_endpoint``."""
        if not config.fhir_endpoint:
            raise OutboxError("the outbox is off: set fhir_endpoint (and fhir_token) in the clinic config")
        return cls(db_path or config.storage_file, config.fhir_endpoint, config.fhir_token,
                   patient_id_system=config.fhir_patient_id_system, max_attempts=config.fhir_max_attempts,
                   backoff_s=config.fhir_backoff_s, timeout_s=config.fhir_timeout_s, **kwargs)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pending_ids(self) -> list[int]:
        """Ids of stored results not yet acknowledged by this endpoint, oldest first."""
        query = ("SELECT id FROM results WHERE id NOT IN (SELECT result_id FROM fhir_outbox "
                 "WHERE endpoint = ? AND sent_utc IS NOT NULL) ORDER BY id")
        return [row[0] for row in self._db.execute(query, (self.endpoint,))]

    def state(self) -> list[dict]:
        """The outbox rows of this endpoint (sent time, attempts, last error per result)."""
        cursor = self._db.execute("SELECT result_id, sent_utc, attempts, last_attempt_utc, last_error FROM fhir_outbox "
                                  "WHERE endpoint = ? ORDER BY result_id", (self.endpoint,))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row)) for row in cursor]

    def send(self, limit: int | None = None) -> SendReport:
        """Send pending results (at most ``limit``); see the module docstring for the rules."""
        report = SendReport()
        pending = self.pending_ids()
        if limit is not None:
            pending = pending[: max(0, int(limit))]
        wanted = set(pending)
        with ResultStore(self.db_path) as store:
            rows = {row["id"]: row for row in store.results() if row["id"] in wanted}
            reports = {result_id: store.report(result_id) for result_id in rows}
        devices_sent: set[str] = set()
        for result_id in pending:
            try:
                resources = build_result_resources(rows[result_id], reports[result_id],
                                                   patient_id_system=self.patient_id_system)
                for resource in resources:
                    kind = resource.__resource_type__
                    if kind == "Device" and resource.id in devices_sent:
                        continue
                    self._put(kind, resource.id, resource.model_dump_json())
                    if kind == "Device":
                        devices_sent.add(resource.id)
            except _Permanent as error:
                self._record(result_id, error=str(error))
                report.failed[result_id] = str(error)
                continue
            except _Transient as error:
                self._record(result_id, error=str(error))
                report.failed[result_id] = str(error)
                report.stopped = f"endpoint unreachable, batch stopped: {error}"
                break
            self._record(result_id, sent=True)
            report.sent.append(result_id)
        report.pending = len(self.pending_ids())
        return report

    def _record(self, result_id: int, *, sent: bool = False, error: str | None = None) -> None:
        now = utc_now()
        self._db.execute(
            "INSERT INTO fhir_outbox (result_id, endpoint, sent_utc, attempts, last_attempt_utc, last_error) "
            "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (result_id, endpoint) DO UPDATE SET "
            "sent_utc = excluded.sent_utc, attempts = attempts + 1, last_attempt_utc = excluded.last_attempt_utc, "
            "last_error = excluded.last_error",
            (result_id, self.endpoint, now if sent else None, now, error))

    def _put(self, kind: str, resource_id: str, body: str) -> None:
        url = f"{self.endpoint}/{kind}/{resource_id}"
        headers = {"Content-Type": "application/fhir+json; charset=utf-8", "Accept": "application/fhir+json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        last = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            request = urllib.request.Request(url, data=body.encode("utf-8"), headers=headers, method="PUT")
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    response.read()
                    if 200 <= response.status < 300:
                        return
                    last = f"PUT {kind}/{resource_id}: HTTP {response.status}"
                    raise _Permanent(last)
            except urllib.error.HTTPError as error:
                reason = _reason(error)
                last = f"PUT {kind}/{resource_id}: HTTP {error.code}{reason}"
                if error.code not in TRANSIENT_STATUSES:
                    raise _Permanent(last) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
                last = f"PUT {kind}/{resource_id}: {getattr(error, 'reason', None) or error}"
            if attempt < self.max_attempts:
                self._sleep(min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1)))
        raise _Transient(f"{last} (after {self.max_attempts} attempts)")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: D102 - refuse every redirect
        return None


def _reason(error: urllib.error.HTTPError) -> str:
    """The first diagnostics of an OperationOutcome body, briefly."""
    try:
        body = json.loads(error.read(65536) or b"{}")
        issue = (body.get("issue") or [{}])[0]
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
    except (ValueError, AttributeError, OSError):
        return ""
    return f" ({str(text)[:200]})" if text else ""
