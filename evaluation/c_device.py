"""Build and run the C reference device (``firmware_bridge/firmware/elvmass_device.c``) from Python.

Used by the tests and handy at a bench: ``with CDeviceProcess(binary, "--record", "rec.elvmrec") as port:``
gives the pty path the device printed, and stops the device on exit.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror")
DEVICE_SOURCES = ("elvmass_device.c", "elvmass_frame.c", "elvmass_command.c")


def host_compiler() -> str | None:
    """The first of cc, gcc, clang on PATH (``None`` when there is none)."""
    return next((name for name in ("cc", "gcc", "clang") if shutil.which(name)), None)


def build_c_device(out_dir: str | Path, compiler: str | None = None) -> Path:
    """Compile the device warning-free into ``out_dir``; raises ``RuntimeError`` with the compiler's message."""
    compiler = compiler or host_compiler()
    if compiler is None:
        raise RuntimeError("no C compiler (cc/gcc/clang) on PATH")
    binary = Path(out_dir) / "elvmass_device"
    build = subprocess.run([compiler, *HOST_CFLAGS, "-o", str(binary), *(str(FIRMWARE_DIR / s) for s in DEVICE_SOURCES)],
                           capture_output=True, text=True)
    if build.returncode != 0:
        raise RuntimeError(f"building the C device failed:\n{build.stderr}")
    return binary


class CDeviceProcess:
    """``with CDeviceProcess(binary, *options, speed=20) as port:`` runs the C device on a new pty.

    Parameters
    ----------
    binary : str or Path
        The built ``elvmass_device``.
    options : str
        Its command-line options (``--record FILE``, ``--loop``, fault switches).
    speed : float
        Replay speed.
    startup_timeout_s : float
        Longest wait for the first stdout line (the pty path).
    """

    def __init__(self, binary: str | Path, *options: str, speed: float = 1.0, startup_timeout_s: float = 10.0) -> None:
        self.command = [str(binary), "--speed", str(speed), *options]
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.port: str | None = None
        self.stderr = ""

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(self.startup_timeout_s)
        if not line or not line[0].strip():
            self.__exit__(None, None, None)
            raise RuntimeError(f"C device did not start: {self.stderr}")
        self.port = line[0].strip()
        return self.port

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, self.stderr = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
