"""Read what ``elvmass export RUN_DIR`` left: ``export.json`` (an ``ExportSpec``), the fp32 ONNX file(s), the torch model(s).

``export.json`` is parsed by :meth:`edge_runtime.bundle_spec.ExportSpec.from_dict`: an unknown or
missing key, another spec version or inputs ordered otherwise than the contract are refused with
the field named. Nothing is guessed from alternative key names or from the run's ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_runtime.bundle_spec import ExportSpec, SpecError


class RunExportError(ValueError):
    """The run directory lacks something the quantizer needs; the message says what."""


@dataclass
class RunExport:
    """An exported run: its directory, its export document and the fp32 ONNX file of each variant."""

    run_dir: Path
    spec: ExportSpec
    onnx_files: dict[str, Path]  # variant -> fp32 ONNX

    @property
    def labels_path(self) -> Path:
        """The training label table (``labels``; relative paths are taken from the run directory)."""
        path = Path(self.spec.labels)
        return path if path.is_absolute() or not (self.run_dir / path).exists() else self.run_dir / path

    def torch_model(self, variant: str):
        """The trained torch module of a variant (eval mode), from ``RUN_DIR/model.pt`` via ``training.export``."""
        try:
            from training.export import load_models
        except ImportError as error:
            raise RunExportError(f"cannot import training.export ({error}); install the train extra") from None
        path = self.run_dir / "model.pt"
        if not path.is_file():
            raise RunExportError(f"{path} not found (the torch weights are needed for parity and TFLite)")
        models, _ = load_models(path)
        if variant not in models:
            raise RunExportError(f"{path} has no {variant!r} model (has {sorted(models)})")
        return models[variant].eval()


def read_run_export(run_dir: Path | str) -> RunExport:
    """Parse ``RUN_DIR/export.json`` and find the fp32 ONNX files; :class:`RunExportError` naming what is wrong."""
    run_dir = Path(run_dir)
    path = run_dir / "export.json"
    if not path.is_file():
        raise RunExportError(f"{path} not found: run 'elvmass export {run_dir}' first")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunExportError(f"{path} is not valid JSON ({error})") from None
    try:
        spec = ExportSpec.from_dict(document, str(path))
    except SpecError as error:
        raise RunExportError(str(error)) from None
    files = {variant: run_dir / name for variant, name in spec.model_files.items()}
    absent = [str(p) for p in files.values() if not p.is_file()]
    if absent:
        raise RunExportError(f"no fp32 ONNX model at {', '.join(absent)} (named by {path} model_files)")
    return RunExport(run_dir, spec, files)
