"""Run every ``.onnx`` and ``.tflite`` file of a model bundle on fixed inputs and print the outputs as JSON.

The same inputs on the x86 host and on the emulated aarch64 device must give the same outputs within tolerance
(``compare_outputs.py``): this checks the inference backends themselves, independent of preprocessing. The values
are for that comparison only: a converted TFLite graph whose inputs lost their interface-5 names gets the generic
waveform in every input, so its output is not a plausible LV mass.

    python model_outputs.py BUNDLE_DIR > model_outputs.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

BATCH = 4


def fixed_input(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic, physiologically plausible float32 input for a model input called ``name``.

    Parameters
    ----------
    name : str
        Input name (interface 5: ``beat``, ``demographics``, ``parameters``; anything else gets a smooth ramp).
    shape : tuple of int
        Concrete shape, batch first.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``; computed from closed-form expressions so both platforms build identical bytes.
    """
    if name == "demographics" and shape[-1] == 4:  # age, sex (1=M), height cm, weight kg
        rows = [[28.0, 1.0, 177.0, 76.0], [77.0, 0.0, 160.0, 70.0], [55.0, 1.0, 182.0, 95.0], [40.0, 0.0, 165.0, 58.0]]
        return np.array([rows[i % 4] for i in range(shape[0])], dtype=np.float32).reshape(shape)
    if name == "parameters" and shape[-1] == 4:  # qrs_ms, p_axis, r_axis, t_axis
        rows = [[94.0, 55.0, 40.0, 35.0], [110.0, 60.0, -10.0, 70.0], [88.0, 45.0, 65.0, 40.0], [100.0, 50.0, 20.0, 50.0]]
        return np.array([rows[i % 4] for i in range(shape[0])], dtype=np.float32).reshape(shape)
    # A beat-like smooth waveform (mV): a Gaussian "QRS" per row at a row-dependent position and amplitude.
    count = int(np.prod(shape))
    index = np.arange(count, dtype=np.float64).reshape(shape)
    last = index % shape[-1]
    row = index // shape[-1]
    centre = shape[-1] * (0.35 + 0.05 * (row % 3))
    values = (0.5 + 0.25 * (row % 5)) * np.exp(-(((last - centre) / 6.0) ** 2)) - 0.1 * np.sin(last / 20.0)
    return values.astype(np.float32)


def concrete_shape(shape) -> tuple[int, ...]:
    """Replace symbolic/unknown dimensions (batch) by ``BATCH``."""
    return tuple(d if isinstance(d, int) and d > 0 else BATCH for d in shape)


def run_onnx(path: Path) -> dict[str, list]:
    """Outputs of an ONNX model on :func:`fixed_input` (single-threaded onnxruntime, CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: fixed_input(i.name, concrete_shape(i.shape)) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return {n: np.asarray(v, dtype=np.float64).ravel().tolist() for n, v in zip(names, session.run(names, feeds))}


def run_tflite(path: Path) -> dict[str, list]:
    """Outputs of a TFLite model on :func:`fixed_input` through the LiteRT interpreter (int8 I/O quantized).

    Uses the graph's own input shapes (batch as exported); resizing a graph with baked reshapes can fail.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        # A signature-less converter names inputs like "serving_default_beat:0": match on the interface-5 name.
        name = next((k for k in ("beat", "demographics", "parameters") if k in detail["name"]), detail["name"])
        values = fixed_input(name, tuple(detail["shape"]))
        scale, zero_point = detail["quantization"]
        if detail["dtype"] != np.float32 and scale:
            info = np.iinfo(detail["dtype"])
            values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
        interpreter.set_tensor(detail["index"], values.astype(detail["dtype"]))
    interpreter.invoke()
    outputs = {}
    for detail in interpreter.get_output_details():
        values = interpreter.get_tensor(detail["index"]).astype(np.float64)
        scale, zero_point = detail["quantization"]
        if detail["dtype"] != np.float32 and scale:
            values = (values - zero_point) * scale
        outputs[detail["name"]] = values.ravel().tolist()
    return outputs


def main(argv: list[str]) -> int:
    bundle = Path(argv[1])
    models = sorted(p for p in bundle.rglob("*") if p.suffix in (".onnx", ".tflite"))
    if not models:
        print(f"model_outputs.py: no .onnx or .tflite file under {bundle}", file=sys.stderr)
        return 1
    result = {}
    for path in models:
        run = run_onnx if path.suffix == ".onnx" else run_tflite
        result[str(path.relative_to(bundle))] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "outputs": run(path),
        }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
