"""TFLite fp32 and full-integer INT8 from the torch model: ``litert-torch`` + ``ai-edge-quantizer``.

Why this path (see docs/quantization.md): no TensorFlow install, it works with torch 2.13 and
numpy 2, and the converted graph keeps the channel-first ``(B, 12, L)`` beat input, so the
device feeds every backend the same arrays. Three traps handled here:

* litert-torch cannot lower this graph with a dynamic batch (its JAX bridge asserts on the symbolic
  dimension of the first broadcast division) and a batch-1 graph refuses ``resize_tensor_input``
  (its RESHAPE constants are static); the graph is therefore converted with a fixed batch
  (:data:`TFLITE_BATCH`, about one 10 s window of clean beats) and the runtime pads the last chunk.

* ai-edge-quantizer's default calibration keeps a moving average of each tensor's min/max, which
  collapses with single-sample batches; a min/max update is used instead.
* the converter names every tensor after its MLIR location (~40 kB for this small model);
  :func:`strip_tensor_names` replaces internal names with short ids, keeping the input/output names
  (ai-edge-quantizer selects tensors by name; the shipped files then lose them altogether,
  ``quantization.tflite_strip``).

Needs the ``quant`` extra (``litert-torch``, ``ai-edge-quantizer``, ``ai-edge-litert``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

INPUT_ORDER = ("beat", "demographics", "parameters")
TFLITE_BATCH = 16  # rows per invoke: a 10 s window has ~8-16 clean beats at 50-100 bpm


def fixed_batches(arrays: Sequence[np.ndarray], batch: int) -> list[tuple[np.ndarray, ...]]:
    """Split row-aligned arrays into chunks of exactly ``batch`` rows, padding the last with copies of its last row.

    Padding with a real row (not zeros) keeps every padded value inside the calibrated ranges.
    """
    n = len(arrays[0])
    chunks = []
    for start in range(0, n, batch):
        rows = np.arange(start, start + batch).clip(max=n - 1)
        chunks.append(tuple(np.ascontiguousarray(a[rows], dtype=np.float32) for a in arrays))
    return chunks


def convert_fp32(module, sample_inputs: Sequence[np.ndarray], out_path: Path, batch: int = TFLITE_BATCH) -> dict[str, str]:
    """Convert a torch module taking ``(beat, demographics, parameters)`` to an fp32 TFLite file.

    BatchNorm is folded into the convolutions first (``training.model.fold_batchnorm``): the
    converter keeps it as a MUL + ADD after every convolution otherwise, and each of those is one
    more requantization in the INT8 model. The causal chomp becomes left padding (:func:`left_padded_convs`),
    and the encoders compute on 4-D tensors (``quantization.channel_last``), so the convolutions stay
    channel-last from input to pooling instead of being wrapped in RESHAPE/TRANSPOSE pairs.

    Parameters
    ----------
    module
        ``torch.nn.Module`` in eval mode; ``forward(beat, demographics, parameters) -> (B, 1)``.
    sample_inputs
        One example per input (its first row is repeated to ``batch`` rows).
    out_path
        Output ``.tflite`` path.
    batch
        The graph's fixed batch (rows per invoke).

    Returns
    -------
    dict
        Interface name -> the TFLite input tensor name.
    """
    import litert_torch
    import torch

    from quantization.channel_last import channel_last_form
    from training.model import fold_batchnorm

    module = channel_last_form(left_padded_convs(fold_batchnorm(module.eval())))
    sample = tuple(torch.from_numpy(np.ascontiguousarray(np.repeat(x[:1], batch, axis=0), dtype=np.float32))
                   for x in sample_inputs)
    edge_model = litert_torch.convert(module, sample)
    edge_model.export(str(out_path))
    strip_tensor_names(out_path)
    return tflite_input_names(out_path)


def left_padded_convs(module):
    """Replace every ``Conv1d(padding=p) -> Chomp1d(p)`` pair by ``ConstantPad1d((p, 0)) -> Conv1d(padding=0)``, in place.

    Same outputs (the chomp dropped exactly the samples the right padding produced); the converted
    graph then has one PAD before each convolution and no SLICE after it, so the INT8 model has
    fewer tensors to quantize.
    """
    from torch import nn

    from training.model import Chomp1d

    for sequential in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequential) - 1):
            conv, chomp = sequential[index], sequential[index + 1]
            if not (isinstance(conv, nn.Conv1d) and isinstance(chomp, Chomp1d) and chomp.size
                    and conv.padding == (chomp.size,)):
                continue
            conv.padding = (0,)
            sequential[index] = nn.Sequential(nn.ConstantPad1d((chomp.size, 0), 0.0), conv)
            sequential[index + 1] = nn.Identity()
    return module


def tflite_input_names(path: Path) -> dict[str, str]:
    """Interface name -> TFLite input tensor name (inputs are in forward-argument order)."""
    from ai_edge_litert.interpreter import Interpreter

    details = sorted(Interpreter(model_path=str(path)).get_input_details(), key=lambda d: d["index"])
    if len(details) != len(INPUT_ORDER):
        raise ValueError(f"{path.name}: expected {len(INPUT_ORDER)} inputs, found {len(details)}")
    return {key: detail["name"] for key, detail in zip(INPUT_ORDER, details)}


def graph_batch(path: Path) -> int:
    """The fixed batch (leading dimension of the beat input) of a TFLite file."""
    from ai_edge_litert.interpreter import Interpreter

    details = sorted(Interpreter(model_path=str(path)).get_input_details(), key=lambda d: d["index"])
    return int(details[0]["shape"][0])


def tflite_output_name(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_output_details()[0]["name"]


def strip_tensor_names(path: Path) -> None:
    """Rename every tensor except graph inputs/outputs to a short id, in place (size only, same graph)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    for index, subgraph in enumerate(model.subgraphs):
        keep = set(subgraph.inputs) | set(subgraph.outputs)
        for tensor_index, tensor in enumerate(subgraph.tensors):
            if tensor_index not in keep:
                tensor.name = f"t{index}_{tensor_index}".encode()
    flatbuffer_utils.write_model(model, str(path))


