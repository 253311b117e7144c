"""Where a window's onnxruntime time goes: session options, per-call overhead and time per operator type.

    python deploy/ort_session_probe.py [BUNDLE_DIR] [--precision int8|fp32] [--repeats N] [--rounds R] [--torch]
    python deploy/ort_session_probe.py --formats RUN_DIR     # fp32 vs QOperator/QDQ x u8/s8 INT8 of one export
    python deploy/ort_session_probe.py --batch-sizes [BUNDLE_DIR]  # torch vs onnxruntime: fixed and per-beat cost
    python deploy/ort_session_probe.py --in-run-loop [BUNDLE_DIR]  # both where the run loop calls the model

Times ``session.run`` for one window (the 14 clean beats ``elvmass bench`` uses, one call) and for
one beat under each session-option variant, interleaved over ``--rounds`` rounds (median of
medians, CPU time of this process, one intra-op thread), then the predictor call the runtime makes
(``Predictor.predict``: input checks, imputation, routing) and onnxruntime's own per-operator
profile of the default session. ``--torch`` adds torch eager fp32 of the bundle's architecture (batched,
``inference_mode``, one thread, as ``elvmass bench`` runs it) to every round, so that the ratio is
taken under the same load. ``--formats RUN_DIR`` instead quantizes the run's exported fp32 ONNX in
each INT8 format the quantize pipeline knows (calibrated on the jittered window: latency, not accuracy)
and times ``session.run`` of each beside the fp32 file. ``--batch-sizes`` times torch eager and the runtime's
session alternately at 1-28 beats per call and fits ``fixed + per_beat * beats`` to each: the ratio
of a window is bounded by the two costs' ratios. ``--in-run-loop`` times the runtime's predictor and torch
eager where the run loop calls the model: right after each window's signal chain, in the bench's 120 s
stream (alternate passes over its windows call one or the other; torch gets the same arrays). A host tool
for docs/performance.md and docs/quantization.md; the device never imports it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def session_variants():
    """Name -> function(SessionOptions) applying one variant on top of the runtime's options."""
    import onnxruntime as ort

    def entry(key, value):
        return lambda options: options.add_session_config_entry(key, value)

    def level(value):
        return lambda options: setattr(options, "graph_optimization_level", value)

    return {
        "runtime default (ORT_ENABLE_ALL, arena + pattern on)": lambda options: None,
        "allow_spinning=0": entry("session.intra_op.allow_spinning", "0"),
        "ORT_ENABLE_EXTENDED": level(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
        "ORT_ENABLE_BASIC": level(ort.GraphOptimizationLevel.ORT_ENABLE_BASIC),
        "memory arena + pattern off": lambda options: (setattr(options, "enable_cpu_mem_arena", False),
                                                       setattr(options, "enable_mem_pattern", False)),
        "NHWC transformer off": entry("optimization.disable_specified_optimizers", "NhwcTransformer"),
    }


def runtime_options():
    """The session options of ``edge_runtime.inference.OnnxRuntimeBackend`` (one thread, arena on)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = True
    options.log_severity_level = 3
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", help="model bundle (default: the bundled demo model)")
    parser.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch", action="store_true", help="interleave torch eager fp32 (needs the train extra)")
    parser.add_argument("--formats", metavar="RUN_DIR", help="time fp32 against every INT8 format of this exported run")
    parser.add_argument("--batch-sizes", action="store_true",
                        help="torch eager vs onnxruntime at 1-28 beats per call: fixed and per-beat cost (needs torch)")
    parser.add_argument("--in-run-loop", action="store_true",
                        help="the runtime's predictor vs torch eager right after each window's signal chain (needs torch)")
    args = parser.parse_args(argv)
    if args.formats:
        return time_formats(Path(args.formats), args.repeats, args.rounds)
    if args.batch_sizes:
        return time_batch_sizes(args.bundle, args.precision, args.repeats, args.rounds)
    if args.in_run_loop:
        return time_in_run_loop(args.bundle, args.precision, args.rounds)

    import onnxruntime as ort

    from edge_runtime.inference import load_predictor
    from edge_runtime.model_bundle import load_bundle
    from evaluation.model_choice import median_ms, window_inputs

    bundle = load_bundle(args.bundle)
    model = next(m for m in bundle.models if m.format == "onnx" and m.precision == args.precision and m.variant == "combined")
    beats, demographics, parameters = window_inputs()
    names = model.input_names
    window = {names["beat"]: beats, names["demographics"]: demographics, names["parameters"]: parameters}
    one = {key: value[:1] for key, value in window.items()}
    sessions = {}
    for name, apply in session_variants().items():
        options = runtime_options()
        apply(options)
        sessions[name] = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
    predictor = load_predictor(bundle, backend="onnxruntime", precision=args.precision)
    default = sessions["runtime default (ORT_ENABLE_ALL, arena + pattern on)"]
    binding = default.io_binding()
    for key, value in window.items():
        binding.bind_cpu_input(key, value)
    binding.bind_output(model.output_name)
    timings = collections.defaultdict(list)
    torch_window = None
    if args.torch:
        import torch

        from training.model import ElvMassNet, ModelConfig

        torch.set_num_threads(1)
        reference = ElvMassNet(ModelConfig(**bundle.manifest.export.model_config)).eval()
        tensors = [torch.from_numpy(a) for a in (beats, demographics, parameters)]

        def torch_window():
            with torch.inference_mode():
                reference(*tensors)
    for _ in range(args.rounds):
        if torch_window is not None:
            timings["torch eager fp32, batched, inference_mode"].append(median_ms(torch_window, args.repeats))
        for name, session in sessions.items():
            timings[f"session.run, {name}"].append(median_ms(lambda s=session: s.run(None, window), args.repeats))
            timings[f"session.run 1 beat, {name}"].append(median_ms(lambda s=session: s.run(None, one), args.repeats))
        timings["run_with_iobinding (inputs bound once)"].append(median_ms(lambda: default.run_with_iobinding(binding), args.repeats))
        timings["Predictor.predict (what the runtime calls)"].append(
            median_ms(lambda: predictor.predict(beats, demographics, parameters), args.repeats))
    print(f"{model.path} ({model.path.stat().st_size:,} B), window of {len(beats)} beats, CPU ms (median of {args.rounds} rounds)")
    reference_ms = np.median(timings["torch eager fp32, batched, inference_mode"]) if args.torch else None
    for name, values in timings.items():
        ratio = f"  {reference_ms / np.median(values):5.2f}x vs torch" if reference_ms else ""
        print(f"  {name:62s} {np.median(values):7.3f}{ratio}")

    options = runtime_options()
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as folder:
        options.profile_file_prefix = os.path.join(folder, "ort")
        session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])
        for _ in range(args.repeats):
            session.run(None, window)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op, nodes, total = collections.defaultdict(float), collections.Counter(), 0.0
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / args.repeats
            nodes[event["args"]["op_name"]] += 1
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            total += event["dur"] / args.repeats
    kernels = sum(per_op.values())
    print(f"profiled run (profiling inflates it): {total:.0f} us per window, kernels {kernels:.0f} us, "
          f"{sum(nodes.values()) / args.repeats:.0f} nodes")
    for name, micros in sorted(per_op.items(), key=lambda item: -item[1]):
        print(f"  {name:28s} {micros:7.1f} us  {micros / kernels:5.1%}  ({nodes[name] / args.repeats:.0f} nodes)")
    return 0


BATCH_SIZES = (1, 2, 4, 8, 14, 28)


def time_batch_sizes(bundle_dir: str | None, precision: str, repeats: int, rounds: int) -> int:
    """Torch eager fp32 and ``session.run`` alternately at each of :data:`BATCH_SIZES` beats per call.

    A least-squares line ``ms = fixed + per_beat * beats`` is fitted to each: the ratio of a window of
    n beats is ``(T_fixed + n T_beat) / (O_fixed + n O_beat)``, between the per-beat ratio (many beats)
    and the fixed-cost ratio (one beat).
    """
    import onnxruntime as ort
    import torch

    from edge_runtime.model_bundle import load_bundle
    from evaluation.model_choice import median_ms, window_inputs
    from training.model import ElvMassNet, ModelConfig

    torch.set_num_threads(1)
    bundle = load_bundle(bundle_dir)
    model = next(m for m in bundle.models if m.format == "onnx" and m.precision == precision and m.variant == "combined")
    session = ort.InferenceSession(str(model.path), runtime_options(), providers=["CPUExecutionProvider"])
    reference = ElvMassNet(ModelConfig(**bundle.manifest.export.model_config)).eval()
    beats, demographics, parameters = window_inputs()
    names = model.input_names
    timings = collections.defaultdict(list)
    for _ in range(rounds):
        for size in BATCH_SIZES:
            rows = np.arange(size) % len(beats)
            arrays = (np.ascontiguousarray(beats[rows]), np.ascontiguousarray(demographics[rows]),
                      np.ascontiguousarray(parameters[rows]))
            feeds = dict(zip((names["beat"], names["demographics"], names["parameters"]), arrays))
            tensors = [torch.from_numpy(a) for a in arrays]

            def torch_call(tensors=tensors):
                with torch.inference_mode():
                    reference(*tensors)
            timings[("torch", size)].append(median_ms(torch_call, repeats))
            timings[("onnxruntime", size)].append(median_ms(lambda f=feeds: session.run(None, f), repeats))
    print(f"{model.path.name} ({precision}) vs torch eager fp32, CPU ms per call (median of {rounds} rounds, "
          "one thread, alternating)")
    print(f"  {'beats':>5}  {'torch':>7}  {'onnxruntime':>11}  ratio")
    medians = {key: float(np.median(values)) for key, values in timings.items()}
    for size in BATCH_SIZES:
        torch_ms, ort_ms = medians[("torch", size)], medians[("onnxruntime", size)]
        print(f"  {size:5d}  {torch_ms:7.3f}  {ort_ms:11.3f}  {torch_ms / ort_ms:5.2f}x")
    fits = {}
    for backend in ("torch", "onnxruntime"):
        per_beat, fixed = np.polyfit(BATCH_SIZES, [medians[(backend, size)] for size in BATCH_SIZES], 1)
        fits[backend] = (fixed, per_beat)
        print(f"  fit {backend:11s}: {fixed:.3f} ms fixed + {per_beat:.4f} ms per beat")
    print(f"  ratio of the fixed costs {fits['torch'][0] / fits['onnxruntime'][0]:.1f}x, "
          f"of the per-beat costs {fits['torch'][1] / fits['onnxruntime'][1]:.1f}x")
    return 0


def time_in_run_loop(bundle_dir: str | None, precision: str, rounds: int) -> int:
    """The predictor and torch eager timed where the run loop calls the model (see the module docstring).

    Each window of the stream is analyzed ``2 * rounds`` more times after the stream's own pass: even passes
    time the runtime's ``Predictor.predict``, odd passes torch eager on the same arrays (then the predictor,
    untimed, so that the rest of the window runs as always). Medians over the windows of each kind of pass.
    """
    import tempfile
    import time

    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.store import ResultStore
    from edge_runtime.runtime.warmup import warm_up
    from evaluation.commands.bench import _encoded_stream, torch_eager_call
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.transport import steady_read_bytes

    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle_dir, backend="onnxruntime", precision=precision)
    warm_up(analyzer)
    torch_call, info = torch_eager_call(analyzer.predictor.bundle)
    if torch_call is None:
        print(f"torch eager not available: {info['note']}")
        return 2
    predict = analyzer.predictor.predict
    timings: dict[str, list[float]] = {"predictor": [], "torch": []}
    timed = ["predictor"]

    def hooked(beats, demographics, parameters):
        if timed[0] == "torch":
            arrays = tuple(np.ascontiguousarray(a, dtype=np.float32) for a in (beats, demographics, parameters))
            start = time.process_time()
            torch_call(arrays)
            timings["torch"].append(time.process_time() - start)
            return predict(beats, demographics, parameters)
        start = time.process_time()
        lvm_g = predict(beats, demographics, parameters)
        timings["predictor"].append(time.process_time() - start)
        return lvm_g

    analyzer.predictor.predict = hooked
    wire, _ = _encoded_stream(120.0)
    read_bytes = steady_read_bytes(len(wire) / 120.0)
    windows = []
    with tempfile.TemporaryDirectory() as folder, ResultStore(Path(folder) / "probe.sqlite") as store:
        session = RuntimeSession(analyzer, PatientContext(77.0, "F", 160.0, 68.0, "PROBE"), store)
        analyze = session.analyze

        def capture(window):
            windows.append(window)
            return analyze(window)

        session.analyze = capture  # type: ignore[method-assign]
        decoder = StreamDecoder(coalesce=True)
        for offset in range(0, len(wire), read_bytes):
            for event in decoder.feed(wire[offset:offset + read_bytes]):
                session.handle(event)
        timings["predictor"].clear()  # the stream's own pass also decoded: only the passes below count
        for round_index in range(2 * rounds):
            timed[0] = "torch" if round_index % 2 else "predictor"
            for window in windows:
                analyze(window)
    predictor_ms, torch_ms = (float(np.median(timings[key])) * 1e3 for key in ("predictor", "torch"))
    print(f"where the run loop calls the model (after the signal chain of each of {len(windows)} windows, {rounds} "
          f"passes each, median CPU ms per window, one thread): Predictor.predict ({precision}) {predictor_ms:.3f}, "
          f"torch eager fp32 {torch_ms:.3f}: {torch_ms / predictor_ms:.2f}x")
    return 0


def time_formats(run_dir: Path, repeats: int, rounds: int) -> int:
    """Window latency of the run's fp32 ONNX (as shipped) and of each INT8 format/activation type."""
    import shutil

    import onnxruntime as ort

    from evaluation.model_choice import median_ms, window_inputs
    from quantization import onnx_int8
    from quantization.run_export import read_run_export

    source = read_run_export(run_dir).onnx_files["combined"]
    beats, demographics, parameters = window_inputs()
    jitter = np.random.default_rng(0).normal(0, 0.05, (4, *beats.shape)).astype(np.float32)
    calibration = {"beat": np.concatenate(beats[None] + jitter), "demographics": np.tile(demographics, (4, 1)),
                   "parameters": np.tile(parameters, (4, 1))}
    feeds = {"beat": beats, "demographics": demographics, "parameters": parameters}
    with tempfile.TemporaryDirectory() as folder:
        fp32 = Path(folder) / "fp32.onnx"
        shutil.copyfile(source, fp32)
        onnx_int8.fold_chomp(fp32)
        onnx_int8.compact_names(fp32)
        files = {"fp32 (as shipped)": fp32}
        for fmt, activations, per_channel in (("qoperator", "u8", False), ("qoperator", "s8", False),
                                              ("qdq", "u8", False), ("qdq", "s8", True)):
            path = Path(folder) / f"{fmt}_{activations}.onnx"
            onnx_int8.quantize_onnx_int8(source, path, calibration, activations, True, per_channel, fmt)
            onnx_int8.compact_names(path)
            files[f"{fmt} {activations} {'per-channel' if per_channel else 'per-tensor'} (float last layer)"] = path
        sessions = {name: ort.InferenceSession(str(path), runtime_options(), providers=["CPUExecutionProvider"])
                    for name, path in files.items()}
        timings = collections.defaultdict(list)
        for _ in range(rounds):
            for name, session in sessions.items():
                timings[name].append(median_ms(lambda s=session: s.run(None, feeds), repeats))
        print(f"{source}: session.run of a {len(beats)}-beat window, CPU ms (median of {rounds} rounds)")
        for name, path in files.items():
            print(f"  {name:48s} {np.median(timings[name]):7.3f}  {path.stat().st_size:>7,} B")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
