"""``elvmass bench``: speed, latency, memory, start-up and size of the device runtime (prints a table).

Rows (targets from the issue):

* whole runtime CPU per second of 12-lead 500 Hz ECG: frame decoding, windowing, ``analyze_window``,
  per-beat model, aggregation and the SQLite commit, on one core (>= 1000x real time); the decoder gets
  the stream in reads of the size a real-time serial read returns (``transport.steady_read_bytes``);
* inference latency per window (one call with the window's ~14 clean beats, as the runtime calls it)
  and per beat, per backend and precision, and the ratio to torch eager fp32 of the same architecture
  on the same batch (the choice >= 10x per window; torch only if installed, imported only here);
* which artifacts passed the bundle's verification, and the fastest of them (``--write-config PATH``
  writes it into the clinic config); INT8 file sizes against fp32 ONNX (>= 3x smaller); the
  instruction-set-neutral cost (MACs, bytes moved) per window beside the measured times;
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
    parser.add_argument("--write-config", metavar="PATH",
                        help="write the fastest verified backend/precision measured here into this clinic config "
                             "(TOML; created if absent, other keys kept)")
    parser.add_argument("--models-only", action="store_true",
                        help="only the model rows (latency per artifact, choice, sizes, cost): skips the runtime, "
                             "memory, start-up, environment and real-time rows")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per artifact (median; default 20)")
    parser.add_argument("--stages", action="store_true",
                        help="only where the run loop's CPU goes: CPU per window of each stage of the throughput run "
                             "(best of 5 passes over its windows), one core")
    parser.add_argument("--read-bytes", type=int, default=None,
                        help="bytes per serial read fed to the decoder (default: what one real-time read returns, "
                             "~760 B at 500 Hz; 4096 models a backlog)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default=None, help=argparse.SUPPRESS)


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
    from edge_runtime.runtime.warmup import warm_up
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.transport import steady_read_bytes

    ready_start = time.perf_counter()
    analyzer = Analyzer(ClinicConfig(), bundle_path=args.bundle, backend=args.backend, precision=args.precision)
    warm_up(analyzer)  # as `elvmass run` does before its stream opens
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
        read_bytes = args.read_bytes or steady_read_bytes(len(wire) / args.seconds)  # one real-time serial read
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        decode_cpu = 0.0
        for offset in range(0, len(wire), read_bytes):
            start = time.process_time()
            events = decoder.feed(wire[offset:offset + read_bytes])
            decode_cpu += time.process_time() - start
            for event in events:
                session.handle(event)
        cpu_s, wall_s = time.process_time() - cpu_start, time.perf_counter() - wall_start
    return {"ecg_s": n_samples / 500.0, "read_bytes": read_bytes, "cpu_s": cpu_s, "wall_s": wall_s, "decode_cpu_s": decode_cpu,
            "window_cpu_s": analysis_cpu[0], "windows": session.summary.windows,
            "estimates": session.summary.n_estimates, "ready_s": ready_s,
            # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report the parent bench process
            # (which has imported torch for the reference row) as this child's peak.
            "peak_rss_mb": _memory_mb().get("VmHWM", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
            "rss_after_imports_and_load": memory_ready, "rss_end": _memory_mb()}


def _memory_mb() -> dict[str, float]:
    """Resident memory now (total, private anonymous, file-backed shared libraries), MB."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    values = {}
    for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
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


def model_latencies(bundle: str | None, repeats: int = 20) -> tuple[list[dict], dict]:
    """Per-window and per-beat latency of every backend x precision, and torch eager fp32 on the same inputs.

    torch eager is timed in turn with the artifacts (``model_choice.alternating_median_ms``), so the
    ratios the table prints compare calls that saw the same machine load.
    """
    from dataclasses import asdict

    from edge_runtime.model_bundle import load_bundle
    from evaluation.model_choice import time_artifacts

    loaded = load_bundle(bundle)
    torch_call, torch_info = torch_eager_call(loaded)
    rows, reference = time_artifacts(loaded, repeats, reference={"torch": torch_call} if torch_call else None)
    if torch_call is not None:
        torch_info.update(window_ms=reference["torch"], beat_ms=reference["torch/beat"])
    return [asdict(r) for r in rows], torch_info


