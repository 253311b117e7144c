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
    quant_format: str = "qdq",
    fold_integer_ops: bool = True,
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
        Per-output-channel weight scales (else one scale per weight tensor).
    quant_format
        ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses) or ``"qoperator"``
        (QLinearConv/QGemm... nodes: fewer tensors, smaller file). Measured on x86 (docs/quantization.md):
        u8 activations run about 2x faster than fp32 in either format; s8 QOperator is slower than fp32 there.
    fold_integer_ops
        Rewrite the quantizer's output for speed (:func:`fold_input_quantization`, and for QOperator
        :func:`fold_mean_pooling`, :func:`fold_max_pooling`); ``False`` only to compare against the unrewritten graph.

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
        fold_chomp(prepared)
        excluded = output_head_nodes(prepared) if keep_head_float else []
        quantize_static(
            str(prepared), str(out_path), ArrayCalibrationReader(calibration),
            quant_format={"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[quant_format],
            activation_type=QuantType.QInt8 if activation_type == "s8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
            # Asymmetric activations: ReLU outputs are non-negative, a symmetric s8 range would waste a bit.
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
    if fold_integer_ops:
        fold_input_quantization(out_path)
    if fold_integer_ops and quant_format == "qoperator":  # QLinearGlobalAveragePool is an onnxruntime (com.microsoft) operator
        fold_mean_pooling(out_path)
    if fold_integer_ops:
        fold_max_pooling(out_path)
    return out_path


def fold_input_quantization(model_path: Path) -> bool:
    """Quantize the beat once, per lead, straight from the input, in place; True if the graph had the pattern.

    The exported graph divides the beat by its per-lead scale, gathers each lead group and
    quantizes each group with one scale ``s_g`` and zero point ``z_g``:
    ``Div(beat, scale) -> Gather(axis 1) -> QuantizeLinear(s_g, z_g)``. That equals one per-axis
    ``QuantizeLinear(beat, scale_c * s_g, z_g, axis=1)`` followed by a Slice (Gather for
    non-contiguous leads) of the integer tensor: one pass over the float beat instead of three,
    and the lead selection moves a quarter of the bytes. The integer values are those of the
    original graph up to the rounding of ``x / scale_c / s_g`` against ``x / (scale_c * s_g)``
    (the INT8 scores are computed on the rewritten file).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers = _consumers(graph)
    beat = graph.input[0].name
    divs = [n for n in graph.node if n.op_type == "Div" and n.input[0] == beat and n.input[1] in inits]
    if len(divs) != 1 or consumers.get(beat, []) != divs:
        return False
    div = divs[0]
    lead_scale = numpy_helper.to_array(inits[div.input[1]]).astype(np.float32)
    n_leads = next(d.dim_value for i, d in enumerate(graph.input[0].type.tensor_type.shape.dim) if i == 1)
    if lead_scale.size not in (1, n_leads):
        return False
    lead_scale = np.broadcast_to(lead_scale.reshape(-1), (n_leads,))
    plan = []
    for gather in consumers.get(div.output[0], []):
        axis = next((helper.get_attribute_value(a) for a in gather.attribute if a.name == "axis"), 0)
        users = consumers.get(gather.output[0], [])
        if gather.op_type != "Gather" or axis != 1 or gather.input[1] not in inits or len(users) != 1 \
                or users[0].op_type != "QuantizeLinear" or len(users[0].input) < 3 \
                or not all(name in inits for name in users[0].input[1:3]):
            return False
        quantize = users[0]
        scale, zero = (numpy_helper.to_array(inits[name]) for name in quantize.input[1:3])
        if scale.size != 1 or zero.size != 1 or any(a.name == "axis" for a in quantize.attribute):
            return False
        plan.append((gather, quantize, numpy_helper.to_array(inits[gather.input[1]]).reshape(-1), float(scale), zero))
    leads = np.concatenate([p[2] for p in plan]) if plan else np.array([])
    if not plan or len(np.unique(leads)) != len(leads) or len({p[4].dtype for p in plan}) != 1:
        return False  # a lead in two groups would need two integer copies
    scales = np.ones(n_leads, np.float32)
    zeros = np.zeros(n_leads, plan[0][4].dtype)
    for _, _, idx, scale, zero in plan:
        scales[idx] = lead_scale[idx] * scale
        zeros[idx] = zero.reshape(-1)[0]
    graph.initializer.extend([numpy_helper.from_array(scales, "beat_int8_scale"),
                              numpy_helper.from_array(zeros, "beat_int8_zero_point")])
    new_nodes = [helper.make_node("QuantizeLinear", [beat, "beat_int8_scale", "beat_int8_zero_point"], ["beat_int8"], axis=1)]
    for k, (gather, quantize, idx, _, _) in enumerate(plan):
        if np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)):
            bounds = [f"beat_leads{k}_start", f"beat_leads{k}_end", "beat_lead_axis"]
            graph.initializer.extend([numpy_helper.from_array(np.array([idx[0]], np.int64), bounds[0]),
                                      numpy_helper.from_array(np.array([idx[-1] + 1], np.int64), bounds[1])])
            if k == 0:
                graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), bounds[2]))
            new_nodes.append(helper.make_node("Slice", ["beat_int8", *bounds], [quantize.output[0]]))
        else:
            new_nodes.append(helper.make_node("Gather", ["beat_int8", gather.input[1]], [quantize.output[0]], axis=1))
    dropped = {id(div)} | {id(p[0]) for p in plan} | {id(p[1]) for p in plan}
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(new_nodes + kept)
    _drop_unused_nodes_and_initializers(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))
    return True


def fold_mean_pooling(model_path: Path) -> int:
    """``DequantizeLinear -> ReduceMean(time) -> QuantizeLinear`` as one integer ``QLinearGlobalAveragePool``, in place.

    The encoders' mean over time ran in float between a dequantize and a quantize; onnxruntime's
    ``com.microsoft.QLinearGlobalAveragePool`` averages the integers directly (and runs
    channel-last after onnxruntime's layout transform, so no transpose back to channel-first is
    needed before it). A Squeeze drops the pooled axis as ``keepdims=0`` did. Returns the number folded.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    consumers = _consumers(graph)
    replaced: dict[int, list] = {}
    dropped: set[int] = set()
    for dequantize in [n for n in graph.node if n.op_type == "DequantizeLinear" and len(n.input) == 3]:
        for mean in [u for u in consumers.get(dequantize.output[0], []) if u.op_type == "ReduceMean" and len(u.input) == 1]:
            attributes = {a.name: helper.get_attribute_value(a) for a in mean.attribute}
            users = consumers.get(mean.output[0], [])
            if list(attributes.get("axes", [])) not in ([2], [-1]) or len(users) != 1 or users[0].op_type != "QuantizeLinear" \
                    or len(users[0].input) < 3:
                continue
            quantize = users[0]
            pooled = quantize.output[0] + "_pooled"
            nodes = [helper.make_node("QLinearGlobalAveragePool", [*dequantize.input, *quantize.input[1:3]], [pooled],
                                      domain="com.microsoft", channels_last=0)]
            if attributes.get("keepdims", 1):
                nodes[0].output[0] = quantize.output[0]
            else:
                axes = quantize.output[0] + "_axes"
                graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), axes))
                nodes.append(helper.make_node("Squeeze", [pooled, axes], [quantize.output[0]]))
            replaced[id(mean)] = nodes
            dropped.add(id(quantize))
    if not replaced:
        return 0
    _splice(graph, replaced, dropped)  # also drops a DequantizeLinear only the mean read
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))
    return len(replaced)


