"""The single ``elvmass`` command line.

Each subcommand lives in its own small module that exposes ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so ``elvmass --help``
and the device commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys

# name -> (module implementing it, one-line help). Keep modules light at import time.
COMMANDS: dict[str, tuple[str, str]] = {
    # device side (edge_runtime, firmware_bridge): numpy/scipy/pyserial/onnxruntime only
    "info": ("edge_runtime.commands.info", "summarize an ECG record (format, rate, leads, demographics)"),
    "beats": ("edge_runtime.commands.beats", "R peaks, QRS onset/offset, ECG parameters and quality flags of a record"),
    "analyze": ("edge_runtime.commands.analyze", "LV mass / LVH report for an ECG file"),
    "run": ("edge_runtime.commands.run", "live LV mass / LVH from a serial ECG stream or a replayed file"),
    "results": ("edge_runtime.commands.results", "list or export stored results"),
    "outbox": ("edge_runtime.commands.outbox", "send stored results to the clinic's FHIR server (off unless configured)"),
    "demo": ("edge_runtime.commands.demo", "end-to-end demo: emulated device -> runtime -> report"),
    "station": ("edge_runtime.commands.station", "operator station: the device's touchscreen web app (--demo to try it)"),
    "bench": ("evaluation.commands.bench", "benchmark the device runtime (speed, latency, memory, size)"),
    "bench-station": ("evaluation.commands.bench_station", "measure the operator station's budgets in a real browser"),
    "bench-signal": ("evaluation.commands.bench_signal", "score beat detection, delineation and AF flag on real data"),
    "bench-baseline": ("evaluation.commands.bench_baseline", "how far 0.5 mV respiration wander moves the estimate on real records"),
    "bench-reversal": ("evaluation.commands.bench_reversal", "electrode-reversal detection on real records with simulated swaps"),
    "bench-pacing": ("evaluation.commands.bench_pacing", "pacing flag on real records with synthetic pacemaker spikes"),
    "emulate": ("edge_runtime.commands.emulate", "emulate an acquisition front-end on a pseudo-terminal or socket"),
    "metamorphic": ("evaluation.commands.metamorphic", "metamorphic checks on real unlabelled ECGs: x1.25 voltage, wander, mains, EMG"),
    "bench-scale": ("evaluation.commands.bench_scale", "preprocessing and training throughput for 1 vs 2 workers, and a projection"),
    "fuzz-decoder": ("evaluation.commands.fuzz_decoder", "fuzz and benchmark the serial frame decoder"),
    "hil-check": ("evaluation.commands.hil_check", "conformance check of a front-end on a serial port (pass/fail table)"),
    # training side (torch; install the train extra)
    "synth": ("training.commands.synth", "generate a synthetic cohort (WFDB records + label table)"),
    "synth-check": ("evaluation.commands.synth_check", "measure a cohort against the published voltage/LV-mass target bands"),
    "synth-compare": ("training.commands.synth_compare", "compare synthetic and real ECG feature distributions"),
    "prepare": ("training.commands.prepare", "label table -> sharded training arrays, analyzed in parallel on Dask"),
    "train": ("training.commands.train", "train and cross-validate one eLVMass-Net configuration"),
    "ablate": ("training.commands.ablate", "run the paper's ablation tables and baselines on the same folds"),
    "saliency": ("training.commands.saliency", "gradient saliency per ECG segment, limb vs precordial"),
    "external": ("training.commands.external", "external validation of a trained run on a shifted cohort, with linear recalibration"),
    "export": ("training.commands.export", "export a trained run to ONNX with its preprocessing constants"),
    "quantize": ("quantization.commands.quantize", "INT8 ONNX / TFLite conversion into a verified model bundle"),
}


def _print_overview() -> None:
    print("usage: elvmass <command> [options]\n")
    print("Left-ventricular mass from the 12-lead ECG (research software, not clinically validated).\n")
    print("commands:")
    width = max(len(name) for name in COMMANDS)
    for name, (_, help_text) in COMMANDS.items():
        print(f"  {name.ljust(width)}  {help_text}")
    print("\nRun 'elvmass <command> --help' for the options of one command.")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``elvmass <command> ...``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_overview()
        return 0
    if argv[0] in ("-V", "--version"):
        from elvmass import __version__

        print(f"elvmass {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"elvmass: unknown command {name!r}; see 'elvmass --help'", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as error:
        missing = error.name or "?"
        hint = "install the train extra: pip install 'elvmass[train]'" if missing.split(".")[0] in ("torch", "onnx", "sklearn") else "check the installation"
        print(f"elvmass {name}: needs module {missing!r} ({hint})", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"elvmass {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        code = int(module.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`elvmass info X | head`): stop quietly, as a Unix tool does on SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (OSError, sqlite3.Error) as error:  # permissions, full disk, a file that is not a database ...
        print(f"elvmass {name}: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    """``Permission denied: '/x/y'`` instead of a traceback."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename!r}" if error.filename else error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__
