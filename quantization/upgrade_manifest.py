"""Upgrade a bundle's ``manifest.json`` from schema 1 to 2 without touching its model files.

Schema 1 kept the export it was built from as a free-form ``training`` dict (architecture as
``lead_grouping`` / ``features`` only) and had no ``training_ranges``. Schema 2 embeds a typed
``export`` (:class:`edge_runtime.bundle_spec.ExportSpec`, with the full ``model_config``) and an
explicit, here empty, ``training_ranges``. Every other field keeps its value, provenance included
(``created_utc``, ``code_version``); a note in ``verification.notes`` records the upgrade.

The architecture is checked, not assumed: the schema-1 export named only the lead grouping and the
feature set, so the other hyper-parameters are :class:`training.model.ModelConfig` defaults, and an
untrained network of that configuration, exported (BatchNorm folded) and compacted as the quantizer does, must
have exactly the weight tensor shapes of the bundle's fp32 ONNX file. Needs the train extra.

    python -m quantization.upgrade_manifest edge_runtime/assets/model
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge_runtime.bundle_spec import MANIFEST_SCHEMA_VERSION, BundleManifest, ExportSpec
from edge_runtime.model_bundle import MANIFEST_NAME, load_bundle

UPGRADE_NOTE = ("manifest upgraded from schema 1 to 2 by quantization/upgrade_manifest.py (typed export, empty "
                "training_ranges); model files unchanged")


def weight_shapes(onnx_path: Path) -> list[tuple[int, ...]]:
    """Sorted shapes of the graph's multi-element initializers (the weights; scalars and shape constants left out)."""
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    shapes = [tuple(init.dims) for init in graph.initializer]
    return sorted(shape for shape in shapes if len(shape) >= 2)


def architecture_of(legacy: dict[str, Any], beat_length: int, fp32_onnx: Path) -> dict[str, Any]:
    """``ModelConfig`` dict of a schema-1 export, verified against the bundle's fp32 ONNX weight shapes."""
    from quantization.onnx_int8 import compact_names
    from training.export import export_onnx
    from training.model import ModelConfig

    config = ModelConfig(grouping=legacy["lead_grouping"], features=legacy["features"])
    with tempfile.TemporaryDirectory() as scratch:
        rebuilt = Path(scratch) / "rebuilt.onnx"
        export_onnx(config.build().eval(), rebuilt, beat_length)  # BatchNorm folded, as every export
        compact_names(rebuilt)
        expected, actual = weight_shapes(rebuilt), weight_shapes(fp32_onnx)
    if expected != actual:
        raise ValueError(f"{fp32_onnx.name}: weight shapes differ from ModelConfig defaults with grouping "
                         f"{config.grouping!r}, features {config.features!r}: cannot name its architecture")
    return config.to_dict()


def upgrade_v1(bundle_dir: Path) -> dict[str, Any]:
    """The schema-2 manifest document of a schema-1 bundle (checked by ``BundleManifest.from_dict``)."""
    old = json.loads((bundle_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    if old.get("schema_version") != 1:
        raise ValueError(f"{bundle_dir / MANIFEST_NAME}: schema_version is {old.get('schema_version')!r}, not 1")
    legacy = old["training"]
    fp32 = next(m for m in old["models"] if m["format"] == "onnx" and m["precision"] == "fp32"
                and m["variant"] == "combined")
    export = {
        "spec_version": 1, "model_id": legacy["model_id"], "model_files": legacy["model_files"],
        "model_config": architecture_of(legacy, old["inputs"]["beat"]["length"], bundle_dir / fp32["file"]),
        "opset": legacy["opset"], "inputs": old["inputs"], "imputation": legacy["imputation"],
        "preprocessing": legacy["preprocessing"], "lvh_thresholds_g_m2": legacy["lvh_thresholds_g_m2"],
        "training_data": legacy["training_data"], "final_model": legacy["final_model"], "labels": legacy["labels"],
        "data_hash": legacy["data_hash"], "seed": legacy["seed"], "code_version_train": legacy["code_version_train"],
        "code_version_export": legacy["code_version_export"],
        "metrics": {k: v for k, v in old["metrics"].items() if k in ("cv_summary", "n_folds")},
        "calibration": old.get("calibration"), "parity": legacy["parity"],
    }
    ExportSpec.from_dict(export, "schema-1 'training' section")
    verification = dict(old["verification"])
    verification["notes"] = [*verification.get("notes", []), UPGRADE_NOTE]
    new = {key: value for key, value in old.items() if key != "training"}
    new.update(schema_version=MANIFEST_SCHEMA_VERSION, verification=verification, training_ranges={}, export=export)
    return BundleManifest.from_dict(new).to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m quantization.upgrade_manifest", description=__doc__.split("\n")[0])
    parser.add_argument("bundle", type=Path, help="bundle directory with a schema-1 manifest.json")
    args = parser.parse_args(argv)
    try:
        document = upgrade_v1(args.bundle)
    except (OSError, KeyError, ValueError) as error:
        print(f"upgrade_manifest: {error}", file=sys.stderr)
        return 2
    (args.bundle / MANIFEST_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    bundle = load_bundle(args.bundle, preprocessing=document["preprocessing"])
    print(f"{args.bundle / MANIFEST_NAME}: schema {MANIFEST_SCHEMA_VERSION}, model {bundle.model_id}, "
          f"{len(bundle.models)} model files verified unchanged (SHA-256)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