def fold_max_pooling(model_path: Path) -> int:
    """``DequantizeLinear -> ReduceMax(time) -> QuantizeLinear`` as one integer ``MaxPool``, in place.

    When the quantize after the max uses the dequantize's own scale and zero point (the quantizer
    gives a max the range of its input), the float round trip is exact and the max commutes with
    the monotone dequantization, so the integer max is the same number: a ``MaxPool`` whose kernel
    spans the whole time axis, on the uint8 tensor, then a Squeeze when ``keepdims=0``. onnxruntime
    runs it channel-last (``NhwcMaxPool``), so the encoder output is neither transposed back to
    channel-first nor dequantized to float for it. The time length is read by running the graph
    once (the beat length is fixed in every export). Returns the number folded.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    consumers = _consumers(graph)

    def same_constant(a: str, b: str) -> bool:
        return a == b or (a in inits and b in inits
                          and np.array_equal(numpy_helper.to_array(inits[a]), numpy_helper.to_array(inits[b])))

    producers = {out: node for node in graph.node for out in node.output}
    plan = []
    for reduce_max in [n for n in graph.node if n.op_type == "ReduceMax" and len(n.input) == 1]:
        dequantize = producers.get(reduce_max.input[0])
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or len(dequantize.input) != 3:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in reduce_max.attribute}
        after = consumers.get(reduce_max.output[0], [])
        if list(attributes.get("axes", [])) not in ([2], [-1]) or len(after) != 1 or after[0].op_type != "QuantizeLinear" \
                or len(after[0].input) < 3 or not all(same_constant(a, b) for a, b in zip(dequantize.input[1:3], after[0].input[1:3])):
            continue
        plan.append((dequantize, reduce_max, after[0], bool(attributes.get("keepdims", 1))))
    if not plan:
        return 0
    time_length = _tensor_lengths(model, [dequantize.input[0] for dequantize, *_ in plan], axis=2)
    replaced: dict[int, list] = {}
    dropped: set[int] = set()
    for (dequantize, reduce_max, quantize, keepdims), length in zip(plan, time_length):
        out = quantize.output[0]
        pooled = out if keepdims else out + "_maxpooled"
        nodes = [helper.make_node("MaxPool", [dequantize.input[0]], [pooled], kernel_shape=[length])]
        if not keepdims:
            axes = out + "_axes"
            graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), axes))
            nodes.append(helper.make_node("Squeeze", [pooled, axes], [out]))
        replaced[id(reduce_max)] = nodes
        dropped.add(id(quantize))
    _splice(graph, replaced, dropped)  # the dequantize goes too where nothing else reads it
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))
    return len(replaced)


def _tensor_lengths(model, names: list[str], axis: int) -> list[int]:
    """Length along ``axis`` of intermediate tensors, by running ``model`` once on one all-zero row."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in session.get_inputs():
        shape = [1 if not isinstance(d, int) else d for d in value.shape]
        feeds[value.name] = np.zeros(shape, dtype=np.float32)
    return [int(out.shape[axis]) for out in session.run(names, feeds)]


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
    _share_equal_initializers(graph)
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
    model.producer_name, model.producer_version = "", ""
    graph.name = "g"  # required non-empty; the exporter writes "main_graph"
    used_domains = {node.domain for node in graph.node}
    for opset in [o for o in model.opset_import if o.domain not in used_domains and o.domain not in ("", "ai.onnx")]:
        model.opset_import.remove(opset)
    onnx.checker.check_model(model)
    onnx.save(model, str(model_path))


