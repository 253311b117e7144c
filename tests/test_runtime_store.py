"""SQLite result store: round trip, owner-only file, WAL, and no committed result lost to kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import STANDARD_LEAD_NAMES as LEADS
from conftest import store_report as _report
from edge_runtime.runtime.store import ResultStore


def test_store_round_trip_permissions_and_wal(tmp_path):
    path = tmp_path / "sub" / "results.sqlite"
    window = np.random.default_rng(1).normal(0, 1, (12, 5000)).astype(np.float32)
    with ResultStore(path) as store:
        first = store.add(_report(0), window, 500.0, LEADS)
        store.add({**_report(1), "estimate_status": "no_estimate", "lvm_g": None, "lvm_interval_g": None,
                   "lvh": None}, window, 500.0, LEADS)
        rows = store.results()
        assert [r["estimate_status"] for r in rows] == ["ok", "no_estimate"]
        assert rows[0]["lvh"] is True and rows[1]["lvh"] is None and rows[0]["flags"][0]["name"] == "imputed_height_cm"
        assert store.report(first)["lvm_g"] == 150.0
        stored = store.window(first)
        assert stored.lead_names == LEADS and stored.fs == 500.0
        np.testing.assert_allclose(stored.signals_mv, window, atol=0.0006)
        assert store.integrity_ok()
        for side_file in path.parent.glob("results.sqlite-*"):  # WAL and shared-memory files hold data too
            assert stat.S_IMODE(os.stat(side_file).st_mode) == 0o600, side_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) & 0o077 == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in db.execute("PRAGMA table_info(results)")]
    assert "patient_id" in columns and not any("name" == c or c.endswith("_name") for c in columns)


WRITER = """
import sys, numpy as np
from edge_runtime.runtime.store import ResultStore
sys.path.insert(0, {tests!r})
from conftest import STANDARD_LEAD_NAMES as LEADS, store_report as _report
store = ResultStore(sys.argv[1])
window = np.zeros((12, 5000), dtype=np.float32)
i = 0
while True:
    row = store.add(_report(i), window, 500.0, LEADS)
    print(row, flush=True)   # printed only after COMMIT returned
    i += 1
"""


@pytest.mark.slow
def test_kill_9_loses_no_committed_result(tmp_path):
    path = tmp_path / "results.sqlite"
    code = WRITER.format(tests=str(REPO_ROOT / "tests"))
    process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                               cwd=REPO_ROOT)
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < 40 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        committed.append(int(line))
    os.kill(process.pid, signal.SIGKILL)  # mid-write: the next transaction is in flight
    process.wait()
    assert len(committed) >= 40, "writer did not get going"
    with ResultStore(path) as store:
        assert store.integrity_ok()
        ids = [row["id"] for row in store.results()]
    assert set(committed) <= set(ids)
    assert ids == list(range(1, len(ids) + 1))  # no torn or half-written row
