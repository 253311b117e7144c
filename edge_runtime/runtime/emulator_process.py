"""An emulated front-end in a separate process, on a real pty (the demo and the HIL tests).

``python -m edge_runtime.runtime.emulator_process RECORD [--speed S] [--loop] [faults]`` replays a record
through :class:`firmware_bridge.emulator.DeviceEmulator` over a :class:`~firmware_bridge.emulator.PtyLink`
and prints the port path on its first stdout line. Faults can be limited to a span of stream time
(``--fault-from/--fault-to``, seconds of record replayed) so tests see the fault *and* the recovery.
Leads the record lacks are sent with their electrodes reported off, as a front-end would.

:class:`EmulatorProcess` starts and stops that process from Python.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

DEVICE_FS = 500


def device_channels(record_path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The record as the front-end would measure it: (8, n) mV at 500 Hz, and the electrodes off."""
    from edge_runtime.formats import read_record
    from edge_runtime.runtime.sources import channels_from_record
    from firmware_bridge.frames import ELECTRODES

    record = read_record(record_path)
    if record.fs != DEVICE_FS:  # scipy.signal takes seconds to import; records already at 500 Hz skip it
        from edge_runtime.resample import resample_record

        record = resample_record(record, float(DEVICE_FS))
    signals, off = channels_from_record(record)
    return signals, tuple(name for name, is_off in zip(ELECTRODES, off) if is_off)


