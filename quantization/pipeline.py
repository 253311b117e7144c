"""Run export -> fp32/INT8 ONNX and TFLite -> verified bundle, with the verification table.

One function, :func:`quantize_run`, does what ``elvmass quantize RUN_DIR --out BUNDLE`` does.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.contract import INPUT_NAMES, OUTPUT_NAME, SEX_CODES, SEX_COLUMN, impute
from edge_runtime.model_bundle import BundleError, ModelBundle, ModelFile
from quantization import onnx_int8, verify
from quantization.bundle import BundleModel, write_bundle
from quantization.calibration_data import ModelInputs, default_real_records, lvm_range_rows, real_record_inputs
from quantization.run_export import RunExport, RunExportError

LATENCY_BEATS = 64


@dataclass
class QuantizeResult:
    bundle: ModelBundle
    table: str
    verification: dict[str, Any]
    passed: bool
    notes: list[str] = field(default_factory=list)


def evaluation_and_calibration(run: RunExport, imputation: dict[str, float], n_calibration_rows: int,
                               shared_data: Path | None, notes: list[str], labels: Path | None = None) -> tuple[ModelInputs, np.ndarray, ModelInputs]:
    """Held-out labelled rows (for INT8 vs fp32) and calibration rows (real beats + training beats).

    ``labels`` overrides the run's label table. Held-out rows are the paper's fold 0 (sorted by LVM,
    every fifth): the exported final model trained on every usable subject (there is no holdout), so
    it may have seen them, and the notes say so. Calibration never uses held-out rows.
    """
    from training.dataset import build_dataset
    from training.folds import paper_folds

    labels = labels or run.labels_path
    if not Path(labels).is_file():
        raise RunExportError(f"the label table {labels} (export.json 'labels') is not readable")
    dataset = build_dataset(labels, progress=False)
    held = paper_folds(dataset.lvm_g) == 0
    notes.append(f"held-out rows: fold 0 of the paper's 5 folds ({held.sum()} subjects); export.json lists no "
                 "holdout, so the final model may have seen them: the INT8-vs-fp32 change is still measured on "
                 "rows never used for calibration")
    demo, params = impute(dataset.demographics, dataset.parameters, imputation)
    known_sex = ~np.isnan(demo[:, SEX_COLUMN])
    rows = ModelInputs(dataset.beats.astype(np.float32), demo, params, [str(s) for s in dataset.subject_ids])
    evaluation_index = np.flatnonzero(held & known_sex)
    train_index = np.flatnonzero(~held & known_sex)
    calib_train = rows.rows(train_index[lvm_range_rows(dataset.lvm_g[train_index], n_calibration_rows)])
    real, skipped = real_record_inputs(default_real_records(shared_data), imputation)
    notes.append(f"calibration: {len(calib_train)} training beats at LVM quantiles "
                 f"({dataset.lvm_g[train_index].min():.0f}-{dataset.lvm_g[train_index].max():.0f} g) + {len(real)} real "
                 f"beats from {len({s for s in real.sources})} records ({len(skipped)} records refused by the signal core)")
    return rows.rows(evaluation_index), dataset.lvm_g[evaluation_index], ModelInputs.concat([calib_train, real])


def _onnx_predict(path: Path, inputs: ModelInputs) -> np.ndarray:
    from edge_runtime.inference import OnnxRuntimeBackend

    model = ModelFile(path, "onnx", "fp32", "combined", {k: k for k in INPUT_NAMES}, OUTPUT_NAME)
    return OnnxRuntimeBackend(model).run(inputs.beats, inputs.demographics, inputs.parameters)


def _tflite_predict(path: Path, input_names: dict[str, str], output_name: str, inputs: ModelInputs) -> np.ndarray:
    from edge_runtime.inference import LiteRTBackend

    model = ModelFile(path, "tflite", "fp32", "combined", input_names, output_name)
    return LiteRTBackend(model).run(inputs.beats, inputs.demographics, inputs.parameters)


def _torch_predict(module, inputs: ModelInputs) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = module(torch.from_numpy(inputs.beats), torch.from_numpy(inputs.demographics), torch.from_numpy(inputs.parameters))
    return out.numpy().reshape(-1)


def _tflite_available() -> bool:
    try:
        import ai_edge_quantizer  # noqa: F401
        import litert_torch  # noqa: F401
    except ImportError:
        return False
    return True


def quantize_run(run: RunExport, out_dir: Path, *, shared_data: Path | None = None, n_calibration_rows: int = 256,
                 labels: Path | None = None,
                 tflite: bool | None = None, overwrite: bool = False, log=print) -> QuantizeResult:
    """Build the verified bundle of one exported run.

    Parameters
    ----------
    run
        The exported run (``read_run_export``).
    out_dir
        The bundle directory to write.
    shared_data
        ``../shared/data`` for real calibration records (CinC 2021, PTB); ``None`` = bundled records only.
    n_calibration_rows
        Training beats taken at evenly spaced LV-mass quantiles.
    tflite
        Build TFLite artifacts (``None``: when litert-torch and ai-edge-quantizer are installed).
    """
    notes: list[str] = []
    spec = run.spec
    imputation, thresholds = spec.imputation, spec.lvh_thresholds_g_m2
    evaluation, lvm_true, calibration = evaluation_and_calibration(run, imputation, n_calibration_rows, shared_data, notes, labels)
    for line in notes:
        log(line)
    tflite = _tflite_available() if tflite is None else tflite
    if not tflite:
        notes.append("TFLite skipped: litert-torch / ai-edge-quantizer not installed (pip install 'elvmass[quant]')")
        log(notes[-1])
    parity, scores, sizes, models, fp32_onnx_bytes = {}, [], {}, [], {}
    explored: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        for variant, source in run.onnx_files.items():
            rows = _variant_rows(variant, evaluation)
            lvm_rows = lvm_true[_variant_mask(variant, evaluation)]
            torch_model = run.torch_model(variant)
            reference = _torch_predict(torch_model, rows)
            fp32_onnx_bytes[variant] = source.stat().st_size
            # fp32 ONNX as shipped: the export (BatchNorm already folded) with names compacted (parity checked below).
            fp32 = scratch / f"{variant}_fp32.onnx"
            shutil.copyfile(source, fp32)
            onnx_int8.compact_names(fp32)
            fp32_pred = _onnx_predict(fp32, rows)
            parity[f"{variant} fp32 onnx"] = verify.max_abs_diff(reference, fp32_pred)
            models.append(BundleModel(fp32, fp32.name, "onnx", "fp32", variant))
            # Measured configurations, in order of preference: s8 activations (ARM's fast path) with the
            # float head first. The first that meets every threshold ships; if none does, the first.
            candidates = []
            for act, keep in (("s8", True), ("s8", False), ("u8", True)):
                path = scratch / f"{variant}_int8_{act}{'_headfp32' if keep else ''}.onnx"
                onnx_int8.quantize_onnx_int8(source, path, calibration.as_feeds() if variant == "combined" else
                                             _variant_rows(variant, calibration).as_feeds(), act, keep)
                onnx_int8.compact_names(path)
                score = verify.score_int8(path.name, lvm_rows, fp32_pred, _onnx_predict(path, rows), rows.demographics, thresholds)
                explored[path.name] = {**score.to_dict(), "size_bytes": path.stat().st_size}
                candidates.append((path, score, f"activations {act}, last layer {'fp32' if keep else 'int8'}"))
            shipped, score, how = next((c for c in candidates if c[1].passed), candidates[0])
            final = scratch / f"{variant}_int8.onnx"
            shutil.copyfile(shipped, final)
            score.artifact = final.name
            scores.append(score)
            notes.append(f"{final.name}: shipped {shipped.name}")
            models.append(BundleModel(final, final.name, "onnx", "int8", variant,
                                      notes=f"onnxruntime static QDQ, per-channel s8 weights, {how}"))
            if tflite:
                from quantization import tflite as tfl

                fp32_tfl = scratch / f"{variant}_fp32.tflite"
                names = tfl.convert_fp32(torch_model, (rows.beats, rows.demographics, rows.parameters), fp32_tfl)
                output = tfl.tflite_output_name(fp32_tfl)
                fp32_tfl_pred = _tflite_predict(fp32_tfl, names, output, rows)
                parity[f"{variant} fp32 tflite"] = verify.max_abs_diff(reference, fp32_tfl_pred)
                models.append(BundleModel(fp32_tfl, fp32_tfl.name, "tflite", "fp32", variant, names, output))
                feeds = calibration.as_feeds() if variant == "combined" else _variant_rows(variant, calibration).as_feeds()
                candidates = []
                for bits in (8, 16):  # full INT8 first; 16x8 (int16 activations) if INT8 misses a threshold
                    path = scratch / f"{variant}_int8_a{bits}.tflite"
                    tfl.quantize_int8(fp32_tfl, path, feeds, activation_bits=bits)
                    io_names, io_output = tfl.tflite_input_names(path), tfl.tflite_output_name(path)
                    score = verify.score_int8(path.name, lvm_rows, fp32_tfl_pred,
                                              _tflite_predict(path, io_names, io_output, rows), rows.demographics, thresholds)
                    explored[path.name] = {**score.to_dict(), "size_bytes": path.stat().st_size}
                    candidates.append((path, score, bits, io_names, io_output))
                    if score.passed:
                        break
                path, score, bits, io_names, io_output = next((c for c in candidates if c[1].passed), candidates[0])
                int8_tfl = scratch / f"{variant}_int8.tflite"
                shutil.copyfile(path, int8_tfl)
                score.artifact = int8_tfl.name
                scores.append(score)
                notes.append(f"{int8_tfl.name}: shipped {path.name}")
                models.append(BundleModel(int8_tfl, int8_tfl.name, "tflite", "int8", variant, io_names, io_output,
                                          notes=f"litert-torch + ai-edge-quantizer, int8 weights, int{bits} activations and "
                                                f"inputs/outputs (min/max calibration)"))
        for model in models:
            sizes[model.file] = model.source.stat().st_size
        reference_bytes = fp32_onnx_bytes.get("combined", next(iter(fp32_onnx_bytes.values())))
        verification = {
            "thresholds": {"parity_max_g": verify.PARITY_MAX_G, "mae_change_max_g": verify.MAE_CHANGE_MAX_G,
                           "lvh_agreement_min": verify.LVH_AGREEMENT_MIN, "size_ratio_min": verify.SIZE_RATIO_MIN},
            "parity_max_abs_diff_g": parity,
            "int8_vs_fp32": [s.to_dict() for s in scores],
            "explored_onnx_int8": explored,
            "sizes_bytes": sizes,
            "fp32_onnx_as_exported_bytes": fp32_onnx_bytes,
            "notes": notes,
        }
        bundle = write_bundle(
            out_dir, models, model_id=spec.model_id, training_data=spec.training_data,
            preprocessing=spec.preprocessing, imputation=spec.imputation, beat_length=spec.inputs.beat_length,
            lvh_thresholds_g_m2=spec.lvh_thresholds_g_m2, calibration=spec.calibration, export=spec,
            metrics=_metrics(spec.metrics), verification=verification, overwrite=overwrite)
    latency = measure_latency(bundle, evaluation)
    verification["latency_ms_per_beat"] = latency
    table = verify.format_table(parity, scores, sizes, reference_bytes, latency, explored)
    passed = all(d < verify.PARITY_MAX_G for d in parity.values()) and all(s.passed for s in scores)
    return QuantizeResult(bundle, table, verification, passed, notes)


def measure_latency(bundle: ModelBundle, rows: ModelInputs) -> dict[str, float]:
    """Median per-beat latency of every backend/precision the bundle has and this machine can run."""
    from edge_runtime.inference import available_backends, load_predictor

    sample = rows.rows(np.arange(min(LATENCY_BEATS, len(rows))))
    latency = {}
    for backend in available_backends():
        for precision in ("fp32", "int8"):
            try:
                predictor = load_predictor(bundle, backend=backend, precision=precision)
            except (BundleError, ImportError):  # an absent artifact or runtime has no latency
                latency[f"{backend} {precision}"] = float("nan")
                continue
            latency[f"{backend} {precision}"] = predictor.time_per_beat_ms(sample.beats, sample.demographics, sample.parameters)
    return latency


def _metrics(metrics: dict) -> dict:
    """The export's metrics plus ``cv_mae_g``, the mean cross-validation MAE, at top level (the runtime's
    interval when the bundle has no conformal calibration)."""
    return {**metrics, "cv_mae_g": float(metrics["cv_summary"]["mae_g"]["mean"])}


def _variant_mask(variant: str, rows: ModelInputs) -> np.ndarray:
    sex = rows.demographics[:, SEX_COLUMN]
    return {"male": sex == SEX_CODES["M"], "female": sex == SEX_CODES["F"]}.get(variant, np.ones(len(rows), bool))


def _variant_rows(variant: str, rows: ModelInputs) -> ModelInputs:
    return rows.rows(np.flatnonzero(_variant_mask(variant, rows)))
