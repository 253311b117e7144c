"""Instruction-set-neutral cost of a model: per-beat multiply-accumulates (FLOPs = 2 x MACs), parameters, file size.

Counted from the ONNX graph with the batch fixed to 1 beat, so the numbers hold for any CPU (x86 or the Pi's
cortex-a72) and sit beside the emulated-aarch64 "it works" results, which say nothing about speed.

    python deploy/model_cost.py MODEL.onnx|BUNDLE_DIR [--json]

Counts Conv, ConvInteger, QLinearConv, Gemm, MatMul, MatMulInteger and QLinearMatMul (the layers that carry the
arithmetic); element-wise ops, pooling and activations are left out and listed as "other nodes". Needs ``onnx``
(the train extra); a host tool, never imported by the device runtime.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# op type -> (index of the input holding the weight/second operand, index of the first operand)
CONV_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
MATMUL_INPUTS = {"Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}


def _fix_batch_to_one(model) -> None:
    """Set every symbolic (or unknown) leading input dimension to 1: the cost of one beat."""
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and (dims[0].dim_param or dims[0].dim_value <= 0):
            dims[0].Clear()
            dims[0].dim_value = 1


def _shapes(model) -> dict[str, list[int]]:
    """Static shapes of every tensor after ONNX shape inference (0 marks an unknown dimension)."""
    from onnx import numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    for tensor in inferred.graph.initializer:
        shapes[tensor.name] = list(numpy_helper.to_array(tensor).shape)
    return shapes


def model_cost(path: str | Path) -> dict:
    """Per-beat MACs/FLOPs, parameter count and file size of one ONNX model.

    Parameters
    ----------
    path : str or Path
        An ``.onnx`` file. Inputs may have a symbolic batch dimension; other dimensions must be static.

    Returns
    -------
    dict
        ``file``, ``size_bytes``, ``parameters`` (initializer elements), ``macs_per_beat``, ``flops_per_beat``
        (2 x MACs), ``counted_nodes``, ``other_nodes``.

    Raises
    ------
    ValueError
        When a counted layer's shapes cannot be inferred statically (the count would be silently wrong).
    """
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    _fix_batch_to_one(model)
    shapes = _shapes(model)
    macs, counted, other = 0, 0, 0
    for node in model.graph.node:
        output_shape = shapes.get(node.output[0], [])
        if node.op_type in CONV_WEIGHT_INPUT:
            weight_shape = shapes.get(node.input[CONV_WEIGHT_INPUT[node.op_type]], [])
            # Each output element is a dot product over (input channels / groups) x kernel.
            per_output = math.prod(weight_shape[1:])
        elif node.op_type in MATMUL_INPUTS:
            first, second = MATMUL_INPUTS[node.op_type]
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            a_shape = shapes.get(node.input[first], [])
            per_output = (a_shape[-2] if trans_a else a_shape[-1]) if a_shape else 0
        else:
            other += 1
            continue
        total = math.prod(output_shape) * per_output if output_shape else 0
        if total <= 0:
            raise ValueError(f"{path.name}: cannot infer static shapes of {node.op_type} node {node.name!r}")
        macs += total
        counted += 1
    parameters = sum(math.prod(shapes[t.name]) for t in model.graph.initializer)
    return {
        "file": path.name,
        "size_bytes": path.stat().st_size,
        "parameters": int(parameters),
        "macs_per_beat": int(macs),
        "flops_per_beat": int(2 * macs),
        "counted_nodes": counted,
        "other_nodes": other,
    }


def _cost_or_twin(path: Path) -> dict:
    """``model_cost``; for an INT8 QOperator graph (QLinearConv outputs have no inferred shape) the MACs of
    its fp32 twin in the same folder (``*_int8.onnx`` -> ``*_fp32.onnx``: the same network), size its own."""
    try:
        return model_cost(path)
    except ValueError:
        twin = path.with_name(path.name.replace("_int8", "_fp32"))
        if twin == path or not twin.exists():
            raise
        import onnx
        from onnx import numpy_helper

        cost = dict(model_cost(twin), file=path.name, size_bytes=path.stat().st_size, macs_from=twin.name)
        cost["parameters"] = int(sum(numpy_helper.to_array(t).size for t in onnx.load(str(path)).graph.initializer))
        return cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx file or a model bundle directory")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    files = sorted(args.model.rglob("*.onnx")) if args.model.is_dir() else [args.model]
    if not files:
        print(f"model_cost.py: no .onnx file in {args.model}", file=sys.stderr)
        return 1
    costs = [_cost_or_twin(f) for f in files]
    if args.model.is_dir():  # TFLite files have no ONNX graph to count; report their size beside
        costs += [{"file": f.name, "size_bytes": f.stat().st_size} for f in sorted(args.model.rglob("*.tflite"))]
    if args.json:
        print(json.dumps(costs, indent=1))
        return 0
    print(f"{'file':<32} {'size KiB':>9} {'params':>9} {'MACs/beat':>12} {'FLOPs/beat':>12}")
    for cost in costs:
        print(f"{cost['file']:<32} {cost['size_bytes'] / 1024:>9.1f} {cost.get('parameters', ''):>9} "
              f"{cost.get('macs_per_beat', ''):>12} {cost.get('flops_per_beat', ''):>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
