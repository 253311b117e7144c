"""``elvmass station``: the operator station, the device's own screen, served locally (docs/station.md).

Patient -> Acquire (live 12-lead, electrodes, heart rate) -> Result (print, next patient), the stored
Results and the Device page, in a browser (Chromium in kiosk mode on the device's display). It drives the
same ``RuntimeSession`` as ``elvmass run``. ``--demo`` replays a bundled record through the emulated
front-end on a pseudo-terminal, so it can be tried with no hardware.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

DEFAULT_PORT = 8080
DEMO_FOLDER = "elvmass-station-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other needs station_pin_hash in --config)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    parser.add_argument("--demo", action="store_true",
                        help="emulated front-end replaying a bundled record (no hardware needed)")
    parser.add_argument("--speed", type=float, default=1.0, help="--demo replay speed (default 1 = real time)")
    parser.add_argument("--record", help="--demo: record to replay (default: the bundled CinC 2021 E07505)")
    parser.add_argument("--device", help="front-end serial port or pyserial URL (default: the config's port)")
    parser.add_argument("--config", help="clinic config TOML (thresholds, storage, bundle, port, station_pin_hash)")
    parser.add_argument("--bundle", help="model bundle directory (default: config's bundle_path, else the demo model)")
    parser.add_argument("--backend", choices=("onnxruntime", "litert"), help="inference backend (default: config)")
    parser.add_argument("--precision", choices=("int8", "fp32"), help="model precision (default: config)")
    parser.add_argument("--db", help="SQLite result database (default: config's storage_path; --demo: "
                                     f"./{DEMO_FOLDER}/results.sqlite)")
    parser.add_argument("--hash-pin", action="store_true",
                        help="read an operator PIN (prompt, or one line on stdin) and print the station_pin_hash "
                             "line for the clinic config; then exit")


def _hash_pin() -> int:
    from edge_runtime.station.security import PinError, hash_pin

    if sys.stdin.isatty():
        pin = getpass.getpass("operator PIN: ")
        if getpass.getpass("again: ") != pin:
            print("elvmass station: the two PINs differ", file=sys.stderr)
            return 2
    else:
        pin = sys.stdin.readline().rstrip("\r\n")
    try:
        print(f'station_pin_hash = "{hash_pin(pin)}"')
    except PinError as error:
        print(f"elvmass station: {error}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    from edge_runtime.config import ConfigError, load_config
    from edge_runtime.station.security import bind_refusal, is_loopback

    if args.hash_pin:
        return _hash_pin()
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"elvmass station: {error}", file=sys.stderr)
        return 2
    refusal = bind_refusal(args.host, config.station_pin_hash)
    if refusal:
        print(f"elvmass station: {refusal}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"elvmass station: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    if not args.speed > 0:
        print("elvmass station: --speed must be > 0", file=sys.stderr)
        return 2
    try:
        import uvicorn  # noqa: F401  (the station extra)
        import starlette  # noqa: F401
    except ImportError as error:
        print(f"elvmass station: needs the station extra ({error.name} is missing): pip install 'elvmass[station]'",
              file=sys.stderr)
        return 2
    if not args.demo and not (args.device or config.port):
        print("elvmass station: no front-end: give --device PORT (or set port in --config), or try --demo",
              file=sys.stderr)
        return 2
    from edge_runtime.commands.run import analyzer_from_args

    setup = analyzer_from_args(args, "station")
    if setup is None:
        return 2
    config, analyzer = setup
    from edge_runtime.runtime.warmup import warm_up

    warm_up(analyzer)  # the first window's one-off costs now, not in the first recording
    store_path = Path(args.db) if args.db else (Path(DEMO_FOLDER) / "results.sqlite" if args.demo else config.storage_file)
    if args.demo:
        from edge_runtime.assets import CINC_LVH_RECORD
        from edge_runtime.runtime.emulator_process import EmulatorProcess

        record = Path(args.record) if args.record else CINC_LVH_RECORD
        try:
            with EmulatorProcess(record, speed=args.speed, loop=True) as device:
                label = f"emulated front-end on {device} replaying {record.name} (looped, x{args.speed:g})"
                return _serve(args, config, analyzer, store_path, device, label, stall_timeout_s=5.0)
        except RuntimeError as error:  # the emulator did not start
            print(f"elvmass station: {error}", file=sys.stderr)
            return 1
    device = args.device or config.port
    return _serve(args, config, analyzer, store_path, device, f"serial {device}", stall_timeout_s=2.0)


def _serve(args: argparse.Namespace, config, analyzer, store_path: Path, device: str, label: str,
           stall_timeout_s: float) -> int:
    import logging

    import uvicorn

    from edge_runtime.runtime.sources import SerialSource
    from edge_runtime.runtime.store import ResultStore
    from edge_runtime.station.app import StationSettings, build_app
    from edge_runtime.station.controller import StationController
    from edge_runtime.station.live import Broadcaster
    from edge_runtime.station.security import is_loopback

    ResultStore(store_path).close()  # create the database (0600) now: a wrong path fails here, not mid-patient
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    controller = StationController(analyzer, store_path, lambda: SerialSource(device, stall_timeout_s=stall_timeout_s),
                                   Broadcaster(), source_label=label)
    allowed: tuple[str, ...] = ()
    if is_loopback(args.host):
        names = ("127.0.0.1", "localhost", "[::1]") if args.host != "::1" else ("[::1]", "localhost")
        allowed = tuple(f"{name}:{args.port}" for name in names) + (names if args.port == 80 else ())
    settings = StationSettings(config=config, config_path=args.config, bundle=args.bundle, backend=args.backend,
                               precision=args.precision, source_label=label, allowed_hosts=allowed)
    app = build_app(controller, settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"elvmass station: http://{shown}:{args.port}/  front-end: {label}; results: {store_path}", file=sys.stderr,
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=3))
    server.run()
    return 0 if server.started else 1
