"""TFLite conversion (litert-torch) and full-integer INT8 (ai-edge-quantizer, min/max calibration).

The converters are the ``quant`` extra, not in ``dev`` (they pull JAX and transformers, ~2 GB):
these tests skip without them. The committed demo bundle's TFLite files are verified with the
LiteRT interpreter in tests/test_bundle_demo.py, which CI always runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("litert_torch", reason="TFLite conversion needs the quant extra: pip install 'elvmass[quant]'")
pytest.importorskip("ai_edge_quantizer", reason="TFLite INT8 needs the quant extra: pip install 'elvmass[quant]'")
torch = pytest.importorskip("torch")

from conftest import contract_inputs as inputs  # noqa: E402
from edge_runtime.inference import LiteRTBackend  # noqa: E402
from edge_runtime.model_bundle import ModelFile  # noqa: E402
from quantization import tflite  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from training.model import ElvMassNet, ModelConfig  # lazy: heavy

    torch.manual_seed(0)
    model = ElvMassNet(ModelConfig(channels=8, levels=2, embed=8, hidden=16)).eval()
    beats, demo, params = inputs(64, seed=0)
    model.fit_normalization(beats, demo, params, np.random.default_rng(0).uniform(60, 260, 64))
    folder = tmp_path_factory.mktemp("tflite")
    fp32 = folder / "fp32.tflite"
    names = tflite.convert_fp32(model, (beats, demo, params), fp32)
    int8 = tflite.quantize_int8(fp32, folder / "int8.tflite", {"beat": beats, "demographics": demo, "parameters": params})
    return model, fp32, int8, names


def predict(path: Path, beats, demo, params) -> np.ndarray:
    model = ModelFile(path, "tflite", "fp32", "combined", tflite.tflite_input_names(path), tflite.tflite_output_name(path))
    return LiteRTBackend(model).run(beats, demo, params)


def test_fp32_tflite_matches_torch_and_keeps_channel_first_input(converted):
    model, fp32, _, names = converted
    assert list(names) == ["beat", "demographics", "parameters"]
    from ai_edge_litert.interpreter import Interpreter  # lazy: heavy

    shapes = {d["name"]: tuple(d["shape"]) for d in Interpreter(model_path=str(fp32)).get_input_details()}
    assert shapes[names["beat"]] == (tflite.TFLITE_BATCH, 12, 400)
    beats, demo, params = inputs(21, seed=5)  # one full batch of 16 and a padded one
    with torch.no_grad():
        reference = model(*(torch.from_numpy(x) for x in (beats, demo, params))).numpy().ravel()
    assert np.max(np.abs(predict(fp32, beats, demo, params) - reference)) < 1e-3


def test_int8_tflite_is_integer_smaller_and_close_to_fp32(converted):
    _, fp32, int8, _ = converted
    from ai_edge_litert.interpreter import Interpreter  # lazy: heavy

    details = Interpreter(model_path=str(int8)).get_input_details()
    assert all(np.dtype(d["dtype"]) == np.int8 for d in details)
    assert int8.stat().st_size < fp32.stat().st_size  # per-tensor metadata dominates in a model this small
    beats, demo, params = inputs(32, seed=6)
    reference = predict(fp32, beats, demo, params)
    quantized = predict(int8, beats, demo, params)
    assert np.mean(np.abs(quantized - reference)) < 0.05 * np.std(reference) + 0.5


def test_convolutions_stay_channel_last_and_the_lead_groups_run_as_one_grouped_encoder(converted):
    _, fp32, int8, _ = converted
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    for path in (fp32, int8):
        model = flatbuffer_utils.read_model(str(path))
        ops = [names[max(model.operatorCodes[op.opcodeIndex].builtinCode, model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
               for op in model.subgraphs[0].operators]
        # one TRANSPOSE at the beat input (was one pair per Conv1d); 2 levels x 2 convs + stem + 2 projections
        assert ops.count("TRANSPOSE") <= 1 and ops.count("CONV_2D") == 7, ops


def test_strip_tensor_names_keeps_io_names(converted, tmp_path):
    _, fp32, _, names = converted
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(fp32.read_bytes())
    tflite.strip_tensor_names(copy)
    assert tflite.tflite_input_names(copy) == names


def test_every_tflite_artifact_takes_a_batch_and_matches_per_row(converted):
    _, fp32, int8, _ = converted
    beats, demo, params = inputs(21, seed=7)
    for path in (fp32, int8):
        assert tflite.graph_batch(path) == tflite.TFLITE_BATCH
        batched = predict(path, beats, demo, params)
        per_row = np.array([predict(path, beats[i:i + 1], demo[i:i + 1], params[i:i + 1])[0] for i in range(len(beats))])
        np.testing.assert_allclose(batched, per_row, atol=1e-4)


def test_float_interface_int8_keeps_inputs_and_output_float_and_is_closer(converted, tmp_path):
    _, fp32, int8, _ = converted
    from ai_edge_litert.interpreter import Interpreter

    beats, demo, params = inputs(64, seed=0)
    calibration = {"beat": beats, "demographics": demo, "parameters": params}
    float_io = tflite.quantize_int8(fp32, tmp_path / "io.tflite", calibration, per_channel=False,
                                    float_head=True, float_inputs=True)
    interpreter = Interpreter(model_path=str(float_io))
    assert all(np.dtype(d["dtype"]) == np.float32 for d in interpreter.get_input_details())
    assert np.dtype(interpreter.get_output_details()[0]["dtype"]) == np.float32
    tensor_types = {np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
    assert np.dtype(np.int8) in tensor_types  # the body is integer
    beats, demo, params = inputs(32, seed=6)
    reference = predict(fp32, beats, demo, params)
    assert np.mean(np.abs(predict(float_io, beats, demo, params) - reference)) <= \
        np.mean(np.abs(predict(int8, beats, demo, params) - reference))


def test_left_padded_convs_compute_the_causal_chomp(converted):
    model, _, _, _ = converted
    from training.model import Chomp1d, fold_batchnorm

    rewritten = tflite.left_padded_convs(fold_batchnorm(model))
    assert not any(isinstance(m, Chomp1d) and m.size for m in rewritten.modules())
    beats, demo, params = (torch.from_numpy(x) for x in inputs(4, seed=8))
    with torch.no_grad():
        torch.testing.assert_close(rewritten(beats, demo, params), model(beats, demo, params), atol=1e-4, rtol=0)


def test_stripped_conversions_compute_the_same_bits_and_the_converted_file_stays_quantizable(converted, tmp_path):
    """The pipeline ships stripped fp32 and INT8 files (quantization.tflite_strip), quantizing from the converted one."""
    from quantization.tflite_strip import strip_tflite_file

    _, fp32, int8, names = converted
    beats, demo, params = inputs(21, seed=9)
    for path in (fp32, int8):
        stripped = strip_tflite_file(path, tmp_path / f"stripped_{path.name}")
        assert stripped.stat().st_size < path.stat().st_size
        assert tflite.tflite_input_names(stripped) == tflite.tflite_input_names(path)
        np.testing.assert_array_equal(predict(stripped, beats, demo, params), predict(path, beats, demo, params))
    assert tflite.tflite_input_names(fp32) == names  # the converted file keeps what the quantizer reads
