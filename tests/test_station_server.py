"""The station's guards against a real `elvmass station` process over HTTP: bind refusal, CSRF, limits, PIN login.

No browser is needed here (tests/test_station_browser.py drives Chromium). The station's front-end port is a
path that does not exist: these tests never start an acquisition, and the server must not need one to serve.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from edge_runtime.station.security import bind_refusal, hash_pin, verify_pin
from evaluation.station_harness import HttpClient, StationProcess, free_port

pytest.importorskip("starlette", reason="needs the station extra: pip install 'elvmass[station]'")
pytest.importorskip("uvicorn", reason="needs the station extra: pip install 'elvmass[station]'")
PIN = "2468"


def stored_result(db) -> int:
    """A real stored result (E07505 analyzed by the bundled model), so tests can check nothing is lost."""
    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.config import ClinicConfig
    from edge_runtime.formats import read_record
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer, analyze_file_record
    from edge_runtime.runtime.store import ResultStore

    best, _ = analyze_file_record(Analyzer(ClinicConfig()), read_record(CINC_LVH_RECORD),
                                  PatientContext(77.0, "F", 160.0, 68.0, "KEEP-1"))
    with ResultStore(db) as store:
        return store.add(best.report, best.signals_mv, best.fs, ("I", "II", "III", "aVR", "aVL", "aVF",
                                                                  "V1", "V2", "V3", "V4", "V5", "V6"))


def row_count(db) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT count(*) FROM results").fetchone()[0]


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    folder = tmp_path_factory.mktemp("station_server")
    db = folder / "results.sqlite"
    stored_result(db)
    with StationProcess(["--device", str(folder / "no-such-tty")], db=db) as running:
        yield running


def test_pin_hash_round_trip_and_bind_rules():
    stored = hash_pin(PIN)
    assert stored.startswith("scrypt$") and PIN not in stored
    assert verify_pin(PIN, stored) and not verify_pin("2469", stored)
    assert bind_refusal("127.0.0.1", "") is None
    assert "PIN" in bind_refusal("0.0.0.0", "")
    assert bind_refusal("0.0.0.0", stored) is None
    assert "damaged" in bind_refusal("0.0.0.0", "scrypt$16384$8$1$!!$!!")


def test_lan_bind_without_a_pin_refuses_to_start_and_says_why(tmp_path):
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "elvmass", "station", "--host", "0.0.0.0", "--port", str(port),
                          "--demo", "--db", str(tmp_path / "r.sqlite")], capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0" in out.stderr and "PIN" in out.stderr and "--hash-pin" in out.stderr
    assert not (tmp_path / "r.sqlite").exists()


def test_hash_pin_prints_a_config_line_never_the_pin():
    out = subprocess.run([sys.executable, "-m", "elvmass", "station", "--hash-pin"], input=PIN + "\n",
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert re.fullmatch(r'station_pin_hash = "scrypt\$[^"]+"', line) and PIN not in line
    assert verify_pin(PIN, line.split('"')[1])


def test_a_post_without_the_csrf_token_is_refused_and_stores_nothing(station):
    client = HttpClient(station.url)
    client.get("/patient")  # a session cookie, but no token sent
    before = row_count(station.db)
    form = {"patient_id": "X-1", "age": "60", "sex": "M", "height": "175", "weight": "80"}
    status, _, body = client.post("/patient", form)
    assert status == 403 and b"security token" in body
    status, _, _ = client.post("/patient", {**form, "csrf": "not-the-token"})
    assert status == 403
    for path in ("/next", "/acquire/cancel", "/results", "/results/export"):
        assert client.post(path, {"format": "csv"})[0] == 403, path
    assert row_count(station.db) == before
    assert client.get("/api/state")[0] == 200 and b'"phase":"ready"' in client.get("/api/state")[2]


def test_invalid_form_shows_plain_errors_and_stores_nothing(station):
    client = HttpClient(station.url)
    token = client.csrf()
    before = row_count(station.db)
    status, _, body = client.post("/patient", {"csrf": token, "patient_id": "Jane Doe", "age": "1e999",
                                               "sex": "X", "height": "abc", "weight": "-5"})
    text = body.decode()
    assert status == 400
    assert "never a name" in text and "female or male" in text and "not a number" in text
    assert "25-300 kg" in text and "Nothing was stored" in text
    assert row_count(station.db) == before and b'"phase":"ready"' in client.get("/api/state")[2]


def test_bad_requests_get_clear_errors_and_the_server_keeps_running(station):
    client = HttpClient(station.url)
    token = client.csrf()
    before = row_count(station.db)
    status, _, body = client.post("/patient", {"csrf": token, "patient_id": "A" * 20000})
    assert status == 413 and b"too large" in body
    status, _, _ = client.request("POST", "/patient", b'{"age": 1}',
                                  {"content-type": "application/json", "x-csrf-token": token})
    assert status == 415
    status, _, body = client.request("POST", "/patient", b"csrf=" + token.encode() + b"&age=\xff\xfe",
                                     {"content-type": "application/x-www-form-urlencoded"})
    assert status == 400 and b"could not be read" in body
    assert client.get("/no/such/page")[0] == 404
    assert client.get("/results/999999")[0] == 404
    assert client.get("/results/1/report.exe")[0] == 404
    assert client.request("GET", "/patient", headers={"host": "evil.example:80"})[0] == 421  # DNS rebinding
    status, _, body = client.post("/results", {"csrf": token, "patient_id": "a b", "date": "26/11/2026"})
    assert status == 400 and b"letters, digits" in body
    assert station.alive() and row_count(station.db) == before


def test_pages_have_strict_headers_and_no_inline_script_or_style(station):
    client = HttpClient(station.url)
    status, headers, _ = client.get("/patient")
    lower = {key.lower(): value for key, value in headers.items()}
    csp = lower["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    cookie = lower["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    for path in ("/patient", "/acquire", "/results", "/results/1", "/device"):
        status, headers, body = client.get(path)
        html = body.decode()
        assert status == 200, path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {path}"
        assert not re.search(r"\sstyle=", html) and not re.search(r"\son[a-z]+=", html), f"inline style/handler on {path}"
        assert "no-store" in {k.lower(): v for k, v in headers.items()}["cache-control"]


def test_results_search_and_export_by_post_keep_the_id_out_of_urls(station):
    client = HttpClient(station.url)
    token = client.csrf("/results")
    status, _, body = client.post("/results", {"csrf": token, "patient_id": "KEEP-1", "date": ""})
    assert status == 200 and b"KEEP-1" in body and b'href="/results/1"' in body
    status, _, body = client.post("/results", {"csrf": token, "patient_id": "NOBODY", "date": ""})
    assert status == 200 and b"KEEP-1" not in body
    status, headers, body = client.post("/results/export", {"csrf": token, "patient_id": "KEEP-1", "date": "",
                                                            "format": "csv"})
    assert status == 200 and "patient_id,age_years" in body.decode().splitlines()[0]
    assert "KEEP-1" in body.decode() and "attachment" in {k.lower(): v for k, v in headers.items()}["content-disposition"]
    status, _, body = client.post("/results/export", {"csrf": token, "format": "json", "patient_id": "", "date": ""})
    assert status == 200 and b'"patient_id": "KEEP-1"' in body
    assert b"KEEP-1" not in client.get("/results/1/beats.json")[2]
    assert "KEEP-1" not in station.log_text()


def test_print_gives_the_existing_pdf_and_png_report(station):
    pytest.importorskip("matplotlib", reason="the printable report needs the report extra")
    client = HttpClient(station.url)
    status, headers, body = client.get("/results/1/report.pdf")
    assert status == 200 and body.startswith(b"%PDF") and len(body) > 10_000
    assert {k.lower(): v for k, v in headers.items()}["content-type"] == "application/pdf"
    status, _, body = client.get("/results/1/report.png")
    assert status == 200 and body.startswith(b"\x89PNG")
    assert station.alive()


@pytest.fixture(scope="module")
def pin_station(tmp_path_factory):
    folder = tmp_path_factory.mktemp("station_pin")
    config = folder / "elvmass.toml"
    config.write_text(f'station_pin_hash = "{hash_pin(PIN)}"\nstorage_path = "{folder / "unused.sqlite"}"\n')
    with StationProcess(["--device", str(folder / "no-such-tty"), "--config", str(config)], db=folder / "r.sqlite",
                        host="0.0.0.0") as running:
        yield running


def test_lan_station_requires_the_pin_and_limits_login_attempts(pin_station):
    operator = HttpClient(pin_station.url)
    status, headers, _ = operator.get("/patient")
    assert status == 303 and {k.lower(): v for k, v in headers.items()}["location"] == "/login"
    assert operator.get("/events")[0] == 401
    token = operator.csrf("/login")
    assert operator.post("/login", {"pin": PIN})[0] == 403  # the log-in form needs its token too
    status, headers, _ = operator.post("/login", {"csrf": token, "pin": PIN})
    assert status == 303
    assert operator.get("/patient")[0] == 200  # logged in (the session id was renewed)

    guesser = HttpClient(pin_station.url)
    token = guesser.csrf("/login")
    for _ in range(5):
        assert guesser.post("/login", {"csrf": token, "pin": "0000"})[0] == 401
    status, _, body = guesser.post("/login", {"csrf": token, "pin": PIN})
    assert status == 429 and b"Too many wrong PINs" in body
    assert guesser.get("/patient")[0] == 303
    assert operator.get("/device")[0] == 200 and pin_station.alive()


def test_an_acquisition_without_a_front_end_says_so_and_can_be_cancelled(station):
    import json
    import time

    client = HttpClient(station.url)
    token = client.csrf()
    form = {"csrf": token, "patient_id": "NOFE-1", "age": "60", "sex": "M", "height": "175", "weight": "80"}
    status, headers, _ = client.post("/patient", form)
    assert status == 303 and {k.lower(): v for k, v in headers.items()}["location"] == "/acquire"
    assert client.post("/patient", form)[0] == 409  # one acquisition at a time
    deadline = time.monotonic() + 20
    state = {}
    while time.monotonic() < deadline:
        state = json.loads(client.get("/api/state")[2])
        if any(event["name"] == "reconnecting" for event in state["events"]):
            break
        time.sleep(0.1)
    assert state["phase"] == "acquiring" and state["link"] in ("reconnecting", "disconnected", "connecting")
    assert set(state["electrodes"].values()) == {"unknown"} and state["indicators"]["no_signal"]
    assert client.post("/acquire/cancel", {"csrf": token})[0] == 303
    state = json.loads(client.get("/api/state")[2])
    assert state["phase"] == "ready" and state["link"] == "idle" and station.alive()


def test_unplug_and_replug_are_shown_and_the_acquisition_recovers(tmp_path):
    import json
    import time

    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.runtime.emulator_process import EmulatorProcess

    with EmulatorProcess(CINC_LVH_RECORD, "--backlog-bytes", str(4 << 20), "--unplug-at", "3", "--unplug-for", "0.5",
                         speed=2.0, loop=True) as device, \
            StationProcess(["--device", device], db=tmp_path / "r.sqlite") as running:
        client = HttpClient(running.url)
        token = client.csrf()
        client.post("/patient", {"csrf": token, "patient_id": "PLUG-1", "age": "77", "sex": "F", "height": "160",
                                 "weight": "68"})
        links, state = set(), {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = json.loads(client.get("/api/state")[2])
            links.add(state["link"])
            if state["phase"] != "acquiring":
                break
            time.sleep(0.05)
        assert state["phase"] == "result", state
        device_page = client.get("/device")[2].decode()
    assert "disconnected" in device_page and device_page.count("(attempt") >= 2  # lost, then connected again
    assert "streaming" in links
    assert row_count(tmp_path / "r.sqlite") == 1  # the window cut by the unplug was dropped, not stored
