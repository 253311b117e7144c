"""Run the operator station for real (a child process) and drive it from Debian's headless Chromium.

Shared by ``tests/test_station_*.py`` and ``elvmass bench-station``. The browser is the system
``/usr/bin/chromium`` with the system ``/usr/bin/chromedriver`` (Selenium never downloads a driver).
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("ELVMASS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ELVMASS_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage")


def browser_missing() -> str | None:
    """Why a real-browser run is impossible here, or ``None``."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'elvmass[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).exists() and os.access(path, os.X_OK)):
            return f"{path} is missing: install Debian's {package} package (apt-get install chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StationProcess:
    """``with StationProcess(["--device", port], db=...) as station:`` runs ``elvmass station`` until exit.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:PORT``.
    process : subprocess.Popen
    """

    def __init__(self, options: list[str], db: Path, port: int | None = None, host: str = "127.0.0.1",
                 startup_timeout_s: float = 90.0, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.host = host
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = Path(db)
        self.command = [sys.executable, "-m", "elvmass", "station", "--host", host, "--port", str(self.port),
                        "--db", str(self.db), *options]
        self.startup_timeout_s = startup_timeout_s
        self.log = log or Path(tempfile.mkstemp(prefix="elvmass-station-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "StationProcess":
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        self._log_handle = self.log.open("w")
        self.process = subprocess.Popen(self.command, stdout=self._log_handle, stderr=subprocess.STDOUT, env=env,
                                        cwd=REPO_ROOT)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the station exited with {self.process.returncode}: {self.log_text()}")
            try:
                with urllib.request.urlopen(self.url + "/api/state", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the station did not answer within {self.startup_timeout_s:.0f} s: {self.log_text()}")

    def log_text(self) -> str:
        self._log_handle.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_handle.close()


class HttpClient:
    """A cookie-keeping client for the station (what a browser does, minus the browser)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):  # keep 303s visible to the caller
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None,
                timeout: float = 30.0) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def get(self, path: str) -> tuple[int, dict, bytes]:
        return self.request("GET", path)

    def csrf(self, path: str = "/patient") -> str:
        _, _, body = self.get(path)
        match = re.search(rb'name="csrf-token" content="([^"]+)"', body)
        if not match:
            raise AssertionError(f"no CSRF token on {path}")
        return match.group(1).decode()

    def post(self, path: str, fields: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
        body = urllib.parse.urlencode(fields).encode()
        return self.request("POST", path, body, {"content-type": "application/x-www-form-urlencoded", **(headers or {})})


def chromium(width: int, height: int):
    """A headless Chromium (Selenium) with a fresh profile and a CSS viewport of exactly ``width`` x ``height``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="elvmass-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height + 200}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver._elvmass_profile = profile  # removed by close_chromium
    set_viewport(driver, width, height)
    return driver


def set_viewport(driver, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def close_chromium(driver) -> None:
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_elvmass_profile", ""), ignore_errors=True)
