"""One inference call per window: every artifact of the demo bundle takes a batch and gives the per-row results.

onnxruntime files must have a dynamic batch axis; LiteRT files have a fixed batch (litert-torch cannot
lower a dynamic one), so the backend invokes once per ``batch`` rows and pads the last chunk.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.formats import read_record
from edge_runtime.inference import LiteRTBackend, OnnxRuntimeBackend, available_backends, open_backend
from edge_runtime.model_bundle import load_bundle
from edge_runtime.preprocess import analyze_record

BUNDLE = load_bundle()
ARTIFACTS = [m for m in BUNDLE.models if (m.format == "onnx" and "onnxruntime" in available_backends())
             or (m.format == "tflite" and "litert" in available_backends())]


@pytest.fixture(scope="module")
def window():
    beats = analyze_record(read_record(CINC_LVH_RECORD)).beats.astype(np.float32)
    n = 21  # more than one LiteRT batch of 16 and not a multiple of it
    rng = np.random.default_rng(0)
    beats = beats[np.arange(n) % len(beats)] * rng.uniform(0.8, 1.2, (n, 1, 1)).astype(np.float32)
    demo = np.column_stack([rng.uniform(30, 85, n), rng.integers(0, 2, n), rng.uniform(150, 195, n),
                            rng.uniform(50, 110, n)]).astype(np.float32)
    params = np.column_stack([rng.uniform(80, 130, n), rng.uniform(0, 80, n), rng.uniform(-30, 90, n),
                              rng.uniform(0, 80, n)]).astype(np.float32)
    return beats, demo, params


@pytest.mark.parametrize("model", ARTIFACTS, ids=[m.path.name for m in ARTIFACTS])
def test_every_artifact_takes_a_batch_and_matches_per_row(model, window):
    beats, demo, params = window
    backend = open_backend(model)
    batched = backend.run(beats, demo, params)
    per_row = np.array([backend.run(beats[i:i + 1], demo[i:i + 1], params[i:i + 1])[0] for i in range(len(beats))])
    assert batched.shape == (len(beats),) and np.isfinite(batched).all()
    # Rows are independent in every graph (no batch statistics), so batching changes float rounding only.
    np.testing.assert_allclose(batched, per_row, atol=1e-3)
    assert np.ptp(batched) > 0  # different rows, different outputs: not one row broadcast


@pytest.mark.parametrize("model", [m for m in ARTIFACTS if m.format == "onnx"],
                         ids=[m.path.name for m in ARTIFACTS if m.format == "onnx"])
def test_onnx_artifacts_have_a_dynamic_batch_axis(model):
    backend = OnnxRuntimeBackend(model)
    for tensor in (*backend.session.get_inputs(), *backend.session.get_outputs()):
        assert not isinstance(tensor.shape[0], int), f"{model.path.name}: {tensor.name} has a fixed batch {tensor.shape}"


@pytest.mark.parametrize("model", [m for m in ARTIFACTS if m.format == "tflite"],
                         ids=[m.path.name for m in ARTIFACTS if m.format == "tflite"])
def test_litert_invokes_once_per_batch_of_rows(model, window):
    beats, demo, params = window
    backend = LiteRTBackend(model)
    calls = []
    backend.interpreter = _CountingInterpreter(backend.interpreter, calls)
    backend.run(beats, demo, params)
    assert len(calls) == math.ceil(len(beats) / backend.batch)


class _CountingInterpreter:
    """Forwards to the real interpreter and records every invoke."""

    def __init__(self, interpreter, calls: list) -> None:
        self._interpreter, self._calls = interpreter, calls

    def invoke(self) -> None:
        self._calls.append(1)
        self._interpreter.invoke()

    def __getattr__(self, name):
        return getattr(self._interpreter, name)