def head_tensor_names(path: Path) -> list[str]:
    """Output tensor names of the ops from the graph output back to (and including) the last FULLY_CONNECTED.

    The regression layer and the rescale to grams: kept float by ``float_head`` (an int8 output
    has one step of ~1 g over the LV-mass range, enough to flip LVH calls near the threshold).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    producer = {int(out): op for op in graph.operators for out in op.outputs}
    names, frontier, seen = [], [int(graph.outputs[0])], set()
    while frontier:
        tensor = frontier.pop()
        op = producer.get(tensor)
        if op is None or id(op) in seen:
            continue
        seen.add(id(op))
        names.append(graph.tensors[tensor].name.decode())
        if codes[op.opcodeIndex] == schema.BuiltinOperator.FULLY_CONNECTED:
            continue
        frontier.extend(int(i) for i in op.inputs if int(i) in producer)
    return names


def input_tensor_names(path: Path) -> list[str]:
    """Output tensor names of the ops between the graph inputs and the first CONV_2D / FULLY_CONNECTED.

    The input normalization and lead selection: kept float by ``float_io``, so that int8 starts
    after normalization, where every feature has a similar range (one int8 scale for raw age, sex,
    height and weight would leave sex 0/1 about one step apart).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    compute = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.FULLY_CONNECTED,
               schema.BuiltinOperator.DEPTHWISE_CONV_2D}
    produced = {int(out) for op in graph.operators for out in op.outputs}
    early = {int(i) for i in graph.inputs}
    names = []
    for op in graph.operators:  # operators are stored in execution order
        inputs = [int(i) for i in op.inputs if int(i) >= 0]
        if codes[op.opcodeIndex] in compute or not any(i in early for i in inputs):
            continue
        if all(i in early or i not in produced for i in inputs):  # graph inputs, early outputs or constants
            for out in op.outputs:
                early.add(int(out))
                names.append(graph.tensors[int(out)].name.decode())
    return names


