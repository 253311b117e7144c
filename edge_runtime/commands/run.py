"""``elvmass run``: live LV mass / LVH from a serial ECG stream, the emulator's pty, or a replayed file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

_LOG = logging.getLogger("elvmass.run")


def add_patient_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("patient (entered by the operator; validated)")
    group.add_argument("--age", help="age in years")
    group.add_argument("--sex", help="M or F")
    group.add_argument("--height", help="height in cm")
    group.add_argument("--weight", help="weight in kg")
    group.add_argument("--id", dest="patient_id", help="pseudonymous patient id (never a name)")
    group.add_argument("--prefer", choices=("file", "operator"),
                       help="where the file's header and the entered values disagree, use this side (default: "
                            "refuse and name both values)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and site")
    group.add_argument("--config", help="clinic config TOML (thresholds, mains, storage, bundle, port, backend)")
    group.add_argument("--bundle", help="model bundle directory (default: config's bundle_path, else the demo model)")
    group.add_argument("--backend", choices=("onnxruntime", "litert"), help="inference backend (default: config)")
    group.add_argument("--precision", choices=("int8", "fp32"), help="model precision (default: config)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("source (one of)")
    source.add_argument("--port", help="serial port or pyserial URL (/dev/ttyUSB0, the emulator's pty, socket://...)")
    source.add_argument("--replay", metavar="RECORD", help="replay an ECG file at real time")
    source.add_argument("--speed", type=float, default=1.0, help="replay speed factor (--replay only; default 1)")
    add_patient_arguments(parser)
    add_model_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--db", help="SQLite result database (default: config's storage_path)")
    out.add_argument("--no-db", action="store_true", help="do not store results")
    out.add_argument("--report-dir", help="write each result's JSON (and PNG with the report extra) here")
    out.add_argument("--json", action="store_true", help="print the session summary as JSON at the end")
    out.add_argument("--quiet", action="store_true", help="no live status line")
    out.add_argument("--log", metavar="FILE", help="append the developer detail (every event with its measurements, "
                                                   "files written) to this log file")
    stop = parser.add_argument_group("stopping")
    stop.add_argument("--max-estimates", type=int, help="stop after this many windows with a number")
    stop.add_argument("--max-windows", type=int, help="stop after this many analyzed 10 s windows")
    stop.add_argument("--duration", type=float, help="stop after this many seconds")


def patient_from_args(args: argparse.Namespace, command: str):
    """The validated operator patient context, or ``None`` after printing why it was refused."""
    from edge_runtime.runtime.patient import PatientInputError, patient_from_operator

    try:
        return patient_from_operator(args.age, args.sex, args.height, args.weight, args.patient_id)
    except PatientInputError as error:
        print(f"elvmass {command}: {error}", file=sys.stderr)
        return None


def analyzer_from_args(args: argparse.Namespace, command: str):
    """``(config, Analyzer)`` from ``--config/--bundle/--backend/--precision``, or ``None`` after an error."""
    from edge_runtime.config import ConfigError, load_config
    from edge_runtime.model_bundle import BundleError
    from edge_runtime.runtime.pipeline import Analyzer

    try:
        config = load_config(args.config)
        analyzer = Analyzer(config, bundle_path=args.bundle, backend=args.backend, precision=args.precision)
    except (ConfigError, BundleError) as error:
        print(f"elvmass {command}: {error}", file=sys.stderr)
        return None
    except ImportError as error:
        print(f"elvmass {command}: backend not installed: {error}", file=sys.stderr)
        return None
    return config, analyzer


def write_outputs(result, report: dict, report_dir: str | Path, stem: str) -> list[str]:
    """Write ``<stem>.json`` and, with matplotlib, ``<stem>.png``; returns the paths written."""
    from edge_runtime.runtime.report import render_report

    folder = Path(report_dir)
    folder.mkdir(parents=True, exist_ok=True)
    previous_umask = os.umask(0o077)  # reports hold health data: owner-only files
    try:
        return _write_outputs(result, report, folder, stem)
    finally:
        os.umask(previous_umask)


def _write_outputs(result, report: dict, folder: Path, stem: str) -> list[str]:
    from edge_runtime.runtime.report import render_report

    written = []
    try:
        analysis = result.analysis
        use_conditioned = analysis is not None and analysis.conditioned.shape[0] == 12
        signals = analysis.conditioned if use_conditioned else result.signals_mv
        fs = analysis.fs if use_conditioned else result.fs
        beats = analysis.beats[result.estimate.beat_rows] if use_conditioned and result.estimate.beat_rows else None
        png = render_report(report, signals, fs, folder / f"{stem}.png", beats=beats, beat_fs=fs)
        report["report_png"] = str(png)
        written.append(str(png))
    except ImportError:
        report["report_png"] = None
        report.setdefault("notes", []).append("PNG not written: needs the report extra (pip install 'elvmass[report]')")
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    written.insert(0, str(json_path))
    return written


def run(args: argparse.Namespace) -> int:
    from edge_runtime.commands import exit_codes
    from edge_runtime.runtime.display import LiveDisplay
    from edge_runtime.runtime.patient import PatientConflictError, operator_only, resolve_patient
    from edge_runtime.runtime.report import summary_lines
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.store import ResultStore, StoreError

    if args.log:
        try:
            handler = logging.FileHandler(args.log, encoding="utf-8")
        except OSError as error:
            print(f"elvmass run: cannot open the log {args.log}: {error.strerror or error}", file=sys.stderr)
            return exit_codes.ERROR
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        logging.getLogger("elvmass").addHandler(handler)
        logging.getLogger("elvmass").setLevel(logging.INFO)
    if args.port and args.replay:
        print("elvmass run: give one source: --port PORT_OR_URL or --replay RECORD, not both", file=sys.stderr)
        return exit_codes.USAGE
    operator = patient_from_args(args, "run")
    if operator is None:
        return exit_codes.USAGE
    setup = analyzer_from_args(args, "run")
    if setup is None:
        return exit_codes.USAGE
    config, analyzer = setup
    if not (args.port or args.replay or config.port):
        print("elvmass run: no source: give --port PORT_OR_URL, --replay RECORD, or set port in --config",
              file=sys.stderr)
        return exit_codes.USAGE
    if not args.replay:  # a live patient: what the operator must enter is checked before the port
        missing = preflight_patient(operator)
        if missing:
            print(f"elvmass run: {missing}", file=sys.stderr)
            return exit_codes.USAGE
    source = _open_source(args, config)
    if source is None:
        return exit_codes.ERROR
    # Pre-flight: what would make every window fail is refused now, not after minutes of streaming.
    record = getattr(source, "record", None)
    try:
        provenance = operator_only(operator) if record is None else resolve_patient(operator, record.patient,
                                                                                     args.prefer)
    except PatientConflictError as error:
        print(f"elvmass run: {error}", file=sys.stderr)
        return exit_codes.USAGE
    missing = preflight_patient(provenance.patient)
    if missing:
        print(f"elvmass run: {missing}", file=sys.stderr)
        return exit_codes.USAGE
    if provenance.patient.bsa_m2 is None:
        print("elvmass run: height and weight not entered: LV mass without an LVH verdict "
              "(pass --height and --weight for one)", file=sys.stderr)
    try:
        store = None if args.no_db else ResultStore(args.db or config.storage_file)
    except StoreError as error:
        print(f"elvmass run: {error}", file=sys.stderr)
        return exit_codes.ERROR
    display = None if args.quiet else LiveDisplay(sys.stderr, mains_hz=config.mains_hz)

    def say(text: str) -> None:  # never into the middle of the live status line
        if display is not None:
            display.message(text)
        else:
            print(text, file=sys.stderr)

    def on_result(result) -> None:
        report = result.report
        if args.report_dir:
            stem = f"result_{report.get('result_id', session.summary.windows):05d}"
            written = write_outputs(result, report, args.report_dir, stem)
            _LOG.info("wrote %s", ", ".join(written))  # file names are log detail, not screen text
        if not args.json:
            if display is not None and display.tty:
                display.message("")
            print("\n".join(summary_lines(report)) + "\n", flush=True)

    from edge_runtime.runtime.warmup import warm_up

    warm_up(analyzer)  # the first window's one-off costs (designs, buffers, model set-up) now, not mid-stream
    session = RuntimeSession(analyzer, provenance.patient, store, on_result=on_result,
                             on_status=None if display is None else display.update,
                             max_estimates=args.max_estimates, duration_s=args.duration,
                             max_windows=args.max_windows,
                             on_log=None if display is None else display.log, provenance=provenance)
    try:
        summary = session.run(source)
    except Exception as error:  # a transport that gives up (TransportError) ends the run with its reason
        if type(error).__name__ != "TransportError":
            raise
        say(f"elvmass run: {error}")
        return exit_codes.ERROR
    finally:
        if display is not None:
            display.close()
        if store is not None:
            store.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(f"{summary.windows} window(s), {summary.n_estimates} estimate(s)"
              + (f", stored in {store.path}" if store is not None else "")
              + (f", reports in {args.report_dir}" if args.report_dir else ""), file=sys.stderr)
        if summary.link_unstable:
            print("elvmass run: link unstable: check the cable (windows kept breaking off)", file=sys.stderr)
    return exit_codes.for_session([r["estimate_status"] for r in summary.results])


def preflight_patient(patient) -> str | None:
    """Why the patient data would make every window fail (``None`` when it would not)."""
    if patient.sex is None:
        from edge_runtime.flags import REGISTRY

        return REGISTRY["sex_unknown"].operator_text
    return None


def serial_ports() -> list[str]:
    """The serial ports the system lists (``serial.tools.list_ports``), each with its description."""
    try:
        from serial.tools import list_ports
    except ImportError:  # pyserial is a core dependency; be clear if it is missing anyway
        return []
    return [f"{port.device} ({port.description})" if port.description and port.description != "n/a" else port.device
            for port in sorted(list_ports.comports(), key=lambda p: p.device)]


def missing_port_message(url: str) -> str | None:
    """A clear refusal when ``url`` is a device path that does not exist (pyserial URLs are not checked)."""
    if "://" in url or Path(url).exists():
        return None
    found = serial_ports()
    listing = ", ".join(found) if found else "none (is the front-end plugged in?)"
    return f"serial port {url} does not exist. Serial ports found: {listing}"


def _open_source(args: argparse.Namespace, config):
    from edge_runtime.formats import RecordError
    from edge_runtime.runtime.sources import ReplaySource, SerialSource

    if args.replay:
        try:
            return ReplaySource(args.replay, speed=args.speed)
        except (RecordError, ValueError) as error:
            print(f"elvmass run: {error}", file=sys.stderr)
            return None
    url = args.port or config.port
    problem = missing_port_message(url)
    if problem:
        print(f"elvmass run: {problem}", file=sys.stderr)
        return None
    return SerialSource(url)
