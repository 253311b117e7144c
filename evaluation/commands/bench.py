"""``elvmass bench``: speed, latency, memory, start-up and size of the device runtime (prints a table).

Rows (targets from the issue):

* whole runtime CPU per second of 12-lead 500 Hz ECG: frame decoding, windowing, ``analyze_window``,
  per-beat model, aggregation and the SQLite commit, on one core (>= 1000x real time);
* per-beat inference latency per backend and precision, and the ratio to torch eager fp32 of the
  same architecture (>= 5x; torch only if installed, imported only here);
* peak RSS of the run process (<= 100 MB): a child process doing exactly the run loop;
* import / start-up time (modules, and bundle + backend ready);
* installed size of the edge environment (<= 300 MB), measured on a venv with only the edge deps;
* electrodes-on to first estimate (<= 12 s): a real-time replay, first clean sample -> first number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SINGLE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", help="model bundle directory (default: the bundled demo model)")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of ECG for the throughput run")
    parser.add_argument("--edge-venv", default=".venv-edge", help="venv with only the edge deps (make env-edge)")
    parser.add_argument("--skip-realtime", action="store_true", help="skip the 10 s real-time first-estimate run")
    parser.add_argument("--labels", help="held-out label table (labels.csv): coverage of the interval and the "
                                         "split-conformal half-width for the manifest's calibration field")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="onnxruntime", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="int8", help=argparse.SUPPRESS)


# --- the run-process worker ---------------------------------------------------------------------

def _encoded_stream(seconds: float) -> tuple[bytes, int]:
    """The bundled record, looped to ``seconds``, as the wire bytes a front-end sends."""
    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.runtime.emulator_process import build_emulator
    from firmware_bridge.frames import FrameType, encode_frame

    emulator = build_emulator(CINC_LVH_RECORD, loop=True)
    wire = bytearray(emulator.handle_bytes(encode_frame(FrameType.GET_INFO, 0, b"")))
    emulator.handle_bytes(encode_frame(FrameType.START, 1, b""))
    n_samples = int(seconds * emulator.info.sample_rate_hz)
    while emulator.sample_index < n_samples:
        wire += emulator.next_frame()
    return bytes(wire), emulator.sample_index


def worker(args: argparse.Namespace) -> dict:
    """Decode -> window -> analyze -> model -> store for ``args.seconds`` of ECG, timed on CPU."""
    import resource
    import tempfile

    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.store import ResultStore
    from firmware_bridge.decoder import StreamDecoder

    ready_start = time.perf_counter()
    analyzer = Analyzer(ClinicConfig(), bundle_path=args.bundle, backend=args.backend, precision=args.precision)
    ready_s = time.perf_counter() - ready_start
    wire, n_samples = _encoded_stream(args.seconds)
    memory_ready = _memory_mb()
    with tempfile.TemporaryDirectory() as folder, ResultStore(Path(folder) / "bench.sqlite") as store:
        session = RuntimeSession(analyzer, PatientContext(77.0, "F", 160.0, 68.0, "BENCH"), store)
        analysis_cpu = [0.0]
        analyze = session.analyze

        def timed_analyze(window):
            start = time.process_time()
            try:
                return analyze(window)
            finally:
                analysis_cpu[0] += time.process_time() - start

        session.analyze = timed_analyze  # type: ignore[method-assign]
        decoder = StreamDecoder(coalesce=True)  # as SerialSource configures it
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        decode_cpu = 0.0
        for offset in range(0, len(wire), 4096):  # serial reads arrive in chunks
            start = time.process_time()
            events = decoder.feed(wire[offset:offset + 4096])
            decode_cpu += time.process_time() - start
            for event in events:
                session.handle(event)
        cpu_s, wall_s = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {"ecg_s": n_samples / 500.0, "cpu_s": cpu_s, "wall_s": wall_s, "decode_cpu_s": decode_cpu,
            "window_cpu_s": analysis_cpu[0], "windows": session.summary.windows,
            "estimates": session.summary.n_estimates, "ready_s": ready_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "rss_after_imports_and_load": memory_ready, "rss_end": _memory_mb()}


def _memory_mb() -> dict[str, float]:
    """Resident memory now (total, private anonymous, file-backed shared libraries), MB."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    values = {}
    for key in ("VmRSS", "RssAnon", "RssFile"):
        for line in text.splitlines():
            if line.startswith(key + ":"):
                values[key] = int(line.split()[1]) / 1024.0
    return values


# --- measurements in the bench process ----------------------------------------------------------

def _child(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, **SINGLE_CORE_ENV))


