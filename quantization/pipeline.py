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

from edge_runtime.contract import DEMOGRAPHIC_COLUMN, INPUT_NAMES, OUTPUT_NAME, SEX_CODES, SEX_COLUMN, impute
from edge_runtime.model_bundle import BundleError, ModelBundle, ModelFile
from quantization import onnx_int8, verify
from quantization.bundle import BundleModel, write_bundle
from quantization.calibration_data import ModelInputs, default_real_records, input_extreme_rows, lvm_range_rows, real_record_inputs
from quantization.qat import QatConfig
from quantization.run_export import RunExport, RunExportError

# INT8 ONNX configurations, in order of preference: (format, activations, per-channel weights, float head).
# u8 QOperator per-tensor first: the smallest file and, measured on x86, the fastest (s8 QOperator kernels
# are slower than fp32 there), with the last layer float first (an int8 output has ~1 g steps over the
# LV-mass range); QDQ s8 per-channel with a float head (the earlier default) last.
ONNX_INT8_CONFIGS = (("qoperator", "u8", False, True), ("qoperator", "u8", False, False), ("qoperator", "u8", True, True),
                     ("qdq", "s8", True, True))
# TFLite INT8 plan: (activation bits, per-channel weights, tag, how). Per-tensor first (800 fewer scale and
# zero-point pairs in the file); the QAT weights only when post-training misses (qat="auto"); 16x8 last.
TFLITE_INT8_PLAN = ((8, False, "", "post-training"), (8, True, "", "post-training"),
                    (8, False, "_qat", "quantization-aware fine-tuned weights"), (16, True, "", "post-training"))
LATENCY_BEATS = 14  # one 10 s window of clean beats, predicted in one call


@dataclass
class QuantizeResult:
    bundle: ModelBundle
    table: str
    verification: dict[str, Any]
    passed: bool
    notes: list[str] = field(default_factory=list)


def evaluation_and_calibration(run: RunExport, imputation: dict[str, float], n_calibration_rows: int,
                               shared_data: Path | None, notes: list[str], labels: Path | None = None
                               ) -> tuple[ModelInputs, np.ndarray, ModelInputs, ModelInputs]:
    """Held-out labelled rows (for INT8 vs fp32), calibration rows (real beats + training beats) and training rows.

    Training rows are every clean beat of the non-held-out subjects (for quantization-aware
    fine-tuning); the held-out subjects never enter calibration or fine-tuning.

    ``labels`` overrides the run's label table. Held-out rows are the export's ``holdout`` subjects
    (``elvmass train --final-holdout``: the final model never saw them); without that list, the
    paper's fold 0 (sorted by LVM, every fifth), which the final model may have seen, and the notes
    say so. Calibration and fine-tuning never use held-out rows.
    """
    from training.dataset import build_dataset
    from training.folds import paper_folds

    labels = labels or run.labels_path
    if not Path(labels).is_file():
        raise RunExportError(f"the label table {labels} (export.json 'labels') is not readable")
    dataset = build_dataset(labels, progress=False)
    if run.spec.holdout:
        held = np.isin(dataset.subject_ids.astype(str), np.asarray(run.spec.holdout, dtype=str))
        notes.append(f"held-out rows: {held.sum()} subjects the exported final model never saw (export.json holdout)")
    else:
        held = paper_folds(dataset.lvm_g, groups=dataset.subject_ids) == 0  # whole patients
        notes.append(f"held-out rows: fold 0 of the paper's 5 folds ({held.sum()} subjects); export.json lists no "
                     "holdout, so the final model may have seen them: the INT8-vs-fp32 change is still measured on "
                     "rows never used for calibration (retrain with --final-holdout for rows it never saw)")
    demo, params = impute(dataset.demographics, dataset.parameters, imputation)
    known_sex = ~np.isnan(demo[:, SEX_COLUMN])
    rows = ModelInputs(dataset.beats.astype(np.float32), demo, params, [str(s) for s in dataset.subject_ids])
    evaluation_index = np.flatnonzero(held & known_sex)
    train_index = np.flatnonzero(~held & known_sex)
    picks = np.union1d(lvm_range_rows(dataset.lvm_g[train_index], n_calibration_rows),
                       input_extreme_rows(demo[train_index], params[train_index]))  # span every input's range
    calib_train = rows.rows(train_index[picks])
    real, skipped = real_record_inputs(default_real_records(shared_data), imputation)
    notes.append(f"calibration: {len(calib_train)} training beats at LVM quantiles "
                 f"({dataset.lvm_g[train_index].min():.0f}-{dataset.lvm_g[train_index].max():.0f} g) + {len(real)} real "
                 f"beats from {len({s for s in real.sources})} records ({len(skipped)} records refused by the signal core)")
    if dataset.all_beats is not None and len(dataset.all_beats):
        owners = dataset.beat_owner[np.isin(dataset.beat_owner, train_index)]
        beats = dataset.all_beats[np.isin(dataset.beat_owner, train_index)].astype(np.float32)
        training = ModelInputs(beats, demo[owners], params[owners], [str(dataset.subject_ids[o]) for o in owners])
    else:
        training = rows.rows(train_index)
    return rows.rows(evaluation_index), dataset.lvm_g[evaluation_index], ModelInputs.concat([calib_train, real]), training


