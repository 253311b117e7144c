"""The operator station end to end in a real browser: emulator on a pty -> `elvmass station` -> headless Chromium.

Debian's /usr/bin/chromium and /usr/bin/chromedriver driven by Selenium (no driver download). The emulator replays
the bundled CinC 2021 record E07505 at 2x real time, so each 10 s window takes 5 s. Screenshots at 800x480 and
1280x800 go to the folder printed at the end of each test (``ELVMASS_SCREENSHOTS`` to choose it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.runtime.emulator_process import EmulatorProcess
from evaluation.station_harness import StationProcess, browser_missing, chromium, close_chromium, set_viewport

pytestmark = pytest.mark.slow
MISSING = browser_missing()
if MISSING:
    pytest.skip(f"no real browser: {MISSING}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SPEED = 2.0
BACKLOG = ("--backlog-bytes", str(4 << 20))
PATIENT = {"patient_id": "E2E-0001", "age": "77", "sex": "F", "height": "160", "weight": "68"}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("ELVMASS_SCREENSHOTS") or tmp_path_factory.mktemp("station_screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def rows(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT id, patient_id, estimate_status, lvm_g, flags FROM results")]


def analyze_lvm() -> float:
    """What `elvmass analyze` gives on the replayed record with the same patient entries."""
    command = [sys.executable, "-m", "elvmass", "analyze", str(CINC_LVH_RECORD), "--age", PATIENT["age"], "--sex",
               PATIENT["sex"], "--height", PATIENT["height"], "--weight", PATIENT["weight"], "--json"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=True)
    report = json.loads(out.stdout)
    assert report["estimate_status"] == "ok", report["flags"]
    return float(report["lvm_g"])


def fill_patient(driver, values: dict) -> None:
    for name in ("patient_id", "age", "height", "weight"):
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(values.get(name, ""))
    if values.get("sex"):
        driver.find_element(By.CSS_SELECTOR, f"label[for=sex-{values['sex'].lower()}]").click()
    driver.find_element(By.ID, "start").click()


def electrode_class(driver, name: str) -> str:
    return driver.find_element(By.ID, f"el-{name}").get_attribute("class")


def trace_drawn(driver) -> bool:
    latency = driver.execute_script("return window.elvLatency ? window.elvLatency() : null")
    return bool(latency and latency["n"] > 3)


def test_patient_acquire_result_matches_analyze_with_two_browsers_and_reload(tmp_path, shots):
    db = tmp_path / "results.sqlite"
    expected = analyze_lvm()
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, speed=SPEED, loop=True) as device, \
            StationProcess(["--device", device], db=db) as station:
        driver = chromium(800, 480)
        second = None
        try:
            second = chromium(1280, 800)  # a second browser, already on the Acquire screen before anything starts
            second.get(station.url + "/acquire")
            driver.get(station.url + "/")
            WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "patient-form"))
            driver.save_screenshot(str(shots / "800x480-patient.png"))

            # Invalid entries: plain-language errors on the form, nothing stored, no acquisition.
            fill_patient(driver, {"patient_id": "John Smith", "age": "abc", "height": "17", "weight": "68"})
            WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "form-errors"))
            assert "Nothing was stored" in driver.find_element(By.ID, "form-errors").text
            assert "not a number" in driver.find_element(By.ID, "age-error").text
            assert "100-230 cm" in driver.find_element(By.ID, "height-error").text
            assert "female or male" in driver.find_element(By.ID, "sex-error").text
            assert "never a name" in driver.find_element(By.ID, "patient_id-error").text
            assert not driver.find_elements(By.ID, "weight-error")
            assert driver.find_element(By.ID, "patient_id").get_attribute("value") == "John Smith"  # kept to correct
            driver.save_screenshot(str(shots / "800x480-patient-errors.png"))
            assert rows(db) == [] and json.loads(driver.execute_script(
                "return fetch('/api/state').then(r => r.text())"))["phase"] == "ready"

            # A barcode scanner types the ID then Enter: focus moves on, nothing is submitted.
            driver.find_element(By.ID, "patient_id").clear()
            driver.find_element(By.ID, "patient_id").send_keys("SCAN-1\n")
            assert driver.switch_to.active_element.get_attribute("id") == "age" and rows(db) == []
            fill_patient(driver, PATIENT)
            WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/acquire"))
            WebDriverWait(driver, 10).until(trace_drawn)
            WebDriverWait(driver, 10).until(lambda d: electrode_class(d, "V4") == "el el-on")
            assert "E2E-0001" in driver.find_element(By.ID, "patient-line").text
            driver.save_screenshot(str(shots / "800x480-acquire.png"))

            # The second browser shows the same live acquisition without being touched; a reload resumes it.
            WebDriverWait(second, 10).until(trace_drawn)
            assert "E2E-0001" in second.find_element(By.ID, "patient-line").text
            assert second.find_element(By.ID, "acquire").get_attribute("data-phase") == "acquiring"
            second.save_screenshot(str(shots / "1280x800-acquire.png"))
            driver.refresh()
            WebDriverWait(driver, 10).until(trace_drawn)
            assert driver.find_element(By.ID, "acquire").get_attribute("data-phase") == "acquiring"
            driver.save_screenshot(str(shots / "800x480-acquire-resumed.png"))  # the last seconds replayed

            for browser in (driver, second):
                WebDriverWait(browser, 60).until(lambda d: d.current_url.endswith("/result"))
                WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "lvm"))
            shown = float(driver.find_element(By.ID, "lvm").get_attribute("data-lvm-g"))
            assert shown == pytest.approx(expected, abs=0.1)
            assert float(second.find_element(By.ID, "lvm").get_attribute("data-lvm-g")) == shown
            assert "not clinically validated" in driver.find_element(By.ID, "disclaimer").text
            assert driver.find_element(By.ID, "verdict").text.split(" (")[0] in ("LVH", "no LVH", "borderline")
            time.sleep(0.5)  # the beats canvas is drawn after its JSON arrives
            driver.save_screenshot(str(shots / "800x480-result.png"))
            second.save_screenshot(str(shots / "1280x800-result.png"))
            stored = rows(db)
            assert [(r["patient_id"], r["estimate_status"], r["lvm_g"]) for r in stored] == [("E2E-0001", "ok", shown)]

            # Results: newest first, open one; Device page.
            driver.find_element(By.LINK_TEXT, "Results").click()
            WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "results-table"))
            assert "E2E-0001" in driver.find_element(By.ID, "results-table").text
            driver.save_screenshot(str(shots / "800x480-results.png"))
            second.get(station.url + "/results")
            second.save_screenshot(str(shots / "1280x800-results.png"))
            driver.find_element(By.LINK_TEXT, "Device").click()
            WebDriverWait(driver, 10).until(lambda d: "Model sha256" in d.page_source)
            driver.save_screenshot(str(shots / "800x480-device.png"))
            second.get(station.url + "/device")
            second.save_screenshot(str(shots / "1280x800-device.png"))
            second.get(station.url + "/patient")
            second.save_screenshot(str(shots / "1280x800-patient.png"))

            # Next patient goes back to an empty form.
            driver.get(station.url + "/result")
            driver.find_element(By.ID, "next").click()
            WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/patient"))
            assert driver.find_element(By.ID, "patient_id").get_attribute("value") == ""
            assert station.alive()
            assert PATIENT["patient_id"] not in station.log_text()  # no patient data in the logs
        finally:
            close_chromium(driver)
            if second is not None:
                close_chromium(second)
    print(f"screenshots: {shots}")


def test_electrode_off_turns_red_gives_no_estimate_then_recovers(tmp_path, shots):
    db = tmp_path / "results.sqlite"
    # V4 is off during the first 10 s of stream after the station starts the device, then reattached.
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, "--lead-off", "V4", "--fault-from", "0", "--fault-to", "10",
                         speed=SPEED, loop=True) as device, StationProcess(["--device", device], db=db) as station:
        driver = chromium(800, 480)
        try:
            driver.get(station.url + "/patient")
            fill_patient(driver, PATIENT)
            WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/acquire"))
            WebDriverWait(driver, 10).until(lambda d: electrode_class(d, "V4") == "el el-off")
            assert electrode_class(driver, "V3") == "el el-on" and electrode_class(driver, "RA") == "el el-on"
            driver.save_screenshot(str(shots / "800x480-acquire-v4-off.png"))
            # The first window is refused, in operator words from the flag registry; no number.
            WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "refusal").is_displayed())
            refusal = driver.find_element(By.ID, "refusal").text
            assert "Electrode off or loose: V4" in refusal, refusal
            assert electrode_class(driver, "V4") == "el el-on"  # reattached: the next window is recording
            driver.save_screenshot(str(shots / "800x480-acquire-refused.png"))
            first = rows(db)
            assert len(first) == 1 and first[0]["estimate_status"] == "no_estimate" and first[0]["lvm_g"] is None
            assert "lead_off" in first[0]["flags"]
            WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/result"))
            assert float(driver.find_element(By.ID, "lvm").get_attribute("data-lvm-g")) > 0
            assert [r["estimate_status"] for r in rows(db)] == ["no_estimate", "ok"]
        finally:
            close_chromium(driver)
    print(f"screenshots: {shots}")
