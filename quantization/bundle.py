"""Write a model bundle: model files + ``manifest.json`` with the SHA-256 of every file.

The reader is ``edge_runtime.model_bundle.load_bundle``; this module only writes, then re-reads
what it wrote through that loader so a bundle that the device would refuse is never produced.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_runtime.bundle_spec import NOT_VALIDATED, BundleManifest, ExportSpec, InputSpec, IntervalCalibration, ModelEntry
from edge_runtime.contract import INPUT_NAMES, OUTPUT_NAME
from edge_runtime.model_bundle import MANIFEST_NAME, ModelBundle, load_bundle, sha256_file


@dataclass(frozen=True)
class BundleModel:
    """A model file to put in the bundle and how the runtime should feed it."""

    source: Path
    file: str  # name inside the bundle
    format: str  # "onnx" | "tflite"
    precision: str  # "fp32" | "int8"
    variant: str = "combined"
    input_names: dict[str, str] = field(default_factory=lambda: {k: k for k in INPUT_NAMES})
    output_name: str = OUTPUT_NAME
    notes: str = ""


def code_version(repo_dir: Path | None = None) -> str:
    """``elvmass <version>`` plus the git commit (``+dirty`` when the tree has changes), if known."""
    from elvmass import __version__

    repo_dir = repo_dir or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo_dir, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_dir,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return f"elvmass {__version__} (git {commit}{'+dirty' if dirty else ''})"
    except (OSError, subprocess.SubprocessError):
        return f"elvmass {__version__}"


def write_bundle(
    out_dir: Path,
    models: Sequence[BundleModel],
    *,
    model_id: str,
    training_data: str,
    preprocessing: Mapping[str, Any],
    imputation: Mapping[str, float],
    beat_length: int,
    lvh_thresholds_g_m2: Mapping[str, float] | None = None,
    calibration: IntervalCalibration | None = None,
    training_ranges: Mapping[str, tuple[float, float]] | None = None,
    export: ExportSpec | None = None,
    metrics: Mapping[str, Any] | None = None,
    verification: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> ModelBundle:
    """Copy ``models`` into ``out_dir``, write ``manifest.json`` and return the bundle as the device loads it.

    Parameters
    ----------
    out_dir
        The bundle directory; must be absent or empty unless ``overwrite`` (then it is replaced).
    models
        The artifacts, each with format/precision/variant and tensor names.
    model_id, training_data, preprocessing, imputation, beat_length, lvh_thresholds_g_m2, calibration, training_ranges
        The manifest's fields (:class:`edge_runtime.bundle_spec.BundleManifest`); ``training_data`` must
        say the model is not clinically validated, ``calibration`` is the conformal interval.
    export
        The export the models came from (``None`` for a model not trained here); its fields must agree.
    metrics, verification
        Tables for people (cross-validation metrics, the quantizer's verification).
    """
    if NOT_VALIDATED not in training_data:
        raise ValueError(f"training_data must state '{NOT_VALIDATED}': {training_data!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out_dir} exists and is not empty (use overwrite)")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, files = [], {}
    for model in models:
        if model.file in files:
            raise ValueError(f"two models named {model.file}")
        shutil.copyfile(model.source, out_dir / model.file)
        files[model.file] = sha256_file(out_dir / model.file)
        entries.append(ModelEntry(model.file, model.format, model.precision, model.variant, dict(model.input_names),
                                  model.output_name, (out_dir / model.file).stat().st_size, model.notes))
    manifest = BundleManifest(
        model_id=model_id, created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        code_version=code_version(), training_data=training_data, preprocessing=dict(preprocessing),
        inputs=InputSpec(beat_length), imputation={k: float(v) for k, v in imputation.items()},
        lvh_thresholds_g_m2={k: float(v) for k, v in (lvh_thresholds_g_m2 or {"M": 72.0, "F": 55.0}).items()},
        metrics=dict(metrics or {}), verification=dict(verification or {}), models=tuple(entries), files=files,
        calibration=calibration, training_ranges=dict(training_ranges or {}), export=export)
    document = manifest.to_dict()
    BundleManifest.from_dict(document)  # a manifest the device would refuse is never written
    (out_dir / MANIFEST_NAME).write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return load_bundle(out_dir, preprocessing=preprocessing)
