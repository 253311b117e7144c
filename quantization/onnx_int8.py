"""INT8 ONNX by onnxruntime static quantization: QDQ format, per-channel weights, calibrated activations.

The regression head's last layer (the Gemm/MatMul that produces the normalized output and the
Mul/Add that rescale it to grams) can stay float: an INT8 output is clipped to its calibration
range, and saturation at the ends of the LV-mass range is the main INT8 error source.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ACTIVATION_TYPES = ("s8", "u8")  # s8s8 is what ARM kernels prefer; u8s8 is the x86 default


class ArrayCalibrationReader:
    """Feeds calibration arrays to onnxruntime in batches (the ``CalibrationDataReader`` protocol)."""

    def __init__(self, inputs: dict[str, np.ndarray], batch_size: int = 32) -> None:
        n = len(next(iter(inputs.values())))
        self._batches: Iterator[dict[str, np.ndarray]] = iter(
            [{k: np.ascontiguousarray(v[i:i + batch_size], dtype=np.float32) for k, v in inputs.items()}
             for i in range(0, n, batch_size)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # onnxruntime calls it on some versions; one pass is all we give
        pass


def output_head_nodes(model_path: Path) -> list[str]:
    """Names of the nodes from the graph output back to (and including) the last Gemm/MatMul.

    These are the final regression layer and the de-normalization to grams.
    """
    import onnx

    model = onnx.load(str(model_path))
    producer = {out: node for node in model.graph.node for out in node.output}
    names: list[str] = []
    frontier = [model.graph.output[0].name]
    while frontier:
        node = producer.get(frontier.pop())
        if node is None or node.name in names:
            continue
        names.append(node.name)
        if node.op_type in ("Gemm", "MatMul"):
            continue  # the last layer itself: stop walking past it
        frontier.extend(i for i in node.input if i in producer)
    return names


def quantize_onnx_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: dict[str, np.ndarray],
    activation_type: str = "s8",
    keep_head_float: bool = True,
    per_channel: bool = True,
) -> Path:
    """Static INT8 quantization of an ONNX model.

    Parameters
    ----------
    fp32_path
        The float model (inputs ``beat``, ``demographics``, ``parameters``).
    out_path
        Where the INT8 (QDQ) model is written.
    calibration
        Input name -> array of calibration inputs (raw units, no NaN).
    activation_type
        ``"s8"`` (symmetric-friendly, ARM) or ``"u8"`` activations; weights are always s8.
    keep_head_float
        Leave the last Gemm/MatMul and the rescale to grams in float (see module docstring).
    per_channel
        Per-output-channel weight scales.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if activation_type not in ACTIVATION_TYPES:
        raise ValueError(f"activation_type must be one of {ACTIVATION_TYPES}")
    for name, values in calibration.items():
        if not np.isfinite(values).all():
            raise ValueError(f"calibration input {name} has NaN/inf (impute before calibrating)")
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        # Fuses what onnxruntime can fuse and infers shapes for the quantizer. BatchNorm is already folded:
        # training.export.export_onnx folds it (training.model.fold_batchnorm) before export.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        excluded = output_head_nodes(prepared) if keep_head_float else []
        quantize_static(
            str(prepared), str(out_path), ArrayCalibrationReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8 if activation_type == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
            # Asymmetric activations: ReLU outputs are non-negative, a symmetric s8 range would waste a bit.
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    return out_path


def compact_names(model_path: Path) -> None:
    """Rename internal tensors and nodes to short ids and drop doc strings, in place.

    Graph inputs/outputs keep their names. Torch and the quantizer name tensors after module
    paths (``encoders.0.blocks.0.net.2.weight_DequantizeLinear_Output``); in a model of ~20 k
    weights those strings weigh as much as the int8 weights themselves.
    """
    import onnx

    model = onnx.load(str(model_path))
    graph = model.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in names:
            index, text = len(names), ""
            while True:  # base-62 id: 1-2 characters for a few thousand tensors
                index, digit = divmod(index, len(alphabet))
                text = alphabet[digit] + text
                if index == 0:
                    break
            names[name] = text
        return names[name]

    _drop_unused_nodes_and_initializers(graph)
    for init in graph.initializer:
        init.name = short(init.name)
        init.doc_string = ""
    for value in graph.value_info:
        value.name = short(value.name)
    for node in graph.node:
        node.name = ""  # optional in ONNX
        node.doc_string = ""
        node.input[:] = [short(name) for name in node.input]
        node.output[:] = [short(name) for name in node.output]
    del graph.value_info[:]  # shapes are re-inferred at load; they only add bytes
    graph.doc_string = ""
    model.doc_string = ""
    del model.metadata_props[:]
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))


def _drop_unused_nodes_and_initializers(graph) -> None:
    """Remove nodes whose outputs nobody reads (e.g. Identity nodes the exporter left), then dead initializers."""
    while True:
        used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
        dead = [node for node in graph.node if not any(out in used for out in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)

