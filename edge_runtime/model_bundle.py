"""The model bundle the device loads: a directory with ``manifest.json`` and the model files.

The manifest (:class:`edge_runtime.bundle_spec.BundleManifest`, typed and versioned) carries
everything needed to reproduce training-time inputs (sampling rate, beat window, filter settings,
lead order, feature order, imputation constants, LVH thresholds, output units) plus provenance
(model id, training data, metrics, the export it was built from, creation time, code version) and
the SHA-256 of every file. :func:`load_bundle` refuses a bundle whose manifest breaks the
specification, whose hashes or whose preprocessing settings do not match this runtime, naming the
problem.

Only JSON is parsed here (no pickle): model files are opened later by ``edge_runtime.inference``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_runtime.assets import ASSETS_DIR
from edge_runtime.bundle_spec import BundleManifest, SpecError

MANIFEST_NAME = "manifest.json"
DEMO_BUNDLE_DIR = ASSETS_DIR / "model"


class BundleError(ValueError):
    """A model bundle cannot be used; the message names the bundle and the problem."""

    def __init__(self, bundle: Path | str, problem: str) -> None:
        self.bundle = str(bundle)
        self.problem = problem
        super().__init__(f"model bundle {bundle}: {problem}")


@dataclass(frozen=True)
class ModelFile:
    """One model artifact of a bundle.

    ``input_names`` maps the interface names (``beat``, ``demographics``, ``parameters``) to the
    artifact's own tensor names (TFLite converters rename inputs); ``output_name`` likewise.
    """

    path: Path
    format: str  # "onnx" | "tflite"
    precision: str  # "fp32" | "int8"
    variant: str  # "combined" | "male" | "female"
    input_names: dict[str, str]
    output_name: str


@dataclass(frozen=True)
class ModelBundle:
    """A verified bundle: its directory, its parsed manifest and its model files."""

    path: Path
    manifest: BundleManifest
    models: tuple[ModelFile, ...]

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.manifest.preprocessing)

    @property
    def imputation(self) -> dict[str, float]:
        """Training-data medians for unknown demographics and ECG parameters (never for sex)."""
        return dict(self.manifest.imputation)

    @property
    def lvh_thresholds_g_m2(self) -> dict[str, float]:
        """``{"M": 72.0, "F": 55.0}`` unless the bundle says otherwise."""
        return dict(self.manifest.lvh_thresholds_g_m2)

    @property
    def variants(self) -> tuple[str, ...]:
        return tuple(sorted({m.variant for m in self.models}))

    def select(self, format: str, precision: str, variant: str = "combined") -> ModelFile:
        """The artifact with this format, precision and variant; :class:`BundleError` if absent."""
        for model in self.models:
            if (model.format, model.precision, model.variant) == (format, precision, variant):
                return model
        have = ", ".join(f"{m.variant}/{m.format}/{m.precision}" for m in self.models)
        raise BundleError(self.path, f"no {variant}/{format}/{precision} model (bundle has: {have})")


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_preprocessing() -> dict[str, Any]:
    """This runtime's preprocessing settings (``PreprocessConfig()`` as a dict)."""
    from edge_runtime.preprocess import PreprocessConfig  # the signal core; imported when needed

    return PreprocessConfig().to_dict()


