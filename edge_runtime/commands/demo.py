"""``elvmass demo``: emulated device on a pty -> the live runtime -> the report, on embedded defaults.

The emulator (a separate process, :mod:`edge_runtime.runtime.emulator_process`) replays the bundled real
12-lead record ``CINC_LVH_RECORD`` (CinC 2021 E07505: woman, 77 y, ECG read as LVH) over a
pseudo-terminal exactly as a front-end on a USB serial port would; the runtime reads it through the
firmware bridge, analyzes the first clean 10 s window with the bundled demo model, stores the
result, prints the report and writes the JSON and (with the report extra) the PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# E07505's header gives age and sex; height and weight are plausible values for the demo, stated as such.
DEMO_PATIENT = {"age": 77, "sex": "F", "height": 160, "weight": 68, "patient_id": "DEMO-0001"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="elvmass-demo", help="folder for the report, PNG and demo database "
                                                              "(default ./elvmass-demo)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (default 1 = real time)")
    parser.add_argument("--backend", choices=("onnxruntime", "litert"), default=None,
                        help="inference backend (default: onnxruntime)")
    parser.add_argument("--precision", choices=("int8", "fp32"), default="int8", help="model precision (default int8)")
    parser.add_argument("--bundle", help="model bundle directory (default: the bundled demo model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--quiet", action="store_true", help="no live status line")


def run(args: argparse.Namespace) -> int:
    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.commands.run import write_outputs
    from edge_runtime.config import ClinicConfig
    from edge_runtime.model_bundle import BundleError
    from edge_runtime.runtime.display import LiveDisplay
    from edge_runtime.runtime.emulator_process import EmulatorProcess
    from edge_runtime.runtime.patient import patient_from_operator
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.report import summary_lines
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.sources import SerialSource
    from edge_runtime.runtime.store import ResultStore

    started = time.monotonic()
    out = Path(args.out)
    config = ClinicConfig(storage_path=str(out / "demo-results.sqlite"))
    try:
        analyzer = Analyzer(config, bundle_path=args.bundle, backend=args.backend, precision=args.precision)
    except (BundleError, ImportError) as error:
        print(f"elvmass demo: cannot load the bundled demo model: {error}", file=sys.stderr)
        return 1
    from edge_runtime.formats import read_record
    from edge_runtime.runtime.patient import resolve_patient

    # Age and sex come from E07505's header, height and weight are the demo's entries: the report says so.
    entered = patient_from_operator(height=DEMO_PATIENT["height"], weight=DEMO_PATIENT["weight"],
                                    patient_id=DEMO_PATIENT["patient_id"])
    provenance = resolve_patient(entered, read_record(CINC_LVH_RECORD).patient)
    patient = provenance.patient
    print(f"elvmass demo: emulated front-end replaying {CINC_LVH_RECORD.name} (CinC 2021, woman 77 y, ECG read as "
          f"LVH) on a pseudo-terminal; patient {demo_patient_text()}", file=sys.stderr)
    display = None if args.quiet else LiveDisplay(sys.stderr, mains_hz=config.mains_hz)
    results = []
    out.mkdir(parents=True, exist_ok=True)
    try:
        with EmulatorProcess(CINC_LVH_RECORD, speed=args.speed) as port:
            print(f"elvmass demo: device on {port}", file=sys.stderr)
            with ResultStore(config.storage_file) as store:
                session = RuntimeSession(analyzer, patient, store, on_result=results.append,
                                         on_status=None if display is None else display.update,
                                         max_estimates=1, max_windows=3, duration_s=60.0 / args.speed + 30.0,
                                         on_log=None if display is None else display.log,
                                         provenance=provenance)
                session.run(SerialSource(port, stall_timeout_s=5.0))
    except RuntimeError as error:  # the emulator process did not start
        print(f"elvmass demo: {error}", file=sys.stderr)
        return 1
    finally:
        if display is not None:
            display.close()
    if not results:
        print("elvmass demo: no window was completed (see the events above)", file=sys.stderr)
        return 1
    result = results[-1]
    report = result.report
    written = write_outputs(result, report, out, "demo-report")
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(summary_lines(report)))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if report.get("report_png") is None:
        print("elvmass demo: the PNG report needs the report extra: pip install 'elvmass[report]'", file=sys.stderr)
    print(f"elvmass demo: done in {elapsed:.1f} s; result stored in {config.storage_file} "
          f"(list with: elvmass results --db {config.storage_file})", file=sys.stderr)
    from edge_runtime.commands import exit_codes

    return exit_codes.for_status(report["estimate_status"])


def demo_patient_text() -> str:
    """``id DEMO-0001, woman, 77 y, 160 cm, 68 kg (height and weight assumed for the demo)``."""
    p = DEMO_PATIENT
    sex = {"F": "woman", "M": "man"}[p["sex"]]
    return (f"id {p['patient_id']}, {sex}, {p['age']} y, {p['height']} cm, {p['weight']} kg "
            "(age and sex from the file; height and weight assumed for the demo)")