def training_ranges(training: ModelInputs) -> dict[str, tuple[float, float]]:
    """Age, height and weight ranges of the subjects the final model trained on (the manifest's
    ``training_ranges``): a patient outside them gets a number marked outside the studied population,
    since neither the model nor its INT8 scales have seen such a value."""
    ranges = {}
    for name in ("age_years", "height_cm", "weight_kg"):
        column = training.demographics[:, DEMOGRAPHIC_COLUMN[name]].astype(np.float64)
        if np.isfinite(column).any():
            # one decimal, rounded outwards so that no training subject falls outside
            ranges[name] = (float(np.floor(np.nanmin(column) * 10) / 10), float(np.ceil(np.nanmax(column) * 10) / 10))
    return ranges


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
                 tflite: bool | None = None, overwrite: bool = False, qat: str = "auto",
                 qat_config: QatConfig | None = None, log=print) -> QuantizeResult:
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
    qat
        ``"auto"``: quantization-aware fine-tuning (:mod:`quantization.qat`) only when no
        post-training configuration of a format passes; ``"always"``: measure it too; ``"never"``.
    """
    if qat not in ("auto", "always", "never"):
        raise ValueError("qat must be 'auto', 'always' or 'never'")
    notes: list[str] = []
    spec = run.spec
    imputation, thresholds = spec.imputation, spec.lvh_thresholds_g_m2
    evaluation, lvm_true, calibration, training = evaluation_and_calibration(run, imputation, n_calibration_rows,
                                                                             shared_data, notes, labels)
    ranges = training_ranges(training)
    notes.append("training ranges (outside them the device flags outside_training_range): " +
                 ", ".join(f"{name} {low:g}-{high:g}" for name, (low, high) in ranges.items()))
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
            feeds = calibration.as_feeds() if variant == "combined" else _variant_rows(variant, calibration).as_feeds()
            qat_source = _LazyQat(torch_model, _variant_rows(variant, training), feeds, scratch / f"{variant}_qat.onnx",
                                  int(rows.beats.shape[-1]), qat_config or QatConfig(), log)
            # fp32 ONNX as shipped: the export (BatchNorm already folded), the causal chomp folded into the
            # Conv pads, names compacted (parity checked below).
            fp32 = scratch / f"{variant}_fp32.onnx"
            shutil.copyfile(source, fp32)
            onnx_int8.fold_chomp(fp32)
            onnx_int8.compact_names(fp32)
            fp32_pred = _onnx_predict(fp32, rows)
            parity[f"{variant} fp32 onnx"] = verify.max_abs_diff(reference, fp32_pred)
            models.append(BundleModel(fp32, fp32.name, "onnx", "fp32", variant))

            # Measured configurations, in order of preference: s8 activations (ARM's fast path) with the
            # float head first; post-training first, then the same on the QAT weights. Every INT8 file is
            # scored against the shipped fp32 model. The first that meets every threshold ships; if none does, the first.
            def onnx_candidates(src: Path, tag: str, how: str) -> list:
                found = []
                for fmt, act, per_channel, keep in ONNX_INT8_CONFIGS:
                    path = scratch / (f"{variant}_int8{tag}_{fmt}_{act}_{'pc' if per_channel else 'pt'}"
                                      f"{'_headfp32' if keep else ''}.onnx")
                    onnx_int8.quantize_onnx_int8(src, path, feeds, act, keep, per_channel, fmt)
                    onnx_int8.compact_names(path)
                    score = verify.score_int8(path.name, lvm_rows, fp32_pred, _onnx_predict(path, rows), rows.demographics, thresholds)
                    explored[path.name] = {**score.to_dict(), "size_bytes": path.stat().st_size}
                    found.append((path, score, f"{how}, {fmt}, activations {act}, "
                                               f"{'per-channel' if per_channel else 'per-tensor'} weights, "
                                               f"last layer {'fp32' if keep else 'int8'}"))
                return found

            candidates = onnx_candidates(source, "", "post-training")
            if qat == "always" or (qat == "auto" and not any(c[1].passed for c in candidates)):
                candidates += onnx_candidates(qat_source.onnx(), "_qat", "quantization-aware fine-tuned weights")
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
                from quantization.tflite_strip import strip_tflite_file

                # The converted file (tensor names and signature: what ai-edge-quantizer reads) is the base of
                # every INT8 candidate; the stripped copy ships and is verified (tflite_strip: same outputs).
                converted = scratch / f"{variant}_fp32_converted.tflite"
                names = tfl.convert_fp32(torch_model, (rows.beats, rows.demographics, rows.parameters), converted)
                fp32_tfl = strip_tflite_file(converted, scratch / f"{variant}_fp32.tflite")
                output = tfl.tflite_output_name(fp32_tfl)
                fp32_tfl_pred = _tflite_predict(fp32_tfl, names, output, rows)
                parity[f"{variant} fp32 tflite"] = verify.max_abs_diff(reference, fp32_tfl_pred)
                models.append(BundleModel(fp32_tfl, fp32_tfl.name, "tflite", "fp32", variant, names, output,
                                          notes=f"fixed batch {tfl.graph_batch(fp32_tfl)} rows per invoke (padded)"))
                # Full INT8 post-training, then full INT8 on the QAT weights, then 16x8 (int16 activations).
                candidates = []
                for bits, per_channel, tag, how in TFLITE_INT8_PLAN:
                    if tag == "_qat" and (qat == "never" or (qat == "auto" and any(c[1].passed for c in candidates))):
                        continue
                    if bits == 16 and any(c[1].passed for c in candidates):
                        break
                    base = converted
                    if tag == "_qat":
                        base = scratch / f"{variant}_fp32_qat.tflite"
                        if not base.exists():
                            tfl.convert_fp32(qat_source.module(), (rows.beats, rows.demographics, rows.parameters), base)
                    path = scratch / f"{variant}_int8{tag}_a{bits}_{'pc' if per_channel else 'pt'}.tflite"
                    # int8: float32 interface (input normalization and the regression layer float, see tflite.py)
                    tfl.quantize_int8(base, path, feeds, activation_bits=bits, per_channel=per_channel,
                                      float_head=bits == 8, float_inputs=bits == 8)
                    strip_tflite_file(path)  # what ships is what is scored
                    io_names, io_output = tfl.tflite_input_names(path), tfl.tflite_output_name(path)
                    score = verify.score_int8(path.name, lvm_rows, fp32_tfl_pred,
                                              _tflite_predict(path, io_names, io_output, rows), rows.demographics, thresholds)
                    explored[path.name] = {**score.to_dict(), "size_bytes": path.stat().st_size}
                    candidates.append((path, score, bits, io_names, io_output,
                                       f"{how}, {'per-channel' if per_channel else 'per-tensor'} weights"))
                path, score, bits, io_names, io_output, how = next((c for c in candidates if c[1].passed), candidates[0])
                int8_tfl = scratch / f"{variant}_int8.tflite"
                shutil.copyfile(path, int8_tfl)
                score.artifact = int8_tfl.name
                scores.append(score)
                notes.append(f"{int8_tfl.name}: shipped {path.name}")
                models.append(BundleModel(int8_tfl, int8_tfl.name, "tflite", "int8", variant, io_names, io_output,
                                          notes=f"litert-torch + ai-edge-quantizer, {how}, int8 weights, int{bits} activations"
                                                + (", float32 inputs/output (normalization and last layer float)" if bits == 8
                                                   else " and inputs/outputs") + " (min/max calibration), fixed batch "
                                                f"{tfl.graph_batch(int8_tfl)} rows per invoke (padded)"))
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
            lvh_thresholds_g_m2=spec.lvh_thresholds_g_m2, calibration=spec.calibration, training_ranges=ranges, export=spec,
            metrics=_metrics(spec.metrics), verification=verification, overwrite=overwrite)
    latency = measure_latency(bundle, evaluation)
    verification["latency_ms_per_beat"] = latency
    table = verify.format_table(parity, scores, sizes, reference_bytes, latency, explored)
    passed = all(d < verify.PARITY_MAX_G for d in parity.values()) and all(s.passed for s in scores)
    return QuantizeResult(bundle, table, verification, passed, notes)


class _LazyQat:
    """The quantization-aware fine-tuned model of one variant, trained on first use only (minutes on 2 cores)."""

    def __init__(self, model, training: ModelInputs, calibration: dict[str, np.ndarray], onnx_path: Path,
                 beat_length: int, config: QatConfig, log) -> None:
        self._args = (model, training, calibration, onnx_path, beat_length, config, log)
        self._module = None

    def module(self):
        if self._module is None:
            from quantization.qat import qat_finetune

            model, training, calibration, _, _, config, log = self._args
            log(f"quantization-aware fine-tuning on {len(training)} training beats ({config.epochs} epochs)")
            self._module = qat_finetune(model, training.beats, training.demographics, training.parameters,
                                        (calibration["beat"], calibration["demographics"], calibration["parameters"]),
                                        config, log)
        return self._module

    def onnx(self) -> Path:
        from training.export import export_onnx

        path, beat_length = self._args[3], self._args[4]
        if not path.exists():
            export_onnx(self.module(), path, beat_length)
        return path


def measure_latency(bundle: ModelBundle, rows: ModelInputs) -> dict[str, float]:
    """Median latency of one window (``LATENCY_BEATS`` beats in one call), ms, per backend/precision here."""
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
            latency[f"{backend} {precision}"] = len(sample) * predictor.time_per_beat_ms(
                sample.beats, sample.demographics, sample.parameters, repeats=20)
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
