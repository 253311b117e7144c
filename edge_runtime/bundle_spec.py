"""The two documents that carry the model contract: ``export.json`` and the bundle's ``manifest.json``.

``training.export`` writes an :class:`ExportSpec` next to the fp32 ONNX file(s); ``quantization``
reads it and writes a :class:`BundleManifest` (which embeds the export it was built from); the
device (``edge_runtime.model_bundle``) and the benchmarks read the manifest. Both are typed and
versioned: ``from_dict`` refuses an unknown or missing key, a wrong version, or inputs that do not
follow :mod:`edge_runtime.contract` (feature names and order, lead order), with a
:class:`SpecError` naming the field. Nobody reads these documents through ``dict.get`` guesses.

Version history: manifest schema 1 (no ``training_ranges``, provenance as a free-form ``training``
dict) was upgraded to 2 by ``python -m quantization.upgrade_manifest``; export spec 1 is the first
typed ``export.json``. Imports only the stdlib and the device's own contract.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.contract import (
    DEMOGRAPHIC_FEATURES,
    DEMOGRAPHIC_UNITS,
    IMPUTED_FEATURES,
    INPUT_NAMES,
    MODEL_PARAMETER_UNITS,
    MODEL_PARAMETERS,
    OUTPUT_NAME,
)
from edge_runtime.record import LIMB_LEADS, PRECORDIAL_LEADS, STANDARD_LEADS

MANIFEST_SCHEMA_VERSION = 2
EXPORT_SPEC_VERSION = 1
NOT_VALIDATED = "not clinically validated"
MODEL_FORMATS = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8")
VARIANTS = ("combined", "male", "female")
NORMALIZATION = "inside the model graph (training-fold constants baked in); feed raw units"
OUTPUT = {"name": OUTPUT_NAME, "units": "g", "meaning": "left-ventricular mass", "shape": ["batch", 1]}


class SpecError(ValueError):
    """A document does not follow its specification; ``field`` is the dotted path of the culprit."""

    def __init__(self, document: str, field_path: str, problem: str) -> None:
        self.document = document
        self.field = field_path
        self.problem = problem
        super().__init__(f"{document}: field '{field_path}' {problem}")


def _keys(data: Any, required: tuple[str, ...], document: str, where: str, optional: tuple[str, ...] = ()) -> dict:
    """``data`` as a dict with exactly the required keys (plus any of ``optional``), else :class:`SpecError`."""
    if not isinstance(data, Mapping):
        raise SpecError(document, where or "(top level)", f"must be an object, not {type(data).__name__}")
    prefix = f"{where}." if where else ""
    missing = [key for key in required if key not in data]
    if missing:
        raise SpecError(document, prefix + missing[0], "is missing" + (
            f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise SpecError(document, prefix + unknown[0], "is not part of the specification"
                        + (f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""))
    return dict(data)


def _number(value: Any, document: str, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(document, where, f"must be a finite number, not {value!r}")
    if minimum is not None and value < minimum:
        raise SpecError(document, where, f"must be >= {minimum:g}, not {value!r}")
    return float(value)


def _text(value: Any, document: str, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(document, where, f"must be a string, not {type(value).__name__}")
    return value


def _object(value: Any, document: str, where: str) -> dict:
    if not isinstance(value, Mapping):
        raise SpecError(document, where, f"must be an object, not {type(value).__name__}")
    return dict(value)


def _same(value: Any, expected: Any, document: str, where: str, why: str = "") -> None:
    if value != expected:
        raise SpecError(document, where, f"is {value!r}, this runtime's contract says {expected!r}{why}")


def _version(data: Mapping, key: str, expected: int, document: str, hint: str) -> None:
    if not isinstance(data, Mapping):
        raise SpecError(document, "(top level)", f"must be an object, not {type(data).__name__}")
    version = data.get(key)
    if version != expected:
        raise SpecError(document, key, f"is {version!r}: this code reads version {expected} only{hint}")


@dataclass(frozen=True)
class InputSpec:
    """The ``inputs`` section: tensor layouts, lead order and feature order (all fixed by the contract but
    the beat length)."""

    beat_length: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "beat": {"shape": ["batch", len(STANDARD_LEADS), self.beat_length], "length": self.beat_length,
                     "dtype": "float32", "units": "mV", "lead_order": list(STANDARD_LEADS),
                     "lead_groups": {"limb": list(LIMB_LEADS), "precordial": list(PRECORDIAL_LEADS)}},
            "demographics": {"shape": ["batch", len(DEMOGRAPHIC_FEATURES)], "features": list(DEMOGRAPHIC_FEATURES),
                             "units": list(DEMOGRAPHIC_UNITS)},
            "parameters": {"shape": ["batch", len(MODEL_PARAMETERS)], "features": list(MODEL_PARAMETERS),
                           "units": list(MODEL_PARAMETER_UNITS)},
            "normalization": NORMALIZATION,
        }

    @classmethod
    def from_dict(cls, data: Any, document: str, where: str = "inputs") -> "InputSpec":
        section = _keys(data, ("beat", "demographics", "parameters", "normalization"), document, where)
        beat = _keys(section["beat"], ("shape", "length", "dtype", "units", "lead_order", "lead_groups"),
                     document, f"{where}.beat")
        length = beat["length"]
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise SpecError(document, f"{where}.beat.length", f"must be a positive integer, not {length!r}")
        spec = cls(length)
        expected = spec.to_dict()
        order = " (order matters: the model reads columns by position)"
        for name in ("demographics", "parameters"):
            part = _keys(section[name], ("shape", "features", "units"), document, f"{where}.{name}")
            _same(part["features"], expected[name]["features"], document, f"{where}.{name}.features", order)
            for key in ("shape", "units"):
                _same(part[key], expected[name][key], document, f"{where}.{name}.{key}")
        _same(beat["lead_order"], expected["beat"]["lead_order"], document, f"{where}.beat.lead_order", order)
        for key in ("shape", "dtype", "units", "lead_groups"):
            _same(beat[key], expected["beat"][key], document, f"{where}.beat.{key}")
        _text(section["normalization"], document, f"{where}.normalization")
        return spec


@dataclass(frozen=True)
class IntervalCalibration:
    """The interval the runtime reports, ``median +- lvm_halfwidth_g`` (the conformal interval, not INT8
    calibration data)."""

    method: str
    coverage: float
    lvm_halfwidth_g: float
    n_calibration: int
    data: str

    FIELDS = ("method", "coverage", "lvm_halfwidth_g", "n_calibration", "data")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, data: Any, document: str, where: str = "calibration") -> "IntervalCalibration | None":
        if data is None:
            return None
        section = _keys(data, cls.FIELDS, document, where)
        coverage = _number(section["coverage"], document, f"{where}.coverage")
        if not 0.0 < coverage < 1.0:
            raise SpecError(document, f"{where}.coverage", f"must lie in (0, 1), not {coverage!r}")
        n = section["n_calibration"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError(document, f"{where}.n_calibration", f"must be a positive integer, not {n!r}")
        return cls(_text(section["method"], document, f"{where}.method"), coverage,
                   _number(section["lvm_halfwidth_g"], document, f"{where}.lvm_halfwidth_g", minimum=0.0), n,
                   _text(section["data"], document, f"{where}.data"))


def _imputation(data: Any, document: str) -> dict[str, float]:
    section = _keys(data, IMPUTED_FEATURES, document, "imputation")
    return {name: _number(section[name], document, f"imputation.{name}") for name in IMPUTED_FEATURES}


def _thresholds(data: Any, document: str) -> dict[str, float]:
    section = _keys(data, ("M", "F"), document, "lvh_thresholds_g_m2")
    return {sex: _number(section[sex], document, f"lvh_thresholds_g_m2.{sex}", minimum=0.0) for sex in ("M", "F")}


def _preprocessing(data: Any, document: str) -> dict[str, Any]:
    # Compared key by key with the runtime's PreprocessConfig when a bundle is loaded (model_bundle).
    section = _object(data, document, "preprocessing")
    for key, value in section.items():
        if value is not None:
            _number(value, document, f"preprocessing.{key}")
    return section


def _training_data(value: Any, document: str) -> str:
    text = _text(value, document, "training_data")
    if NOT_VALIDATED not in text:
        raise SpecError(document, "training_data", f"must say '{NOT_VALIDATED}': {text!r}")
    return text


@dataclass(frozen=True)
class ExportSpec:
    """``export.json``: what ``elvmass export`` hands to ``elvmass quantize`` (spec version 1).

    ``model_files`` maps each variant (``combined`` or ``male`` + ``female``) to its fp32 ONNX file in
    the run directory. ``model_config`` is the architecture (``training.model.ModelConfig.to_dict()``).
    The final model trained on every usable subject of ``labels``: there is no holdout, so unbiased
    numbers come from ``metrics`` (cross-validation) or another cohort.
    """

    model_id: str
    model_files: dict[str, str]
    model_config: dict[str, Any]
    opset: int
    inputs: InputSpec
    imputation: dict[str, float]
    preprocessing: dict[str, Any]
    lvh_thresholds_g_m2: dict[str, float]
    training_data: str
    final_model: str
    labels: str
    data_hash: str
    seed: int
    code_version_train: str
    code_version_export: str
    metrics: dict[str, Any]
    calibration: IntervalCalibration | None
    parity: dict[str, Any]

    DOCUMENT = "export.json"
    FIELDS = ("spec_version", "model_id", "model_files", "model_config", "opset", "inputs", "imputation",
              "preprocessing", "lvh_thresholds_g_m2", "training_data", "final_model", "labels", "data_hash", "seed",
              "code_version_train", "code_version_export", "metrics", "calibration", "parity")

    @property
    def sex_specific(self) -> bool:
        return set(self.model_files) == {"male", "female"}

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.FIELDS[1:]}
        values["inputs"] = self.inputs.to_dict()
        values["calibration"] = None if self.calibration is None else self.calibration.to_dict()
        return {"spec_version": EXPORT_SPEC_VERSION, **values}

    @classmethod
    def from_dict(cls, data: Any, document: str = DOCUMENT) -> "ExportSpec":
        """Parse and check an export document; :class:`SpecError` names the first field in the way."""
        _version(data, "spec_version", EXPORT_SPEC_VERSION, document, " (re-run 'elvmass export RUN_DIR')")
        d = _keys(data, cls.FIELDS, document, "")
        files = _object(d["model_files"], document, "model_files")
        if set(files) not in ({"combined"}, {"male", "female"}):
            raise SpecError(document, "model_files", f"must map 'combined' or 'male' + 'female', not {sorted(files)}")
        for variant, name in files.items():
            _text(name, document, f"model_files.{variant}")
        opset, seed = d["opset"], d["seed"]
        for key, value in (("opset", opset), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpecError(document, key, f"must be an integer, not {value!r}")
        metrics = _keys(d["metrics"], ("cv_summary", "n_folds"), document, "metrics")
        summary = _object(metrics["cv_summary"], document, "metrics.cv_summary")  # the quantizer reads its mean MAE
        _number(_object(summary.get("mae_g"), document, "metrics.cv_summary.mae_g").get("mean"), document,
                "metrics.cv_summary.mae_g.mean")
        texts = {key: _text(d[key], document, key) for key in (
            "model_id", "final_model", "labels", "data_hash", "code_version_train", "code_version_export")}
        return cls(model_files=files, model_config=_object(d["model_config"], document, "model_config"), opset=opset,
                   inputs=InputSpec.from_dict(d["inputs"], document), imputation=_imputation(d["imputation"], document),
                   preprocessing=_preprocessing(d["preprocessing"], document),
                   lvh_thresholds_g_m2=_thresholds(d["lvh_thresholds_g_m2"], document),
                   training_data=_training_data(d["training_data"], document), seed=seed,
                   metrics=metrics, calibration=IntervalCalibration.from_dict(d["calibration"], document),
                   parity=_object(d["parity"], document, "parity"), **texts)


@dataclass(frozen=True)
class ModelEntry:
    """One model artifact of a bundle. ``input_names`` maps the contract's input names to the artifact's own
    tensor names (TFLite converters rename them); ``output_name`` likewise."""

    file: str
    format: str
    precision: str
    variant: str
    input_names: dict[str, str]
    output_name: str
    size_bytes: int
    notes: str = ""

    FIELDS = ("file", "format", "precision", "variant", "input_names", "output_name", "size_bytes", "notes")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, data: Any, document: str, where: str) -> "ModelEntry":
        d = _keys(data, cls.FIELDS, document, where)
        for key, allowed in (("format", MODEL_FORMATS), ("precision", PRECISIONS), ("variant", VARIANTS)):
            if d[key] not in allowed:
                raise SpecError(document, f"{where}.{key}", f"is {d[key]!r}, not one of {', '.join(allowed)}")
        names = _object(d["input_names"], document, f"{where}.input_names")
        if set(names) != set(INPUT_NAMES):
            raise SpecError(document, f"{where}.input_names", f"must map {', '.join(INPUT_NAMES)}, not {sorted(names)}")
        size = d["size_bytes"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise SpecError(document, f"{where}.size_bytes", f"must be a non-negative integer, not {size!r}")
        return cls(_text(d["file"], document, f"{where}.file"), d["format"], d["precision"], d["variant"],
                   {k: _text(v, document, f"{where}.input_names.{k}") for k, v in names.items()},
                   _text(d["output_name"], document, f"{where}.output_name"), size,
                   _text(d["notes"], document, f"{where}.notes"))


@dataclass(frozen=True)
class BundleManifest:
    """``manifest.json`` of a model bundle (schema version 2): what the device needs to reproduce the
    training-time inputs, the artifacts with their SHA-256, and provenance.

    ``training_ranges`` (``{"age_years": (low, high), ...}``, may be empty) marks patients outside them;
    ``export`` is the :class:`ExportSpec` the bundle was built from (``None`` for a bundle not built from a
    training run, e.g. a hand-made test model); ``metrics`` and ``verification`` are tables for people.
    """

    model_id: str
    created_utc: str
    code_version: str
    training_data: str
    preprocessing: dict[str, Any]
    inputs: InputSpec
    imputation: dict[str, float]
    lvh_thresholds_g_m2: dict[str, float]
    metrics: dict[str, Any]
    verification: dict[str, Any]
    models: tuple[ModelEntry, ...]
    files: dict[str, str]
    calibration: IntervalCalibration | None = None
    training_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    export: ExportSpec | None = None

    DOCUMENT = "manifest.json"
    FIELDS = ("schema_version", "model_id", "created_utc", "code_version", "training_data", "preprocessing",
              "inputs", "imputation", "lvh_thresholds_g_m2", "output", "metrics", "verification", "models", "files",
              "calibration", "training_ranges", "export")

    @property
    def beat_length(self) -> int:
        return self.inputs.beat_length

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": MANIFEST_SCHEMA_VERSION, "model_id": self.model_id, "created_utc": self.created_utc,
            "code_version": self.code_version, "training_data": self.training_data,
            "preprocessing": dict(self.preprocessing), "inputs": self.inputs.to_dict(),
            "imputation": dict(self.imputation), "lvh_thresholds_g_m2": dict(self.lvh_thresholds_g_m2),
            "output": dict(OUTPUT), "metrics": dict(self.metrics), "verification": dict(self.verification),
            "models": [model.to_dict() for model in self.models], "files": dict(self.files),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "training_ranges": {name: list(bounds) for name, bounds in self.training_ranges.items()},
            "export": None if self.export is None else self.export.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, document: str = DOCUMENT) -> "BundleManifest":
        """Parse and check a manifest; :class:`SpecError` names the first field in the way."""
        _version(data, "schema_version", MANIFEST_SCHEMA_VERSION, document,
                 " (upgrade it with 'python -m quantization.upgrade_manifest BUNDLE_DIR')")
        d = _keys(data, cls.FIELDS, document, "")
        _same(d["output"], OUTPUT, document, "output")
        if not isinstance(d["models"], list) or not d["models"]:
            raise SpecError(document, "models", "must be a non-empty list")
        models = tuple(ModelEntry.from_dict(entry, document, f"models[{i}]") for i, entry in enumerate(d["models"]))
        files = _object(d["files"], document, "files")
        if not files:
            raise SpecError(document, "files", "must map each file name to its SHA-256")
        for name, digest in files.items():
            _text(digest, document, f"files.{name}")
        for i, model in enumerate(models):
            if model.file not in files:
                raise SpecError(document, f"models[{i}].file", f"{model.file} has no SHA-256 in 'files'")
        ranges = {}
        for name, bounds in _object(d["training_ranges"], document, "training_ranges").items():
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise SpecError(document, f"training_ranges.{name}", f"must be [low, high], not {bounds!r}")
            ranges[name] = (_number(bounds[0], document, f"training_ranges.{name}[0]"),
                            _number(bounds[1], document, f"training_ranges.{name}[1]"))
        export = None if d["export"] is None else ExportSpec.from_dict(d["export"], f"{document} (export)")
        manifest = cls(
            model_id=_text(d["model_id"], document, "model_id"), created_utc=_text(d["created_utc"], document, "created_utc"),
            code_version=_text(d["code_version"], document, "code_version"),
            training_data=_training_data(d["training_data"], document),
            preprocessing=_preprocessing(d["preprocessing"], document), inputs=InputSpec.from_dict(d["inputs"], document),
            imputation=_imputation(d["imputation"], document),
            lvh_thresholds_g_m2=_thresholds(d["lvh_thresholds_g_m2"], document),
            metrics=_object(d["metrics"], document, "metrics"),
            verification=_object(d["verification"], document, "verification"), models=models, files=files,
            calibration=IntervalCalibration.from_dict(d["calibration"], document), training_ranges=ranges, export=export)
        if export is not None:  # the device reads the top level; it must say what the export says
            for name in ("model_id", "preprocessing", "inputs", "imputation", "lvh_thresholds_g_m2", "calibration"):
                if getattr(manifest, name) != getattr(export, name):
                    raise SpecError(document, name, f"differs from the export the bundle was built from "
                                                    f"({getattr(manifest, name)!r} != {getattr(export, name)!r})")
        return manifest
