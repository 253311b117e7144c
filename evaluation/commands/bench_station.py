"""``elvmass bench-station``: the operator station's budgets, measured in a real browser (prints a table).

One run: the emulator replays the bundled record E07505 in real time on a pty; ``elvmass station`` (a child
process, bundled int8 demo model) serves it; Debian's headless Chromium (Selenium) is the operator.

* electrodes on -> result on screen (<= 12 s): from the click on "start" (the emulated electrodes are on from
  the first sample, so this includes opening the port and the handshake: an upper bound) until the Result
  screen shows the number;
* live trace latency, median (<= 250 ms): per block of samples, from the moment the runtime received it
  (the session's status hook, stamped by the server) until the canvas frame that first drew it
  (``window.elvLatency()`` in trace.js); same machine, same clock;
* first page load (<= 1 s): Navigation Timing ``loadEventEnd`` of the first visit, fresh browser profile;
* page weight (<= 300 kB): the heaviest screen, document + CSS + JS + fetched data, uncompressed bytes;
* station RSS (<= 180 MB): peak resident memory (VmHWM) of the station process (server + runtime + model)
  after an acquisition and a visit to every screen. The printable report renders in a child process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

BUDGETS = {
    "electrodes_on_to_result_s": (12.0, "s"),
    "live_latency_median_ms": (250.0, "ms"),
    "first_page_load_s": (1.0, "s"),
    "page_weight_kb": (300.0, "kB"),
    "station_rss_mb": (180.0, "MB"),
}
PAGES = ("/patient", "/acquire", "/result", "/results", "/device")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=800, help="browser viewport width (default 800)")
    parser.add_argument("--height", type=int, default=480, help="browser viewport height (default 480)")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8", help="model precision (default int8)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")


def _status_kb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


def _page_weight(driver) -> float:
    script = ("const nav = performance.getEntriesByType('navigation')[0];"
              "const res = performance.getEntriesByType('resource');"
              "return (nav ? nav.decodedBodySize : 0) + res.reduce((s, r) => s + r.decodedBodySize, 0);")
    return float(driver.execute_script(script))


def measure(args: argparse.Namespace) -> dict:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.runtime.emulator_process import EmulatorProcess
    from evaluation.station_harness import StationProcess, chromium, close_chromium

    out: dict = {"viewport": f"{args.width}x{args.height}", "record": CINC_LVH_RECORD.name, "precision": args.precision}
    with tempfile.TemporaryDirectory(prefix="elvmass-bench-station-") as folder, \
            EmulatorProcess(CINC_LVH_RECORD, speed=1.0, loop=True) as device, \
            StationProcess(["--device", device, "--precision", args.precision], db=Path(folder) / "r.sqlite") as station:
        driver = chromium(args.width, args.height)
        try:
            driver.get(station.url + "/patient")
            timing = driver.execute_script("const n = performance.getEntriesByType('navigation')[0];"
                                           "return [n.loadEventEnd - n.startTime, n.responseEnd - n.startTime];")
            out["first_page_load_s"] = round(timing[0] / 1000.0, 3)
            out["first_page_response_s"] = round(timing[1] / 1000.0, 3)
            weights = {"/patient": _page_weight(driver)}
            for name, value in (("patient_id", "BENCH-1"), ("age", "77"), ("height", "160"), ("weight", "68")):
                driver.find_element(By.ID, name).send_keys(value)
            driver.find_element(By.CSS_SELECTOR, "label[for=sex-f]").click()
            clicked = time.monotonic()
            driver.find_element(By.ID, "start").click()
            WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/acquire"))
            weights["/acquire"] = _page_weight(driver)
            latency = None
            while True:  # the last latency reading before the screen moves on to the result
                reading = driver.execute_script("return window.elvLatency ? window.elvLatency() : null")
                if reading and reading["n"]:
                    latency = reading
                if driver.current_url.endswith("/result") or time.monotonic() - clicked > 60:
                    break
                time.sleep(0.05)
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "lvm"))
            out["electrodes_on_to_result_s"] = round(time.monotonic() - clicked, 2)
            out["result_lvm_g"] = driver.find_element(By.ID, "lvm").get_attribute("data-lvm-g")
            out["live_latency_median_ms"] = None if latency is None else round(float(latency["median_ms"]), 1)
            out["live_latency_blocks"] = None if latency is None else latency["n"]
            time.sleep(1.0)  # the beats JSON is part of the Result screen's weight
            weights["/result"] = _page_weight(driver)
            for path in ("/results", "/device"):
                driver.get(station.url + path)
                weights[path] = _page_weight(driver)
            out["page_weight_kb_by_page"] = {path: round(value / 1000.0, 1) for path, value in weights.items()}
            heaviest = max(weights, key=weights.get)
            out["page_weight_kb"] = round(weights[heaviest] / 1000.0, 1)
            out["heaviest_page"] = heaviest
            reloads = []
            for _ in range(5):
                driver.get(station.url + "/patient")
                reloads.append(driver.execute_script(
                    "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"))
            out["warm_page_load_median_s"] = round(statistics.median(reloads) / 1000.0, 3)
            pid = station.process.pid
            out["station_rss_mb"] = round(_status_kb(pid, "VmHWM") / 1024.0, 1)
            out["station_rss_now_mb"] = round(_status_kb(pid, "VmRSS") / 1024.0, 1)
        finally:
            close_chromium(driver)
    return out


def run(args: argparse.Namespace) -> int:
    from evaluation.station_harness import browser_missing

    missing = browser_missing()
    if missing:
        print(f"elvmass bench-station: needs a real browser: {missing}", file=sys.stderr)
        return 2
    try:
        out = measure(args)
    except RuntimeError as error:
        print(f"elvmass bench-station: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"operator station, {out['viewport']} headless Chromium, real-time replay of {out['record']} "
          f"({out['precision']} model; result {out['result_lvm_g']} g)")
    print(f"{'budget':<28} {'measured':>10} {'limit':>10}  ok")
    for key, (limit, unit) in BUDGETS.items():
        value = out.get(key)
        ok = value is not None and value <= limit
        shown = "-" if value is None else f"{value:g} {unit}"
        print(f"{key:<28} {shown:>10} {f'{limit:g} {unit}':>10}  {'yes' if ok else 'NO'}")
    print(f"(heaviest page {out['heaviest_page']}: {out['page_weight_kb_by_page']}; warm page load median "
          f"{out['warm_page_load_median_s']} s; latency over {out['live_latency_blocks']} blocks; "
          f"RSS now {out['station_rss_now_mb']} MB)")
    return 0