def preprocessing_mismatches(bundle_settings: Mapping[str, Any], runtime_settings: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between the bundle's and the runtime's preprocessing settings.

    Numbers are compared with a relative tolerance of 1e-9 (JSON round trips), everything else
    exactly. A key present on one side only is a mismatch. The mains notch is the clinic's
    setting (50 or 60 Hz): it may differ as long as both notches lie above both low-pass
    corners, where the beat the model sees has no content left.
    """
    problems = []
    for key in sorted(set(bundle_settings) | set(runtime_settings)):
        if key == "notch_hz" and _notch_outside_passband(bundle_settings, runtime_settings):
            continue
        if key not in bundle_settings:
            problems.append(f"{key}: missing in bundle (runtime uses {runtime_settings[key]!r})")
        elif key not in runtime_settings:
            problems.append(f"{key}: bundle sets {bundle_settings[key]!r}, unknown to this runtime")
        elif not _same_setting(bundle_settings[key], runtime_settings[key]):
            problems.append(f"{key}: bundle {bundle_settings[key]!r} != runtime {runtime_settings[key]!r}")
    return problems


def _notch_outside_passband(bundle_settings: Mapping[str, Any], runtime_settings: Mapping[str, Any]) -> bool:
    try:
        lowpass = max(float(bundle_settings["lowpass_hz"]), float(runtime_settings["lowpass_hz"]))
        notches = [bundle_settings["notch_hz"], runtime_settings["notch_hz"]]
        return all(n is not None and float(n) > lowpass for n in notches)
    except (KeyError, TypeError, ValueError):
        return False


def _same_setting(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_setting(x, y) for x, y in zip(a, b))
    return a == b


def read_manifest(bundle_dir: Path) -> BundleManifest:
    """Parse ``manifest.json`` (JSON only) into a :class:`BundleManifest`; :class:`BundleError` naming the
    field when it breaks the specification (version, missing or unknown keys, feature order, ...)."""
    manifest_path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise BundleError(bundle_dir, "not a directory")
    if not manifest_path.is_file():
        raise BundleError(bundle_dir, f"{MANIFEST_NAME} is missing")
    try:
        document = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(bundle_dir, f"{MANIFEST_NAME} is not valid JSON ({error})") from None
    try:
        return BundleManifest.from_dict(document)
    except SpecError as error:
        raise BundleError(bundle_dir, str(error)) from None


def verify_files(bundle_dir: Path, manifest: BundleManifest) -> None:
    """Every file listed exists with its SHA-256, and no unlisted file lies in the bundle."""
    files = manifest.files
    for name, expected in files.items():
        path = bundle_dir / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(bundle_dir, f"file name {name!r} points outside the bundle")
        if not path.is_file():
            raise BundleError(bundle_dir, f"{name} is listed in the manifest but missing")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(bundle_dir, f"{name} has SHA-256 {actual[:12]}..., manifest says {str(expected)[:12]}... (file changed or corrupt)")
    present = {p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file()}
    unlisted = sorted(present - set(files) - {MANIFEST_NAME})
    if unlisted:
        raise BundleError(bundle_dir, f"files not covered by the manifest's hashes: {', '.join(unlisted)}")


def load_bundle(path: Path | str | None = None, preprocessing: Mapping[str, Any] | None = None) -> ModelBundle:
    """Load and verify a model bundle.

    Parameters
    ----------
    path
        The bundle directory; ``None`` loads the demo bundle shipped in ``edge_runtime/assets/model``.
    preprocessing
        The settings this runtime will preprocess with; ``None`` means ``PreprocessConfig()``.

    Returns
    -------
    ModelBundle

    Raises
    ------
    BundleError
        Missing directory or manifest, malformed JSON, a manifest that breaks the specification
        (named field: version, missing or unknown key, feature order, ...), a missing or altered
        file (SHA-256), an unlisted file, or preprocessing settings that differ from the runtime's
        (each difference is named).
    """
    bundle_dir = Path(path) if path is not None else DEMO_BUNDLE_DIR
    manifest = read_manifest(bundle_dir)
    verify_files(bundle_dir, manifest)
    runtime_settings = dict(preprocessing) if preprocessing is not None else default_preprocessing()
    mismatches = preprocessing_mismatches(manifest.preprocessing, runtime_settings)
    if mismatches:
        raise BundleError(bundle_dir, "preprocessing settings differ from this runtime's: " + "; ".join(mismatches))
    models = tuple(ModelFile(bundle_dir / m.file, m.format, m.precision, m.variant, dict(m.input_names), m.output_name)
                   for m in manifest.models)
    return ModelBundle(path=bundle_dir, manifest=manifest, models=models)
