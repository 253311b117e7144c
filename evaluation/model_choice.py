"""Which artifact the device runs: the fastest, measured here, among those that passed verification.

``elvmass bench`` times every backend x precision of a bundle on the machine it runs on, one call
per window of clean beats (as the runtime calls it), and can write the choice into the clinic
config (``backend`` / ``precision`` keys of ``edge_runtime.config``). Without a measurement the
shipped defaults (``onnxruntime``, ``int8``) follow the instruction-set-neutral cost: the same
multiply-accumulates per beat at either precision, about 4x fewer weight and activation bytes moved
at INT8 (:func:`bytes_moved`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WINDOW_BEATS = 14  # clean beats of a typical 10 s window (the count), predicted in one call
_FORMAT_OF_BACKEND = {"onnxruntime": "onnx", "litert": "tflite"}


@dataclass
class ArtifactTiming:
    """One backend x precision of a bundle on this machine."""

    backend: str
    precision: str
    passed: bool  # verification of the bundle: fp32 parity / INT8 thresholds
    window_ms: float | None = None  # one call with WINDOW_BEATS beats
    beat_ms: float | None = None  # one call with one beat
    size_bytes: int = 0
    note: str = ""


def window_inputs(n_beats: int = WINDOW_BEATS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clean beats of the bundled CinC LVH record (repeated to ``n_beats``) with plausible demographics."""
    from edge_runtime.assets import CINC_LVH_RECORD
    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import analyze_record

    beats = analyze_record(read_record(CINC_LVH_RECORD)).beats.astype(np.float32)
    beats = beats[np.arange(n_beats) % len(beats)]
    demographics = np.tile(np.array([[77.0, 0.0, 160.0, 68.0]], dtype=np.float32), (n_beats, 1))
    parameters = np.tile(np.array([[90.0, 50.0, 10.0, 30.0]], dtype=np.float32), (n_beats, 1))
    return beats, demographics, parameters