def torch_eager_call(bundle):
    """torch eager fp32, one thread, of the architecture the bundle was trained with: ``(call, info)``.

    ``call(inputs)`` runs the model on numpy ``(beats, demographics, parameters)``; ``None`` with the
    reason in ``info["note"]`` when torch or the architecture is not available.
    """
    none = {"window_ms": None, "beat_ms": None}
    try:
        # lazy and optional: the reference row needs the train extra; the device never has it.
        import torch  # lazy

        from training.model import ElvMassNet, ModelConfig  # lazy
    except ImportError as error:
        return None, {**none, "note": f"torch/training not installed ({error.name})"}
    if bundle.manifest.export is None:
        return None, {**none, "note": "the bundle names no trained architecture (manifest export is null)"}
    config_dict = bundle.manifest.export.model_config
    torch.set_num_threads(1)
    model = ElvMassNet(ModelConfig(**config_dict)).eval()  # latency does not depend on the weights' values
    def call(inputs: tuple) -> None:
        with torch.inference_mode():  # from_numpy shares the arrays' memory: a few us against ~4 ms
            model(*(torch.from_numpy(a) for a in inputs))

    return call, {**none, "note": f"ElvMassNet({', '.join(f'{k}={v}' for k, v in config_dict.items()) or 'defaults'})"}


def model_costs(bundle: str | None) -> dict[str, dict]:
    """Instruction-set-neutral cost per precision (from the bundle's ONNX files); empty without ``onnx``."""
    from edge_runtime.model_bundle import load_bundle
    from evaluation.model_choice import bytes_moved

    try:
        import onnx  # noqa: F401  (host tool: the train extra)
    except ImportError:
        return {}
    loaded = load_bundle(bundle)
    costs = {}
    fp32 = next((m.path for m in loaded.models if m.format == "onnx" and m.precision == "fp32"), None)
    for model in sorted(loaded.models, key=lambda m: m.precision != "fp32"):
        if model.format == "onnx" and model.precision not in costs:
            try:
                costs[model.precision] = bytes_moved(model.path, structure_from=fp32)
            except (OSError, ValueError) as error:  # deploy/ absent (installed wheel) or an uncountable graph
                costs[model.precision] = {"error": str(error)}
    return costs


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
    if args.worker and args.stages:
        from evaluation.runtime_stages import stage_breakdown

        print(json.dumps(stage_breakdown(args.bundle, args.seconds, args.backend or "onnxruntime",
                                         args.precision or "int8", read_bytes=args.read_bytes)))
        return 0
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.stages:
        return _print_stages(args)
    from edge_runtime.config import ClinicConfig
    from edge_runtime.model_bundle import BundleError
    from evaluation.model_choice import ArtifactTiming, choose, write_config_choice

    results: dict = {}
    try:
        results["latency"], results["torch"] = model_latencies(args.bundle, args.repeats)
    except BundleError as error:
        print(f"elvmass bench: {error}", file=sys.stderr)
        return 1
    chosen = choose([ArtifactTiming(**row) for row in results["latency"]])
    results["choice"] = None if chosen is None else {"backend": chosen.backend, "precision": chosen.precision}
    results["default"] = {"backend": ClinicConfig().backend, "precision": ClinicConfig().precision}
    results["cost"] = model_costs(args.bundle)
    if not args.models_only:
        bundle = ["--bundle", args.bundle] if args.bundle else []
        picked = results["choice"] or results["default"]
        reads = ["--read-bytes", str(args.read_bytes)] if args.read_bytes else []
        child = _child([sys.executable, "-m", "elvmass", "bench", "--worker", "--seconds", str(args.seconds), *bundle,
                        *reads, "--backend", picked["backend"], "--precision", picked["precision"]])
        if child.returncode != 0:
            print(f"elvmass bench: runtime worker failed:\n{child.stderr[-2000:]}", file=sys.stderr)
            return 1
        results["runtime"] = json.loads(child.stdout.strip().splitlines()[-1])
        results["runtime"].update(picked)
        results["import_s"] = import_time_s()
        results["edge_venv_mb"] = venv_size_mb(args.edge_venv)
        results["first_estimate_s"] = None if args.skip_realtime else first_estimate_s(args.bundle)
    if args.labels and not args.models_only:
        from dataclasses import asdict

        from edge_runtime.config import ClinicConfig
        from evaluation.interval_check import interval_check
        from edge_runtime.runtime.pipeline import Analyzer

        results["interval"] = asdict(interval_check(Analyzer(ClinicConfig(), bundle_path=args.bundle), args.labels))
    if args.write_config:
        if chosen is None:
            print("elvmass bench: no verified artifact ran here; config not written", file=sys.stderr)
            return 1
        write_config_choice(args.write_config, chosen.backend, chosen.precision)
        results["config_written"] = str(args.write_config)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("\n".join(table(results, args)))
    return 0


