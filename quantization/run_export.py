"""Read what ``elvmass export RUN_DIR`` left: ``export.json``, the fp32 ONNX file(s), the torch model(s).

``export.json`` keys used (alternatives in brackets, first found wins): ``model_id``,
``training_data`` [``cohort``], ``preprocessing`` [``preprocess``], ``imputation`` [``medians``],
``metrics``, ``labels`` [``labels_path``, ``cohort_labels``], ``models`` (variant -> ONNX file;
default: ``model.onnx`` = combined, ``model_male.onnx`` / ``model_female.onnx``), ``holdout``
[``holdout_subjects``] (subject ids the exported model never trained on), plus anything else,
which is copied into the manifest under ``training``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANT_FILES = {"combined": "model.onnx", "male": "model_male.onnx", "female": "model_female.onnx"}


class RunExportError(ValueError):
    """The run directory lacks something the quantizer needs; the message says what."""


@dataclass
class RunExport:
    run_dir: Path
    info: dict[str, Any]
    onnx_files: dict[str, Path]  # variant -> fp32 ONNX

    def get(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            if key in self.info:
                return self.info[key]
        return default

    def require(self, *keys: str) -> Any:
        value = self.get(*keys)
        if value is None:
            raise RunExportError(f"{self.run_dir / 'export.json'} lacks {' / '.join(keys)}")
        return value

    @property
    def run_config(self) -> dict[str, Any]:
        """``RUN_DIR/config.json`` written by ``elvmass train`` (empty if absent)."""
        path = self.run_dir / "config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def labels_path(self) -> Path | None:
        """The training label table: export.json ``labels``, else the run config's ``*labels*`` entry."""
        value = self.get("labels", "labels_path", "cohort_labels")
        if value is None:
            value = _find_labels(self.run_config)
        if value is None:
            return None
        path = Path(value)
        return path if path.is_absolute() or not (self.run_dir / path).exists() else self.run_dir / path

    @property
    def model_id(self) -> str:
        explicit = self.get("model_id")
        if explicit:
            return str(explicit)
        parts = ["elvmass", str(self.get("lead_grouping", default="model")), str(self.get("features", default="")),
                 str(self.get("data_hash", default=""))[:8]]
        return "-".join(p.replace("+", "_") for p in parts if p)

    @property
    def training_description(self) -> str:
        """One line on the training data, always ending 'not clinically validated'."""
        data = self.get("training_data", "cohort", default="unknown data")
        if isinstance(data, dict):
            kind = data.get("description") or data.get("kind") or data.get("source") or "synthetic cohort"
            bits = [str(kind)]
            if "seed" in data:
                bits.append(f"seed {data['seed']}")
            if "n" in data or "n_subjects" in data:
                bits.append(f"n = {data.get('n', data.get('n_subjects'))}")
            text = ", ".join(bits)
        else:
            text = str(data)
        return text if "not clinically validated" in text else f"{text}; not clinically validated"

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


def _find_labels(config: Any) -> str | None:
    """The first string value under a key containing 'labels' that names a .csv file (depth-first)."""
    if isinstance(config, dict):
        for key, value in config.items():
            if "label" in str(key) and isinstance(value, str) and value.endswith(".csv"):
                return value
        for value in config.values():
            found = _find_labels(value)
            if found:
                return found
    return None


def read_run_export(run_dir: Path | str) -> RunExport:
    """Parse ``RUN_DIR/export.json`` and find the fp32 ONNX files; :class:`RunExportError` if absent."""
    run_dir = Path(run_dir)
    path = run_dir / "export.json"
    if not path.is_file():
        raise RunExportError(f"{path} not found: run 'elvmass export {run_dir}' first")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunExportError(f"{path} is not valid JSON ({error})") from None
    models = next((info[k] for k in ("model_files", "models") if isinstance(info.get(k), dict)), None)
    files = {}
    for variant, default in VARIANT_FILES.items():
        entry = models.get(variant) if models else default
        if isinstance(entry, dict):
            entry = entry.get("onnx") or entry.get("file") or entry.get("path")
        if entry and (run_dir / entry).is_file():
            files[variant] = run_dir / entry
    if not files:
        raise RunExportError(f"no fp32 ONNX model in {run_dir} (looked for {', '.join(VARIANT_FILES.values())})")
    return RunExport(run_dir, info, files)