def alternating_median_ms(calls: dict[Hashable, Callable[[], object]], repeats: int) -> dict[Hashable, float]:
    """Median CPU time of this process for each call in ms, the calls taken in turn, after one warm-up each.

    CPU time, not wall time: every runtime runs on one thread here, so the two agree on an idle
    machine, and CPU time is far less inflated when other processes share the cores. In turn (one
    round calls each once, ``repeats`` rounds) so that a change of load on a shared machine reaches
    every call alike and their ratios hold (timed one after the other, a ratio moved by 15 %).
    """
    for call in calls.values():
        call()
    times: dict[Hashable, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.process_time()
            call()
            times[key].append((time.process_time() - start) * 1000.0)
    return {key: float(np.median(values)) for key, values in times.items()}


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """:func:`alternating_median_ms` of one call."""
    return alternating_median_ms({"call": call}, repeats)["call"]


def verified(bundle, fmt: str, precision: str) -> bool:
    """Did every file of this format/precision pass the bundle's own verification (manifest ``verification``)?

    fp32: parity with torch below the limit; INT8: MAE change and LVH agreement within the limits.
    A bundle without a verification record passes nothing at INT8 and everything at fp32.
    """
    verification = bundle.manifest.verification or {}
    files = [m.path.name for m in bundle.models if m.format == fmt and m.precision == precision]
    if not files:
        return False
    if precision == "fp32":
        limit = (verification.get("thresholds") or {}).get("parity_max_g", 1e-3)
        parity = verification.get("parity_max_abs_diff_g") or {}
        kind = {"onnx": "onnx", "tflite": "tflite"}[fmt]
        return all(diff < limit for name, diff in parity.items() if name.endswith(kind))
    scores = {s.get("artifact"): bool(s.get("passed")) for s in verification.get("int8_vs_fp32") or []}
    return all(scores.get(name, False) for name in files)


def time_artifacts(bundle, repeats: int = 20, n_beats: int = WINDOW_BEATS,
                   reference: dict[str, Callable[[tuple], object]] | None = None
                   ) -> tuple[list[ArtifactTiming], dict[str, float]]:
    """Per-window and per-beat latency of every backend x precision the bundle has and this machine runs.

    ``reference`` maps names to calls that take the same ``(beats, demographics, parameters)`` inputs
    (torch eager, in ``elvmass bench``); they are timed in turn with the artifacts (window calls in one
    alternating loop, one-beat calls in another) and returned as ``{name: ms, name + "/beat": ms}``.
    """
    from edge_runtime.inference import BACKENDS, available_backends, load_predictor

    window = window_inputs(n_beats)
    one_beat = tuple(a[:1] for a in window)
    installed = available_backends()
    rows, window_calls, beat_calls = [], {}, {}
    for backend in BACKENDS:
        for precision in ("fp32", "int8"):
            fmt = _FORMAT_OF_BACKEND[backend]
            files = [m for m in bundle.models if m.format == fmt and m.precision == precision]
            row = ArtifactTiming(backend, precision, verified(bundle, fmt, precision),
                                 size_bytes=sum(m.path.stat().st_size for m in files))
            if not files:
                row.note = "not in bundle"
            elif backend not in installed:
                row.note = "runtime not installed"
            else:
                predictor = load_predictor(bundle, backend=backend, precision=precision, threads=1)
                window_calls[id(row)] = lambda p=predictor: p.predict(*window)
                beat_calls[id(row)] = lambda p=predictor: p.predict(*one_beat)
            rows.append(row)
    for name, call in (reference or {}).items():
        window_calls[name] = lambda c=call: c(window)
        beat_calls[name + "/beat"] = lambda c=call: c(one_beat)
    window_ms = alternating_median_ms(window_calls, repeats)
    beat_ms = alternating_median_ms(beat_calls, repeats)
    for row in rows:
        row.window_ms, row.beat_ms = window_ms.get(id(row)), beat_ms.get(id(row))
    named = {k: v for k, v in {**window_ms, **beat_ms}.items() if isinstance(k, str)}
    return rows, named


# Ties (within TIE_FRACTION of the fastest) go to this order: INT8 moves ~4x fewer bytes for the same
# MACs (the instruction-set-neutral cost), and onnxruntime is a core dependency (LiteRT an extra).
PREFERENCE = (("onnxruntime", "int8"), ("litert", "int8"), ("onnxruntime", "fp32"), ("litert", "fp32"))
TIE_FRACTION = 0.10  # timings on a shared machine move by ~10 % run to run


def choose(rows: list[ArtifactTiming]) -> ArtifactTiming | None:
    """The fastest measured artifact that passed verification (``None`` if none did).

    Artifacts within :data:`TIE_FRACTION` of the fastest count as equally fast, and the
    neutral-cost :data:`PREFERENCE` order picks among them, so noise does not flip the choice.
    """
    usable = [r for r in rows if r.passed and r.window_ms is not None]
    if not usable:
        return None
    fastest = min(r.window_ms for r in usable)
    tied = [r for r in usable if r.window_ms <= fastest * (1 + TIE_FRACTION)]
    rank = {key: i for i, key in enumerate(PREFERENCE)}
    return min(tied, key=lambda r: (rank.get((r.backend, r.precision), len(rank)), r.window_ms))


def write_config_choice(path: Path | str, backend: str, precision: str) -> None:
    """Set ``backend`` / ``precision`` in a clinic config TOML file, keeping every other line.

    The file is created when absent. The result is read back with ``edge_runtime.config.load_config``
    and the original restored if it does not load (so a bad write never leaves a broken config).
    """
    from edge_runtime.config import load_config

    path = Path(path)
    original = path.read_text(encoding="utf-8") if path.exists() else None
    lines = (original or "").splitlines()
    for key, value in (("backend", backend), ("precision", precision)):
        entry = f'{key} = "{value}"  # chosen by elvmass bench on this machine'
        pattern = re.compile(rf"^\s*{key}\s*=")
        hits = [i for i, line in enumerate(lines) if pattern.match(line)]
        if hits:
            lines[hits[0]] = entry
            for i in reversed(hits[1:]):
                del lines[i]
        else:
            # Top-level keys must come before any [table] header.
            first_table = next((i for i, line in enumerate(lines) if line.lstrip().startswith("[")), len(lines))
            lines.insert(first_table, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        load_config(path)
    except Exception:
        if original is None:
            path.unlink()
        else:
            path.write_text(original, encoding="utf-8")
        raise


def bytes_moved(onnx_path: Path | str, structure_from: Path | str | None = None) -> dict:
    """Instruction-set-neutral cost per beat of one ONNX file: MACs, weight bytes, activation bytes.

    Activation bytes = elements written by every computing node (QuantizeLinear/DequantizeLinear,
    shape and constant nodes excluded, since integer kernels fuse them) x 1 byte for a quantized
    graph, 4 for float. Weight bytes = the initializers as stored. Needs ``onnx`` (host tool).
    ``structure_from``: an fp32 file of the same network whose MACs and activation counts are used
    (ONNX shape inference cannot size QLinearConv outputs of a QOperator graph).
    """
    import importlib.util

    import onnx
    from onnx import numpy_helper, shape_inference

    spec = importlib.util.spec_from_file_location("model_cost", Path(__file__).resolve().parents[1] / "deploy" / "model_cost.py")
    model_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_cost)
    stored = onnx.load(str(onnx_path))
    weight_bytes = sum(numpy_helper.to_array(t).nbytes for t in stored.graph.initializer)
    quantized = any(n.op_type in ("QuantizeLinear", "QLinearConv", "QGemm") for n in stored.graph.node)
    structure = Path(structure_from or onnx_path)
    cost = model_cost.model_cost(structure)
    model = onnx.load(str(structure))
    model_cost._fix_batch_to_one(model)
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    skip = {"QuantizeLinear", "DequantizeLinear", "Identity", "Constant", "Shape", "Unsqueeze", "Squeeze", "Reshape"}
    elements = sum(int(np.prod(shapes[n.output[0]])) for n in model.graph.node
                   if n.op_type not in skip and n.output and shapes.get(n.output[0]) and all(shapes[n.output[0]]))
    activation_bytes = elements * (1 if quantized else 4)
    return {"macs_per_beat": cost["macs_per_beat"], "weight_bytes": int(weight_bytes),
            "activation_bytes_per_beat": int(activation_bytes), "quantized": quantized}