def import_time_s() -> float:
    """Wall time to import the run command's modules in a fresh interpreter, minus a bare interpreter."""
    probe = ("import edge_runtime.commands.run, edge_runtime.runtime.session, edge_runtime.runtime.pipeline, "
             "edge_runtime.preprocess, edge_runtime.inference, firmware_bridge.transport")

    def best(code: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            _child([sys.executable, "-c", code])
            times.append(time.perf_counter() - start)
        return min(times)

    return best(probe) - best("pass")


def beat_latencies(bundle: str | None) -> tuple[list[dict], dict]:
    """Per-beat (batch of 1) latency for every backend x precision the bundle and this machine have."""
    import numpy as np

    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.contract import model_inputs
    from edge_runtime.record import PatientContext
    from edge_runtime.inference import BACKENDS, available_backends, load_predictor
    from edge_runtime.formats import read_record
    from edge_runtime.model_bundle import load_bundle
    from edge_runtime.preprocess import analyze_record

    loaded = load_bundle(bundle)
    analysis = analyze_record(read_record(CINC_LVH_RECORD))
    beats = analysis.beats[:8].astype(np.float32)
    row_demo, row_params, _ = model_inputs(PatientContext(77.0, "F", 160.0, 68.0),
                                           {"qrs_ms": 90.0, "p_axis": 50.0, "r_axis": 10.0, "t_axis": 30.0})
    demographics = np.repeat(row_demo[None, :], len(beats), axis=0)
    parameters = np.repeat(row_params[None, :], len(beats), axis=0)
    rows = []
    installed = available_backends()
    for backend in BACKENDS:
        for precision in ("fp32", "int8"):
            fmt = {"onnxruntime": "onnx", "litert": "tflite"}[backend]
            if not any(m.format == fmt and m.precision == precision for m in loaded.models):
                rows.append({"backend": backend, "precision": precision, "ms": None, "note": "not in bundle"})
                continue
            if backend not in installed:
                rows.append({"backend": backend, "precision": precision, "ms": None, "note": "runtime not installed"})
                continue
            predictor = load_predictor(loaded, backend=backend, precision=precision, threads=1)
            times = []
            for row in range(len(beats)):
                sl = slice(row, row + 1)
                times.append(predictor.time_per_beat_ms(beats[sl], demographics[sl], parameters[sl], repeats=20))
            rows.append({"backend": backend, "precision": precision, "ms": float(np.median(times)), "note": ""})
    torch_row = torch_eager_ms(loaded, beats, demographics, parameters)
    return rows, torch_row


def torch_eager_ms(bundle, beats, demographics, parameters) -> dict:
    """torch eager fp32, batch of 1, one thread, of the architecture the bundle was trained with."""
    try:
        # lazy and optional: the reference row needs the train extra; the device never has it.
        import torch  # lazy

        from training.model import ElvMassNet, ModelConfig  # lazy
    except ImportError as error:
        return {"ms": None, "note": f"torch/training not installed ({error.name})"}
    import numpy as np

    if bundle.manifest.export is None:
        return {"ms": None, "note": "the bundle names no trained architecture (manifest export is null)"}
    config_dict = bundle.manifest.export.model_config
    config = ModelConfig(**config_dict)
    torch.set_num_threads(1)
    model = ElvMassNet(config).eval()  # latency does not depend on the weights' values
    times = []
    with torch.inference_mode():
        for row in range(len(beats)):
            inputs = [torch.from_numpy(a[row:row + 1]) for a in (beats, demographics, parameters)]
            model(*inputs)
            runs = []
            for _ in range(20):
                start = time.perf_counter()
                model(*inputs)
                runs.append((time.perf_counter() - start) * 1000.0)
            times.append(float(np.median(runs)))
    return {"ms": float(np.median(times)), "note": f"ElvMassNet({', '.join(f'{k}={v}' for k, v in config_dict.items())})"}


def first_estimate_s(bundle: str | None) -> float | None:
    """Real-time replay: seconds from the first clean sample to the first number."""
    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.sources import ReplaySource

    session = RuntimeSession(Analyzer(ClinicConfig(), bundle_path=bundle), PatientContext(77.0, "F", 160.0, 68.0),
                             max_estimates=1, duration_s=30.0)
    return session.run(ReplaySource(CINC_LVH_RECORD, speed=1.0, chunk_s=0.01)).first_estimate_s


def venv_size_mb(path: str) -> float | None:
    root = Path(path)
    if not (root / "bin" / "python").exists():
        return None
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return total / 1e6


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def run(args: argparse.Namespace) -> int:
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    from edge_runtime.model_bundle import BundleError

    results: dict = {}
    bundle = ["--bundle", args.bundle] if args.bundle else []
    child = _child([sys.executable, "-m", "elvmass", "bench", "--worker", "--seconds", str(args.seconds), *bundle])
    if child.returncode != 0:
        print(f"elvmass bench: runtime worker failed:\n{child.stderr[-2000:]}", file=sys.stderr)
        return 1
    results["runtime"] = json.loads(child.stdout.strip().splitlines()[-1])
    results["import_s"] = import_time_s()
    try:
        results["latency"], results["torch"] = beat_latencies(args.bundle)
    except BundleError as error:
        print(f"elvmass bench: {error}", file=sys.stderr)
        return 1
    results["edge_venv_mb"] = venv_size_mb(args.edge_venv)
    results["first_estimate_s"] = None if args.skip_realtime else first_estimate_s(args.bundle)
    if args.labels:
        from dataclasses import asdict

        from edge_runtime.config import ClinicConfig
        from evaluation.interval_check import interval_check
        from edge_runtime.runtime.pipeline import Analyzer

        results["interval"] = asdict(interval_check(Analyzer(ClinicConfig(), bundle_path=args.bundle), args.labels))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("\n".join(table(results, args)))
    return 0


def table(results: dict, args: argparse.Namespace) -> list[str]:
    """The printed table: measurement, value, target."""
    rt = results["runtime"]
    cpu_per_s = rt["cpu_s"] / rt["ecg_s"]
    rows = [("whole runtime, CPU per s of 12-lead 500 Hz ECG (1 core)",
             f"{cpu_per_s * 1000:.2f} ms = {1 / cpu_per_s:,.0f}x real time "
             f"({rt['ecg_s']:.0f} s ECG, {rt['windows']} windows, {rt['estimates']} estimates)", ">= 1000x")]
    per_s = lambda key: rt[key] / rt["ecg_s"] * 1000  # noqa: E731 - ms of CPU per s of ECG
    rows.append(("  of which frame decoding (firmware bridge)", f"{per_s('decode_cpu_s'):.2f} ms", ""))
    rows.append(("  of which window analysis + model + SQLite commit", f"{per_s('window_cpu_s'):.2f} ms "
                 f"({rt['window_cpu_s'] / max(rt['windows'], 1) * 1000:.1f} ms per 10 s window)", ""))
    rows.append(("  of which per-frame event handling and windowing",
                 f"{per_s('cpu_s') - per_s('decode_cpu_s') - per_s('window_cpu_s'):.2f} ms", ""))
    torch_ms = results["torch"]["ms"]
    for row in results["latency"]:
        ratio = "" if row["ms"] is None or torch_ms is None else f", {torch_ms / row['ms']:.1f}x vs torch eager"
        rows.append((f"per-beat inference, {row['backend']} {row['precision']}",
                     _fmt(row["ms"], "{:.3f} ms") + ratio + (f" ({row['note']})" if row["note"] else ""), ">= 5x"))
    rows.append(("per-beat inference, torch eager fp32 (reference)",
                 _fmt(torch_ms, "{:.3f} ms") + f" ({results['torch']['note']})", ""))
    ready = rt.get("rss_after_imports_and_load") or {}
    rows.append(("peak RSS of the run process", f"{rt['peak_rss_mb']:.1f} MB", "<= 100 MB"))
    if ready:
        rows.append(("  RSS once imported + model loaded (private / shared libs)",
                     f"{ready['VmRSS']:.1f} MB ({ready['RssAnon']:.1f} / {ready['RssFile']:.1f})", ""))
    rows.append(("import time of the run modules", f"{results['import_s']:.2f} s", ""))
    rows.append(("start-up: bundle verified + backend ready", f"{rt['ready_s']:.2f} s", ""))
    size = results["edge_venv_mb"]
    rows.append(("installed size of the edge environment",
                 _fmt(size, "{:.0f} MB") + ("" if size is not None else f" (no venv at {args.edge_venv}; make env-edge)"),
                 "<= 300 MB"))
    rows.append(("electrodes-on to first estimate (real-time replay)", _fmt(results["first_estimate_s"], "{:.2f} s"),
                 "<= 12 s"))
    interval = results.get("interval")
    if interval:
        current = interval["current_halfwidth_g"]
        rows.append((f"interval on {interval['n_with_number']} held-out subjects (of {interval['n_records']})",
                     ("no interval in the bundle" if current is None else
                      f"+-{current:.1f} g covers {interval['current_coverage']:.1%}")
                     + f"; split-conformal {interval['coverage']:.0%} half-width {interval['conformal_halfwidth_g']:.1f} g"
                     + f"; MAE {interval['mae_g']:.1f} g", f">= {interval['coverage']:.0%}"))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'measurement'.ljust(width)}  {'value'.ljust(value_width)}  target", "-" * (width + value_width + 12)]
    lines += [f"{name.ljust(width)}  {value.ljust(value_width)}  {target}" for name, value, target in rows]
    lines.append(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; numbers from this run only")
    return lines
