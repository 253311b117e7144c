"""``quantization.tflite_strip`` on the committed demo bundle's TFLite files: same graph, same bits, smaller.

Needs ``ai-edge-litert`` (the ``litert`` extra, in ``dev``): its flatbuffer schema reads the files and
its interpreter runs them, through the edge runtime's own ``LiteRTBackend``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="reading and running TFLite files needs ai-edge-litert: pip install 'elvmass[litert]'")

from ai_edge_litert.tools import flatbuffer_utils  # noqa: E402
from conftest import contract_inputs  # noqa: E402
from edge_runtime.inference import LiteRTBackend  # noqa: E402
from edge_runtime.model_bundle import load_bundle  # noqa: E402
from quantization.tflite_strip import strip_tflite, strip_tflite_file  # noqa: E402

PRECISIONS = ("fp32", "int8")


@pytest.fixture(scope="module")
def stripped(tmp_path_factory):
    """precision -> (the demo bundle's TFLite ModelFile, the same entry pointing at its stripped copy)."""
    bundle, folder = load_bundle(), tmp_path_factory.mktemp("stripped")
    files = {}
    for precision in PRECISIONS:
        model = bundle.select("tflite", precision)
        files[precision] = (model, replace(model, path=strip_tflite_file(model.path, folder / model.path.name)))
    return files


@pytest.mark.parametrize("precision", PRECISIONS)
def test_stripped_file_gives_bit_identical_outputs_in_the_runtime_backend(stripped, precision):
    original, stripped_model = stripped[precision]
    before, after = LiteRTBackend(original), LiteRTBackend(stripped_model)  # loads with the manifest's tensor names
    beats, demo, params = contract_inputs(37, seed=3)  # two full batches of 16 and a padded one
    for scale in (1.0, 8.0):  # and beats far outside the calibrated range (int8 saturation)
        expected = before.run(beats * scale, demo, params)
        assert np.isfinite(expected).all()
        np.testing.assert_array_equal(after.run(beats * scale, demo, params), expected)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_stripped_file_has_the_same_graph_constants_and_scales_without_the_unread_records(stripped, precision):
    original, stripped_model = stripped[precision]
    before, after = (flatbuffer_utils.read_model(str(m.path)) for m in (original, stripped_model))
    assert after.signatureDefs is None and after.metadata is None and after.description is None
    graph_before, graph_after = before.subgraphs[0], after.subgraphs[0]
    assert list(graph_after.inputs) == list(graph_before.inputs) and list(graph_after.outputs) == list(graph_before.outputs)
    interface = set(graph_after.inputs) | set(graph_after.outputs)
    assert [(list(o.inputs), list(o.outputs), o.opcodeIndex) for o in graph_after.operators] == \
        [(list(o.inputs), list(o.outputs), o.opcodeIndex) for o in graph_before.operators]
    assert len(graph_after.tensors) == len(graph_before.tensors)
    for index, (a, b) in enumerate(zip(graph_after.tensors, graph_before.tensors)):
        assert (list(a.shape), a.type) == (list(b.shape), b.type)
        data_a, data_b = after.buffers[a.buffer].data, before.buffers[b.buffer].data
        assert bytes(data_a if data_a is not None else b"") == bytes(data_b if data_b is not None else b"")
        scales = [(None, None) if q is None or q.scale is None else (list(q.scale), list(q.zeroPoint))
                  for q in (a.quantization, b.quantization)]
        assert scales[0] == scales[1], index
        if index in interface:
            assert a.name == b.name  # the manifest's input/output names
        else:
            assert a.name is None


def test_stripping_is_idempotent_and_int8_tflite_is_3x_smaller_than_fp32(stripped):
    sizes = {}
    for precision, (original, stripped_model) in stripped.items():
        data = stripped_model.path.read_bytes()
        assert len(data) <= original.path.stat().st_size
        assert strip_tflite(data) == data  # nothing left to strip or share
        sizes[precision] = len(data)
    # issue 14: INT8 artifacts >= 3x smaller than fp32, both files stripped the same way
    assert sizes["fp32"] / sizes["int8"] >= 3.0, sizes


def test_converter_metadata_goes_and_other_metadata_is_kept_with_its_buffer(stripped):
    original, _ = stripped["int8"]
    model = flatbuffer_utils.read_model(str(original.path))  # the committed file may be stripped already
    for name, text in ((b"min_runtime_version", b"2.9.0"), (b"app_notes", b"kept as written")):
        buffer = flatbuffer_utils.BufferT()
        buffer.data = np.frombuffer(text, np.uint8)
        model.buffers.append(buffer)
        entry = flatbuffer_utils.schema_fb.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata = list(model.metadata or []) + [entry]
    after = flatbuffer_utils.convert_bytearray_to_object(strip_tflite(bytes(flatbuffer_utils.convert_object_to_bytearray(model))))
    assert [m.name for m in after.metadata] == [b"app_notes"]
    assert bytes(after.buffers[after.metadata[0].buffer].data) == b"kept as written"  # renumbered past the dropped buffer