def _print_stages(args: argparse.Namespace) -> int:
    """``--stages``: the per-stage CPU of the run loop, in a single-thread child (default config backend)."""
    from edge_runtime.config import ClinicConfig

    config = ClinicConfig()
    bundle = ["--bundle", args.bundle] if args.bundle else []
    reads = ["--read-bytes", str(args.read_bytes)] if args.read_bytes else []
    child = _child([sys.executable, "-m", "elvmass", "bench", "--worker", "--stages", "--seconds", str(args.seconds),
                    *bundle, *reads, "--backend", args.backend or config.backend, "--precision", args.precision or config.precision])
    if child.returncode != 0:
        print(f"elvmass bench: stage worker failed:\n{child.stderr[-2000:]}", file=sys.stderr)
        return 1
    result = json.loads(child.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"CPU per 10 s window, one core, best of 5 passes over the {result['windows']} windows of "
          f"{result['ecg_s']:.0f} s of ECG (a stage's time includes the stages indented under it)")
    for label, ms in result["stages"]:
        print(f"{label:<56s} {ms:7.3f} ms")
    print(f"{'frame decoding, per s of ECG (the run itself)':<56s} {result['decode_ms_per_s']:7.3f} ms "
          f"(reads of {result.get('read_bytes', '?')} B)")
    return 0


def model_rows(results: dict) -> list[tuple[str, str, str]]:
    """Latency per artifact beside torch eager, the verified choice, INT8 sizes and the neutral cost."""
    from evaluation.model_choice import WINDOW_BEATS

    torch_row = results["torch"]
    torch_window, torch_beat = torch_row.get("window_ms"), torch_row.get("beat_ms")
    choice = results.get("choice") or {}
    rows = []
    for row in results["latency"]:
        name = f"{row['backend']} {row['precision']}"
        chosen = choice == {"backend": row["backend"], "precision": row["precision"]}
        if row["window_ms"] is None:
            rows.append((f"inference CPU per window ({WINDOW_BEATS} beats, 1 call), {name}", f"n/a ({row['note']})", ""))
            continue
        ratio = "" if torch_window is None else (f", {torch_window / row['window_ms']:.1f}x vs torch eager same batch, "
                                                 f"{WINDOW_BEATS * torch_beat / row['window_ms']:.1f}x vs torch one call per beat")
        beat_ratio = "" if torch_beat is None else f", {torch_beat / row['beat_ms']:.1f}x"
        status = ("verified" if row["passed"] else "FAILED verification") + ("; CHOSEN" if chosen else "")
        rows.append((f"inference CPU per window ({WINDOW_BEATS} beats, 1 call), {name}",
                     f"{row['window_ms']:.3f} ms{ratio} (1 beat: {row['beat_ms']:.3f} ms{beat_ratio}; {status})",
                     ">= 10x (choice)" if chosen else ""))
    rows.append((f"inference CPU per window, torch eager fp32 (reference, same {WINDOW_BEATS} beats)",
                 _fmt(torch_window, "{:.3f} ms") + (f" (1 beat: {torch_beat:.3f} ms; one call per beat = "
                                                    f"{WINDOW_BEATS * torch_beat:.3f} ms)" if torch_beat else "")
                 + f" ({torch_row['note']})", ""))
    default = results["default"]
    rows.append(("choice: fastest verified artifact measured here",
                 "none" if not choice else f"backend = {choice['backend']}, precision = {choice['precision']}"
                 + (f" (written to {results['config_written']})" if results.get("config_written") else "")
                 + f"; shipped default {default['backend']} {default['precision']}", ""))
    fp32_onnx = next((r["size_bytes"] for r in results["latency"] if r["backend"] == "onnxruntime" and r["precision"] == "fp32"), 0)
    for row in results["latency"]:
        if row["precision"] == "int8" and row["size_bytes"] and fp32_onnx:
            fp32_same = next((r["size_bytes"] for r in results["latency"]
                              if r["backend"] == row["backend"] and r["precision"] == "fp32"), 0)
            rows.append((f"size, {row['backend']} int8 vs fp32 ONNX (vs fp32 of its own format)",
                         f"{row['size_bytes']:,} B: {fp32_onnx / row['size_bytes']:.3f}x smaller"
                         + (f" ({fp32_same / row['size_bytes']:.3f}x)" if fp32_same else ""), ">= 3x"))
    for precision, cost in (results.get("cost") or {}).items():
        if "error" in cost:
            rows.append((f"neutral cost per window, {precision}", f"n/a ({cost['error']})", ""))
            continue
        rows.append((f"neutral cost per window ({WINDOW_BEATS} beats), {precision} ONNX",
                     f"{cost['macs_per_beat'] * WINDOW_BEATS / 1e6:.1f} M MACs; bytes moved "
                     f"{(cost['weight_bytes'] + cost['activation_bytes_per_beat'] * WINDOW_BEATS) / 1e6:.2f} MB "
                     f"(weights {cost['weight_bytes'] / 1e3:.0f} kB once + activations "
                     f"{cost['activation_bytes_per_beat'] * WINDOW_BEATS / 1e6:.2f} MB)", ""))
    return rows