def quantize_int8(fp32_path: Path, out_path: Path, calibration: dict[str, np.ndarray], activation_bits: int = 8,
                  per_channel: bool = True, float_head: bool = False, float_inputs: bool = False) -> Path:
    """Integer-only quantization with int8 weights and int8 (or int16) activations, min/max calibration.

    Parameters
    ----------
    fp32_path
        The fp32 TFLite file from :func:`convert_fp32`.
    out_path
        Output ``.tflite`` path.
    calibration
        Interface name (``beat``, ``demographics``, ``parameters``) -> calibration arrays
        (raw units, no NaN); fed in chunks of the graph's fixed batch.
    activation_bits
        8 (full INT8, ``static_wi8_ai8``) or 16 (LiteRT's 16x8 mode, ``static_wi8_ai16``: same
        int8 weights and file size, int16 activations and inputs).
    per_channel
        Per-output-channel weight scales (else one per tensor: ~800 fewer scale/zero-point pairs).
    float_head
        Keep the last FULLY_CONNECTED and the rescale to grams float (:func:`head_tensor_names`):
        the output is then float32, everything before it integer.
    float_inputs
        Keep the input normalization float (:func:`input_tensor_names`): float32 inputs, int8 from
        the first convolution / dense layer on.

    Returns
    -------
    pathlib.Path
        ``out_path``. Its input/output tensors are int8 with their own scale and zero point
        (``edge_runtime.inference`` quantizes and dequantizes with them).
    """
    from ai_edge_quantizer import calibrator, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    names = tflite_input_names(fp32_path)
    signature_names = _signature_input_names(fp32_path)
    batch = graph_batch(fp32_path)
    samples = [{signature_names[names[key]]: chunk[k] for k, key in enumerate(INPUT_ORDER)}
               for chunk in fixed_batches([calibration[key] for key in INPUT_ORDER], batch)]
    from ai_edge_quantizer import qtyping, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if activation_bits not in (8, 16):
        raise ValueError("activation_bits must be 8 or 16")
    manager = recipe_manager.RecipeManager()
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    manager.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, activation_bits, 8, granularity)
    if float_inputs:  # the graph inputs themselves (the quantizer's virtual INPUT op), then the normalization
        manager.add_quantization_config(".*", qtyping.TFLOperationName.INPUT, algorithm_key=AlgorithmName.NO_QUANTIZE)
    floats = (head_tensor_names(fp32_path) if float_head else []) + (input_tensor_names(fp32_path) if float_inputs else [])
    if floats:
        for name in floats:
            manager.add_quantization_config(f"^{re.escape(name)};", qtyping.TFLOperationName.ALL_SUPPORTED,
                                            algorithm_key=AlgorithmName.NO_QUANTIZE)
    quant = quantizer.Quantizer(str(fp32_path), manager.get_quantization_recipe())
    # Min/max over all samples: the default moving average shrinks ranges with batch-1 samples.
    calib = calibrator.Calibrator(bytes(Path(fp32_path).read_bytes()), num_threads=1,
                                  qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate({"serving_default": samples}, quant._recipe_manager)
    result = quant.quantize(calib.get_model_qsvs(), enable_progress_report=False)
    result.export_model(str(out_path), overwrite=True)
    strip_tensor_names(out_path)
    return out_path


def _signature_input_names(path: Path) -> dict[str, str]:
    """TFLite tensor name -> signature argument name (``args_0``...), the keys the calibrator feeds."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    runner_inputs = interpreter.get_signature_runner("serving_default").get_input_details()
    by_index = {detail["index"]: detail["name"] for detail in interpreter.get_input_details()}
    return {by_index[detail["index"]]: arg for arg, detail in runner_inputs.items()}