def build_emulator(record_path: str | Path, *, loop: bool = False, seed: int = 0, fault_from_s: float = 0.0,
                   fault_to_s: float = float("inf"), **fault_options: object):
    """A :class:`DeviceEmulator` replaying ``record_path`` with faults active in ``[fault_from_s, fault_to_s)``.

    ``fault_options`` are :class:`firmware_bridge.faults.FaultConfig` fields; ``unplug_at_s`` /
    ``unplug_for_s`` act at their own time, the others only inside the span.
    """
    from firmware_bridge.emulator import DeviceEmulator
    from firmware_bridge.faults import FaultConfig, FaultInjector

    signals, absent = device_channels(record_path)
    # Whole-session faults act on the device as a whole (its clock, its INFO, its firmware), not in the span.
    unplug = {key: fault_options.pop(key) for key in ("unplug_at_s", "unplug_for_s", "clock_hz", "announced_map",
                                                      "silent_after_s") if key in fault_options}
    base = FaultConfig(lead_off=absent, **unplug)  # type: ignore[arg-type]
    extra_off = tuple(fault_options.pop("lead_off", ()))  # type: ignore[arg-type]
    faulty = FaultConfig(lead_off=tuple(sorted(set(absent) | set(extra_off))), **unplug, **fault_options)  # type: ignore[arg-type]

    class ScheduledEmulator(DeviceEmulator):
        """Switches between the clean and the faulty injector by stream time."""

        def next_frame(self) -> bytes:
            inside = fault_from_s <= self.stream_seconds < fault_to_s
            self.injector = self._faulty if inside else self._clean
            return super().next_frame()

    emulator = ScheduledEmulator(signals, loop=loop, faults=base, seed=seed)
    emulator._clean = emulator.injector
    emulator._faulty = FaultInjector(faulty, emulator.info.channel_map, emulator.info.lsb_nv, seed)
    return emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_runtime.runtime.emulator_process", description=__doc__.split("\n")[0])
    parser.add_argument("record")
    parser.add_argument("--link", help="stable symlink path for the pty (default: a temp dir)")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-from", type=float, default=0.0, help="fault span start, s of stream")
    parser.add_argument("--fault-to", type=float, default=float("inf"), help="fault span end, s of stream")
    parser.add_argument("--lead-off", nargs="*", default=[], help="electrodes reported off (RA LA LL V1..V6)")
    parser.add_argument("--saturate", nargs="*", default=[], help="leads pinned at full scale (I II V1..V6)")
    parser.add_argument("--noise-uv", type=float, default=0.0)
    parser.add_argument("--drop-frame-prob", type=float, default=0.0)
    parser.add_argument("--bit-error-rate", type=float, default=0.0, help="probability each sent bit flips")
    parser.add_argument("--garbage-bursts-per-s", type=float, default=0.0, help="random-byte bursts per s of stream")
    parser.add_argument("--unplug-at", type=float, help="unplug at this many s of stream")
    parser.add_argument("--unplug-for", type=float, default=1.0, help="seconds unplugged")
    parser.add_argument("--slip-prob", type=float, default=0.0, help="probability a DATA frame loses or gains a byte")
    parser.add_argument("--stuck-lead-off", nargs="*", default=[], help="electrodes whose lead-off bit is stuck on")
    parser.add_argument("--clock-hz", type=float, help="real sample clock (INFO still announces 500 Hz)")
    parser.add_argument("--announce-map", help="comma-separated channel map INFO announces (data keep I,II,V1..V6)")
    parser.add_argument("--silent-after", type=float, help="stop answering after this many s of stream")
    parser.add_argument("--backlog-bytes", type=int, default=1 << 16,
                        help="device FIFO for a host that is not reading (frames beyond it are lost)")
    args = parser.parse_args(argv)

    from firmware_bridge.emulator import PtyLink, serve

    options: dict[str, object] = {"lead_off": tuple(args.lead_off), "saturate": tuple(args.saturate),
                                  "noise_uv": args.noise_uv, "drop_frame_prob": args.drop_frame_prob,
                                  "bit_error_rate": args.bit_error_rate, "garbage_bursts_per_s": args.garbage_bursts_per_s}
    if args.unplug_at is not None:
        options.update(unplug_at_s=args.unplug_at, unplug_for_s=args.unplug_for)
    options.update(slip_prob=args.slip_prob, stuck_lead_off=tuple(args.stuck_lead_off), clock_hz=args.clock_hz,
                   silent_after_s=args.silent_after,
                   announced_map=tuple(args.announce_map.split(",")) if args.announce_map else None)
    emulator = build_emulator(args.record, loop=args.loop, seed=args.seed, fault_from_s=args.fault_from,
                              fault_to_s=args.fault_to, **options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def ready(address: str) -> None:
        print(address, flush=True)

    def note(text: str) -> None:
        print(f"emulator: {text}", file=sys.stderr, flush=True)

    try:
        serve(emulator, PtyLink(args.link), speed=args.speed, stop=stop, on_ready=ready, on_event=note,
              max_backlog_bytes=args.backlog_bytes)
    except KeyboardInterrupt:
        pass
    return 0


class EmulatorProcess:
    """``with EmulatorProcess(record, speed=20) as port:`` runs the emulator in a child process.

    Parameters
    ----------
    record : str or Path
        The record to replay.
    options : str
        Extra command-line options of this module (e.g. ``"--lead-off", "V3"``).
    speed : float
        Replay speed.
    """

    def __init__(self, record: str | Path, *options: str, speed: float = 1.0, loop: bool = False,
                 startup_timeout_s: float = 60.0) -> None:
        self.command = [sys.executable, "-m", "edge_runtime.runtime.emulator_process", str(record), "--speed", str(speed),
                        *(["--loop"] if loop else []), *options]
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self.port: str | None = None

    def __enter__(self) -> str:
        repo = Path(__file__).resolve().parents[2]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env)
        line = _readline_with_timeout(self.process, self.startup_timeout_s)
        if not line:
            self.__exit__(None, None, None)
            raise RuntimeError(f"emulator did not start: {self.stderr_text()}")
        self.port = line.strip()
        return self.port

    def stderr_text(self) -> str:
        if self.process is None or self.process.stderr is None or self.process.poll() is None:
            return ""
        return self.process.stderr.read()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _readline_with_timeout(process: subprocess.Popen, timeout_s: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout_s)
    return result[0] if result else ""


if __name__ == "__main__":
    raise SystemExit(main())
