"""Run a bundle's model: beats + demographics + ECG parameters -> LV mass in grams.

Two backends with one API: ``onnxruntime`` (ONNX files) and ``litert`` (TFLite files, through
``ai_edge_litert.interpreter`` or, failing that, ``tflite_runtime.interpreter``). Input
normalization is inside every exported graph, so backends see raw units; missing demographics and
ECG parameters are imputed here, in numpy, from the manifest's training-fold medians.

>>> predictor = load_predictor()                      # demo bundle, INT8, backend from its content
>>> lvm_g = predictor.predict(beats, demographics, parameters)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_runtime.contract import DEMOGRAPHIC_FEATURES, MODEL_PARAMETERS, SEX_COLUMN, impute
from edge_runtime.model_bundle import BundleError, ModelBundle, ModelFile, load_bundle

BACKENDS = ("onnxruntime", "litert")
_FORMAT_OF_BACKEND = {"onnxruntime": "onnx", "litert": "tflite"}


class InferenceError(ValueError):
    """Inputs the model cannot take (wrong shape, non-finite samples, unknown sex without a combined model)."""


class Backend(Protocol):
    """One loaded model file: raw-unit float32 arrays in, ``(n,)`` grams out."""

    def run(self, beat: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> np.ndarray: ...


class OnnxRuntimeBackend:
    """An ONNX model in onnxruntime (single intra-op thread by default; one call per window of clean beats)."""

    def __init__(self, model: ModelFile, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The memory arena and memory-pattern planning stay on (onnxruntime's defaults): called once per
        # window, after the signal chain has evicted the caches, the window's call took 0.46 ms without them
        # and 0.36 ms with them (docs/performance.md); they cost ~3 MB of peak RSS.
        options.enable_cpu_mem_arena = True
        options.enable_mem_pattern = True
        self.model = model
        self.session = ort.InferenceSession(str(model.path), options, providers=["CPUExecutionProvider"])

    def run(self, beat: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        names = self.model.input_names
        feeds = {names["beat"]: beat, names["demographics"]: demographics, names["parameters"]: parameters}
        (output,) = self.session.run([self.model.output_name], feeds)
        return np.asarray(output, dtype=np.float32).reshape(len(beat))


def _litert_interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ImportError(
                "the litert backend needs ai-edge-litert (pip install 'elvmass[litert]') or tflite-runtime"
            ) from None
    return Interpreter


class LiteRTBackend:
    """A TFLite model in the LiteRT interpreter; float or int8 tensors (quantized with the file's own scales)."""

    def __init__(self, model: ModelFile, threads: int = 1) -> None:
        interpreter_class = _litert_interpreter_class()
        self.model = model
        self.interpreter = interpreter_class(model_path=str(model.path), num_threads=threads)
        self.interpreter.allocate_tensors()
        by_name = {detail["name"]: detail for detail in self.interpreter.get_input_details()}
        try:
            self.inputs = {key: by_name[name] for key, name in model.input_names.items()}
        except KeyError as error:
            raise BundleError(model.path.parent, f"{model.path.name} has no input tensor {error} (has {sorted(by_name)})") from None
        outputs = {detail["name"]: detail for detail in self.interpreter.get_output_details()}
        self.output = outputs.get(model.output_name) or next(iter(outputs.values()))

    @property
    def batch(self) -> int:
        """Rows per invoke: the converted graphs have a fixed batch (litert-torch cannot lower a dynamic one)."""
        return int(self.inputs["beat"]["shape"][0])

    def run(self, beat: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        arrays = {"beat": beat, "demographics": demographics, "parameters": parameters}
        n, batch = len(beat), self.batch
        result = np.empty(n, dtype=np.float32)
        for start in range(0, n, batch):  # one invoke per `batch` rows; a short last chunk repeats its last row
            rows = np.arange(start, start + batch).clip(max=n - 1)
            for key, detail in self.inputs.items():
                self.interpreter.set_tensor(detail["index"], _to_tensor(arrays[key][rows], detail))
            self.interpreter.invoke()
            out = _from_tensor(self.interpreter.get_tensor(self.output["index"]), self.output).reshape(-1)
            stop = min(start + batch, n)
            result[start:stop] = out[:stop - start]
        return result


def _to_tensor(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    values = values.reshape(detail["shape"])
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return values.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale) + zero_point, info.min, info.max).astype(dtype)


def _from_tensor(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def open_backend(model: ModelFile, threads: int = 1) -> Backend:
    """The backend that runs this model file's format."""
    if model.format == "onnx":
        return OnnxRuntimeBackend(model, threads)
    if model.format == "tflite":
        return LiteRTBackend(model, threads)
    raise BundleError(model.path.parent, f"no backend for format {model.format!r}")


@dataclass
class Predictor:
    """A bundle's models for one backend and precision, routed per row by sex when sex-specific.

    ``variant="auto"`` uses the male/female models when the bundle has both (rows with unknown sex
    go to the combined model if there is one), else the combined model.
    """

    bundle: ModelBundle
    backend: str
    precision: str
    backends: dict[str, Backend]

    @property
    def beat_length(self) -> int:
        return self.bundle.manifest.beat_length

    def predict(self, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> np.ndarray:
        """LV mass (g) per row.

        Parameters
        ----------
        beats
            ``(n, 12, L)`` float32 mV, standard lead order, ``L`` = the bundle's beat length.
        demographics
            ``(n, 4)``: age_years, sex (1 = M, 0 = F), height_cm, weight_kg; NaN = unknown.
        parameters
            ``(n, 4)``: qrs_ms, p_axis, r_axis, t_axis; NaN = unknown.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` float32 grams.
        """
        beats = np.ascontiguousarray(beats, dtype=np.float32)
        if beats.ndim != 3 or beats.shape[1:] != (12, self.beat_length):
            raise InferenceError(f"beats must have shape (n, 12, {self.beat_length}), got {beats.shape}")
        if not np.isfinite(beats).all():
            raise InferenceError("beats contain NaN or infinite samples")
        n = len(beats)
        demographics = np.asarray(demographics, dtype=np.float32)
        parameters = np.asarray(parameters, dtype=np.float32)
        if demographics.shape != (n, len(DEMOGRAPHIC_FEATURES)):
            raise InferenceError(f"demographics must have shape ({n}, 4) [{', '.join(DEMOGRAPHIC_FEATURES)}], got {demographics.shape}")
        if parameters.shape != (n, len(MODEL_PARAMETERS)):
            raise InferenceError(f"parameters must have shape ({n}, 4) [{', '.join(MODEL_PARAMETERS)}], got {parameters.shape}")
        try:
            demographics, parameters = impute(demographics, parameters, self.bundle.imputation)
        except ValueError as error:  # infinite values: refused, never imputed
            raise InferenceError(str(error)) from None
        sex = demographics[:, SEX_COLUMN]
        known = (sex == 0.0) | (sex == 1.0)
        if known.all() and len(self.backends) == 1:
            # One model and every sex known (the usual window): one call, no row-selection copies.
            (backend,) = self.backends.values()
            return backend.run(beats, demographics, parameters)
        if not (known | np.isnan(sex)).all():
            raise InferenceError("sex must be 1 (male), 0 (female) or NaN (unknown)")
        lvm_g = np.full(n, np.nan, dtype=np.float32)
        for variant, rows in self._routes(sex).items():
            if rows.any():
                lvm_g[rows] = self.backends[variant].run(beats[rows], demographics[rows], parameters[rows])
        return lvm_g

    def _routes(self, sex: np.ndarray) -> dict[str, np.ndarray]:
        unknown = np.isnan(sex)
        if "male" in self.backends and "female" in self.backends:
            routes = {"male": sex == 1.0, "female": sex == 0.0}
            if unknown.any():
                if "combined" not in self.backends:
                    raise InferenceError("sex is unknown and the bundle has only sex-specific models")
                routes["combined"] = unknown
            return routes
        if unknown.any():
            # Sex is an input of the combined model too; guessing it would give a silently wrong number.
            raise InferenceError("sex is unknown: the model needs it (1 = male, 0 = female)")
        return {"combined": np.ones_like(unknown)}

    def time_per_beat_ms(self, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray, repeats: int = 3) -> float:
        """Median wall time of :meth:`predict` per beat (ms) over ``repeats`` runs after one warm-up."""
        self.predict(beats[:1], demographics[:1], parameters[:1])
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.predict(beats, demographics, parameters)
            timings.append((time.perf_counter() - start) * 1000.0 / len(beats))
        return float(np.median(timings))


def available_backends() -> list[str]:
    """The backends whose runtime library imports here."""
    found = []
    try:
        import onnxruntime  # noqa: F401

        found.append("onnxruntime")
    except ImportError:
        pass
    try:
        _litert_interpreter_class()
        found.append("litert")
    except ImportError:
        pass
    return found


def load_predictor(
    bundle: ModelBundle | Path | str | None = None,
    backend: str = "auto",
    precision: str = "int8",
    variant: str = "auto",
    threads: int = 1,
) -> Predictor:
    """Open a bundle's models for prediction.

    Parameters
    ----------
    bundle
        A loaded :class:`ModelBundle`, a bundle directory, or ``None`` for the demo bundle.
    backend
        ``"onnxruntime"``, ``"litert"`` or ``"auto"`` (the first of those whose files the bundle
        has at this precision and whose runtime is installed).
    precision
        ``"int8"`` or ``"fp32"``.
    variant
        ``"auto"`` (sex-specific when available), ``"combined"``, ``"male"`` or ``"female"``.
    threads
        Intra-op threads for the runtime.
    """
    if not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle)
    if backend == "auto":
        installed = available_backends()
        formats = {m.format for m in bundle.models if m.precision == precision}
        choices = [b for b in BACKENDS if _FORMAT_OF_BACKEND[b] in formats and b in installed]
        if not choices:
            raise BundleError(bundle.path, f"no {precision} model for an installed backend (installed: {installed or 'none'})")
        backend = choices[0]
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or 'auto', not {backend!r}")
    fmt = _FORMAT_OF_BACKEND[backend]
    candidates = {m.variant: m for m in bundle.models if m.format == fmt and m.precision == precision}
    if variant == "auto":
        chosen = candidates if {"male", "female"} <= set(candidates) else {k: v for k, v in candidates.items() if k == "combined"}
    else:
        chosen = {k: v for k, v in candidates.items() if k == variant}
        if variant in ("male", "female"):
            # A forced sex-specific model serves every row, whatever sex says.
            chosen = {"combined": chosen[variant]} if chosen else {}
    if not chosen:
        raise BundleError(bundle.path, f"no {variant} {fmt}/{precision} model (has: {sorted(candidates) or 'none'})")
    return Predictor(bundle, backend, precision, {name: open_backend(model, threads) for name, model in chosen.items()})
