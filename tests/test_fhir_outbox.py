"""The outbox against a real local FHIR endpoint: idempotent PUTs, retries, outages mid-batch, lost responses."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

pytest.importorskip("fhir.resources", reason="the fhir extra (fhir.resources) is part of dev")

from conftest import REPO_ROOT, fill_store, make_report  # noqa: E402
from edge_runtime.config import ConfigError, config_from_dict  # noqa: E402
from edge_runtime.interop.fhir_results import build_result_resources  # noqa: E402
from edge_runtime.interop.outbox import Outbox, OutboxError  # noqa: E402
from edge_runtime.runtime.store import ResultStore  # noqa: E402
from fhir_test_server import FhirTestServer  # noqa: E402

TOKEN = "secret-token"
PER_RESULT = 4  # 3 Observations + DiagnosticReport (the Device once per batch)


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "results.sqlite"
    fill_store(path, [make_report(i) for i in range(6)])
    return path


@pytest.fixture()
def server():
    with FhirTestServer(TOKEN) as running:
        yield running


def outbox(db, server, **kwargs) -> Outbox:
    waits: list[float] = []
    box = Outbox(db, server.base, TOKEN, backoff_s=0.01, timeout_s=5.0, sleep=waits.append, **kwargs)
    box.waits = waits
    return box


def reports_on(server) -> set[str]:
    return {resource_id for kind, resource_id in server.resources if kind == "DiagnosticReport"}


def test_sends_every_result_once_and_marks_them(db, server):
    with outbox(db, server) as box:
        assert len(box.pending_ids()) == 6
        report = box.send()
        assert report.sent == [1, 2, 3, 4, 5, 6] and report.pending == 0 and not report.failed
        assert box.pending_ids() == [] and all(row["sent_utc"] for row in box.state())
        assert box.send().sent == []  # nothing new: nothing sent again
    assert len(reports_on(server)) == 6
    assert len(server.accepted) == 1 + 6 * PER_RESULT  # one Device for the shared model
    assert server.invalid == []


def test_new_results_only_on_the_next_run(db, server):
    with outbox(db, server) as box:
        box.send()
        fill_store(db, [make_report(10)])
        assert box.send().sent == [7]
    assert len(reports_on(server)) == 7


def test_server_failing_mid_batch_loses_nothing_and_sends_nothing_twice(db, server):
    # Requests 1-7 succeed: the Device, result 1's 4 resources, 2 of result 2's; the outage starts inside result 2.
    server.fail_from, server.fail_count = 8, 1000
    with outbox(db, server, max_attempts=3) as box:
        first = box.send()
        assert first.stopped and first.pending == 6 - len(first.sent) and first.sent == [1]
        assert box.waits == [0.01, 0.02]  # bounded retries with exponential back-off
        failed_id = next(iter(first.failed))
        assert failed_id == 2 and "503" in first.failed[failed_id]
        half_sent = {resource_id for kind, resource_id in server.accepted if kind != "Device"} - _ids_of(box, 1)
        assert half_sent  # part of result 2 reached the server before the outage
        server.fail_from = None  # the server comes back
        second = box.send()
        assert second.sent == [2, 3, 4, 5, 6] and second.pending == 0
    assert len(reports_on(server)) == 6
    # result 1, acknowledged before the outage, was never sent again
    assert all(server.puts_of(kind, rid) == 1 for kind, rid in _resources_of(box, 1))
    # result 2's resources that got through before the outage were re-PUT to the same ids: no duplicate
    assert len([k for k in server.resources if k[0] == "Observation"]) == 6 * 3
    assert server.invalid == []


def _resources_of(box, result_id):
    with ResultStore(box.db_path) as store:
        row = next(r for r in store.results() if r["id"] == result_id)
        report = store.report(result_id)
    return [(r.__resource_type__, r.id) for r in build_result_resources(row, report) if r.__resource_type__ != "Device"]


def _ids_of(box, result_id):
    return {rid for _, rid in _resources_of(box, result_id)}


def test_lost_response_is_resent_to_the_same_id(db, server):
    server.drop_after_store = {3}  # the second Observation of result 1 is stored, its answer lost
    with outbox(db, server) as box:
        report = box.send()
        assert report.pending == 0 and report.sent == [1, 2, 3, 4, 5, 6]
        assert box.waits == [0.01]
    lvmi = [rid for kind, rid in server.accepted if kind == "Observation"][1]
    assert server.puts_of("Observation", lvmi) == 2  # received twice ...
    assert len([k for k in server.resources if k[0] == "Observation"]) == 18  # ... stored once


def test_transient_errors_are_retried_then_succeed(db, server):
    server.fail_from, server.fail_count = 2, 2  # two 503s, then fine
    with outbox(db, server, max_attempts=4) as box:
        report = box.send()
        assert box.waits == [0.01, 0.02]
        assert {row["attempts"] for row in box.state()} == {1}  # a retried request is one attempt of the result
    assert report.pending == 0 and report.sent == [1, 2, 3, 4, 5, 6]
    assert len(reports_on(server)) == 6


def test_permanent_refusal_keeps_the_result_pending_with_the_reason(db, server):
    server.reject_types = {"DiagnosticReport"}
    with outbox(db, server) as box:
        report = box.send()
        assert report.sent == [] and len(report.failed) == 6 and report.stopped is None
        assert "422" in report.failed[1] and "refused by this test server" in report.failed[1]
        assert box.waits == []  # a 4xx is not retried
        assert box.pending_ids() == [1, 2, 3, 4, 5, 6]
        assert {row["attempts"] for row in box.state()} == {1}
        server.reject_types = set()
        assert box.send().sent == [1, 2, 3, 4, 5, 6]
        assert {row["attempts"] for row in box.state()} == {2}


def test_wrong_token_sends_nothing(db, server):
    with Outbox(db, server.base, "wrong", backoff_s=0.0, sleep=lambda s: None) as box:
        report = box.send()
        assert report.sent == [] and "401" in report.failed[1]
    assert server.resources == {}


def test_unreachable_endpoint_stops_the_batch(db):
    with FhirTestServer(TOKEN) as gone:
        base = gone.base
    with Outbox(db, base, TOKEN, max_attempts=2, backoff_s=0.0, timeout_s=2.0, sleep=lambda s: None) as box:
        report = box.send()
        assert report.stopped and report.sent == [] and report.pending == 6 and list(report.failed) == [1]


def test_results_table_is_untouched(db, server):
    with sqlite3.connect(db) as connection:
        before = connection.execute("PRAGMA table_info(results)").fetchall()
    with outbox(db, server) as box:
        box.send()
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA table_info(results)").fetchall() == before
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "fhir_outbox" in tables


@pytest.mark.parametrize("endpoint", ["http://fhir.example.org/r4", "ftp://127.0.0.1/x", "http://localhost:8080/fhir",
                                      "https://"])
def test_only_https_or_loopback_http(db, endpoint):
    with pytest.raises(OutboxError, match="https"):
        Outbox(db, endpoint, TOKEN)
    with pytest.raises(ConfigError, match="fhir_endpoint"):
        config_from_dict({"fhir_endpoint": endpoint})


def test_off_by_default(db):
    with pytest.raises(OutboxError, match="outbox is off"):
        Outbox.from_config(config_from_dict({}), db_path=db)


RUN_CLI = "import sys; from elvmass.cli import main; sys.exit(main(sys.argv[1:]))"


def test_outbox_command(db, server, tmp_path):
    config = tmp_path / "elvmass.toml"
    config.write_text(f'storage_path = "{db}"\nfhir_endpoint = "{server.base}"\nfhir_token = "{TOKEN}"\n'
                      "fhir_backoff_s = 0.01\n")

    def elvmass(*args):
        return subprocess.run([sys.executable, "-c", RUN_CLI, "outbox", *args, "--config", str(config)],
                              capture_output=True, text=True, cwd=REPO_ROOT)

    assert "pending   6 result(s)" in elvmass("status").stdout
    sent = elvmass("send", "--limit", "4")
    assert sent.returncode == 1 and "sent 4 result(s)" in sent.stdout and "2 still pending" in sent.stdout
    sent = elvmass("send")
    assert sent.returncode == 0 and "sent 2 result(s)" in sent.stdout
    assert TOKEN not in sent.stdout + sent.stderr
    assert len(reports_on(server)) == 6
    off = subprocess.run([sys.executable, "-c", RUN_CLI, "outbox", "send", "--db", str(db)], capture_output=True,
                         text=True, cwd=REPO_ROOT)
    assert off.returncode == 2 and "outbox is off" in off.stderr
