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
  :func:`strip_tensor_names` replaces internal names with short ids, keeping the input/output names.

Needs the ``quant`` extra (``litert-torch``, ``ai-edge-quantizer``, ``ai-edge-litert``).
"""

from __future__ import annotations

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
    more requantization in the INT8 model. The causal chomp becomes left padding (:func:`left_padded_convs`).

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

    from training.model import fold_batchnorm

    module = left_padded_convs(fold_batchnorm(module.eval()))
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


def quantize_int8(fp32_path: Path, out_path: Path, calibration: dict[str, np.ndarray], activation_bits: int = 8) -> Path:
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

    Returns
    -------
    pathlib.Path
        ``out_path``. Its input/output tensors are int8 with their own scale and zero point
        (``edge_runtime.inference`` quantizes and dequantizes with them).
    """
    from ai_edge_quantizer import calibrator, quantizer, recipe
    from ai_edge_quantizer.utils import qsv_utils

    names = tflite_input_names(fp32_path)
    signature_names = _signature_input_names(fp32_path)
    batch = graph_batch(fp32_path)
    samples = [{signature_names[names[key]]: chunk[k] for k, key in enumerate(INPUT_ORDER)}
               for chunk in fixed_batches([calibration[key] for key in INPUT_ORDER], batch)]
    recipes = {8: recipe.static_wi8_ai8, 16: recipe.static_wi8_ai16}
    if activation_bits not in recipes:
        raise ValueError("activation_bits must be 8 or 16")
    quant = quantizer.Quantizer(str(fp32_path), recipes[activation_bits]())
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
