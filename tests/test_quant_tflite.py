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
    assert shapes[names["beat"]] == (1, 12, 400)
    beats, demo, params = inputs(16, seed=5)
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


def test_strip_tensor_names_keeps_io_names(converted, tmp_path):
    _, fp32, _, names = converted
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(fp32.read_bytes())
    tflite.strip_tensor_names(copy)
    assert tflite.tflite_input_names(copy) == names