def table(results: dict, args: argparse.Namespace) -> list[str]:
    """The printed table: measurement, value, target."""
    rows = model_rows(results)
    if "runtime" in results:
        rows = _runtime_rows(results, args) + rows
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'measurement'.ljust(width)}  {'value'.ljust(value_width)}  target", "-" * (width + value_width + 12)]
    lines += [f"{name.ljust(width)}  {value.ljust(value_width)}  {target}" for name, value, target in rows]
    lines.append(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; numbers from this run only")
    return lines


def _runtime_rows(results: dict, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    rt = results["runtime"]
    cpu_per_s = rt["cpu_s"] / rt["ecg_s"]
    rows = [(f"whole runtime, CPU per s of 12-lead 500 Hz ECG (1 core, {rt['backend']} {rt['precision']})",
             f"{cpu_per_s * 1000:.2f} ms = {1 / cpu_per_s:,.0f}x real time "
             f"({rt['ecg_s']:.0f} s ECG, {rt['windows']} windows, {rt['estimates']} estimates)", ">= 1000x")]
    per_s = lambda key: rt[key] / rt["ecg_s"] * 1000  # noqa: E731 - ms of CPU per s of ECG
    reads = f" (real-time serial reads of {rt['read_bytes']} B)" if "read_bytes" in rt else ""
    rows.append(("  of which frame decoding (firmware bridge)", f"{per_s('decode_cpu_s'):.2f} ms{reads}", ""))
    rows.append(("  of which window analysis + model + SQLite commit", f"{per_s('window_cpu_s'):.2f} ms "
                 f"({rt['window_cpu_s'] / max(rt['windows'], 1) * 1000:.1f} ms per 10 s window)", ""))
    rows.append(("  of which per-frame event handling and windowing",
                 f"{per_s('cpu_s') - per_s('decode_cpu_s') - per_s('window_cpu_s'):.2f} ms", ""))
    ready = rt.get("rss_after_imports_and_load") or {}
    rows.append(("peak RSS of the run process", f"{rt['peak_rss_mb']:.1f} MB", "<= 100 MB"))
    if ready:
        rows.append(("  RSS once imported + model loaded (private / shared libs)",
                     f"{ready['VmRSS']:.1f} MB ({ready['RssAnon']:.1f} / {ready['RssFile']:.1f})", ""))
    rows.append(("import time of the run modules", f"{results['import_s']:.2f} s", ""))
    rows.append(("start-up: bundle verified + backend ready + one warm-up window", f"{rt['ready_s']:.2f} s", ""))
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
    return rows