def fold_chomp(model_path: Path) -> int:
    """Turn ``Conv(pads=[p, p]) -> Slice(time, 0:-k)`` into ``Conv(pads=[p, p - k])``, in place.

    The TCN's causal padding pads both ends and then drops the last ``k = p`` samples; a Conv with
    asymmetric pads computes exactly the kept samples. Without the Slice, onnxruntime fuses the
    ReLU into the integer convolution and needs no Dequantize/Quantize pair around the slice
    (smaller and faster INT8 graph; the fp32 graph skips the wasted outputs). Returns the number folded.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1

    def constant(name: str) -> np.ndarray | None:
        while name not in inits and name in producer and producer[name].op_type == "Identity":
            name = producer[name].input[0]
        if name in inits:
            return numpy_helper.to_array(inits[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            value = next((a for a in node.attribute if a.name == "value"), None)
            return None if value is None else numpy_helper.to_array(value.t)
        return None

    folded = []
    for slice_node in [n for n in graph.node if n.op_type == "Slice"]:
        conv = producer.get(slice_node.input[0])
        if conv is None or conv.op_type != "Conv" or consumers.get(conv.output[0], 0) != 1 or len(slice_node.input) < 4:
            continue
        starts, ends, axes = (constant(name) for name in slice_node.input[1:4])
        steps = constant(slice_node.input[4]) if len(slice_node.input) > 4 and slice_node.input[4] else np.ones(1)
        pads = next((list(a.ints) for a in conv.attribute if a.name == "pads"), None)
        if any(v is None or np.size(v) != 1 for v in (starts, ends, axes, steps)) or pads is None or len(pads) != 2:
            continue
        k = -int(ends.reshape(-1)[0])
        if int(starts.reshape(-1)[0]) != 0 or int(axes.reshape(-1)[0]) not in (2, -1) or int(steps.reshape(-1)[0]) != 1 \
                or not 0 < k <= pads[1]:
            continue
        for attribute in conv.attribute:
            if attribute.name == "pads":
                attribute.ints[:] = [pads[0], pads[1] - k]
        for node in graph.node:
            node.input[:] = [conv.output[0] if name == slice_node.output[0] else name for name in node.input]
        for output in graph.output:
            if output.name == slice_node.output[0]:
                output.name = conv.output[0]
        folded.append(slice_node)
    for node in folded:
        graph.node.remove(node)
    _drop_unused_nodes_and_initializers(graph)
    del graph.value_info[:]  # the Conv outputs changed length; shapes are re-inferred
    onnx.save(model, str(model_path))
    return len(folded)


def _share_equal_initializers(graph) -> None:
    """Point every use of a byte-identical initializer (same type, shape, data) at one copy.

    The quantizer writes one scale and zero point per tensor; many are equal (e.g. the zero points
    of ReLU outputs), and each copy costs a tensor record. Values are unchanged.
    """
    from onnx import numpy_helper

    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in keep:
            continue
        array = numpy_helper.to_array(init)
        key = (init.data_type, tuple(init.dims), array.tobytes())
        alias[init.name] = first.setdefault(key, init.name)
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
    for init in [i for i in graph.initializer if alias.get(i.name, i.name) != i.name]:
        graph.initializer.remove(init)


def _consumers(graph) -> dict[str, list]:
    """Tensor name -> the nodes that read it."""
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _splice(graph, replaced: dict[int, list], dropped: set[int]) -> None:
    """Put ``replaced[id(node)]`` where each such node was, leave out ``dropped``, then drop what nobody reads."""
    nodes = []
    for node in graph.node:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_nodes_and_initializers(graph)


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

