"""Trained run -> ONNX model file(s) + ``export.json`` (an :class:`edge_runtime.bundle_spec.ExportSpec`).

Graph contract (:mod:`edge_runtime.contract`): inputs ``beat`` (batch, 12, L) float32 mV,
``demographics`` (batch, 4), ``parameters`` (batch, 4), all raw units; output ``lvm_g`` (batch, 1).
Normalization is baked into the graph; imputation medians go to ``export.json``. BatchNorm is
folded into the convolutions before export (``training.model.fold_batchnorm``, the only fold; the
parity check below covers it). Opset 17, batch dimension dynamic, beat length fixed.
"""

from __future__ import annotations

import csv
import json
import subprocess
import warnings
from pathlib import Path

import numpy as np

from edge_runtime.bundle_spec import ExportSpec, InputSpec, IntervalCalibration
from edge_runtime.contract import (
    INPUT_NAMES,
    OUTPUT_NAME,
    SEX_COLUMN,
    demographics_row,
    impute,
    model_inputs,
    parameters_row,
)
from training.model import ElvMassEnsemble, ElvMassNet, ModelConfig, fold_batchnorm

OPSET = 17
PARITY_TOLERANCE_G = 1e-3


def code_version() -> str:
    """``git describe --always --dirty`` of this checkout, or ``unknown`` outside git."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_models(path: Path, models: dict, medians: dict[str, float]) -> None:
    """Write ``model.pt``: per variant its ModelConfig and state dict, plus the imputation medians."""
    import torch

    payload = {"variants": {name: {"config": model.config.to_dict(), "state_dict": model.state_dict(),
                                   "members": len(model.members) if isinstance(model, ElvMassEnsemble) else 1}
                            for name, model in models.items()}, "medians": medians}
    torch.save(payload, path)


def load_models(path: Path) -> tuple[dict, dict[str, float]]:
    """Inverse of :func:`save_models`: ``({variant: ElvMassNet in eval mode}, medians)``."""
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=True)
    models = {}
    for name, entry in payload["variants"].items():
        config = ModelConfig(**entry["config"])
        members = int(entry.get("members", 1))  # model.pt files before ensembles hold one network
        model = ElvMassNet(config) if members == 1 else ElvMassEnsemble([ElvMassNet(config) for _ in range(members)])
        model.load_state_dict(entry["state_dict"])
        models[name] = model.eval()
    return models, dict(payload["medians"])


def export_onnx(model, path: Path, beat_length: int) -> Path:
    """Export one model (eval mode) to ONNX with a dynamic batch dimension."""
    import torch

    model = fold_batchnorm(model)
    example = (torch.zeros(2, 12, beat_length), torch.tensor([[60.0, 1.0, 170.0, 75.0]] * 2),
               torch.tensor([[95.0, 50.0, 30.0, 40.0]] * 2))
    batch = {0: "batch"}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but gives the plainest graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, example, str(path), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          opset_version=OPSET, dynamo=False, do_constant_folding=True,
                          dynamic_axes={name: batch for name in (*INPUT_NAMES, OUTPUT_NAME)})
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    return path


def parity(model, onnx_path: Path, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray) -> float:
    """Max |torch - onnxruntime| in grams over the given (imputed) inputs."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds = {"beat": beats.astype(np.float32), "demographics": demographics.astype(np.float32),
             "parameters": parameters.astype(np.float32)}
    onnx_out = session.run([OUTPUT_NAME], feeds)[0]
    with torch.no_grad():
        torch_out = model.eval()(*(torch.from_numpy(feeds[name]) for name in INPUT_NAMES)).numpy()
    if onnx_out.shape != torch_out.shape:
        raise ValueError(f"ONNX output shape {onnx_out.shape} differs from torch {torch_out.shape}")
    return float(np.max(np.abs(onnx_out - torch_out)))


def _parity_rows(patient, parameters: dict[str, float], n_beats: int,
                 medians: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Imputed contract rows for ``n_beats`` beats of one record (parity only: an unknown sex becomes male)."""
    demographics, ecg_parameters, _ = model_inputs(patient, parameters)
    if np.isnan(demographics[SEX_COLUMN]):
        demographics[SEX_COLUMN] = 1.0
    demo, params = impute(demographics[None, :], ecg_parameters[None, :], medians)
    return np.repeat(demo, n_beats, axis=0), np.repeat(params, n_beats, axis=0)


def real_parity_inputs(config, medians: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Beats of the bundled real records (through the signal core) with their own demographics."""
    from edge_runtime.assets import CINC_LVH_RECORD, PTBXL_RECORD
    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import analyze_record

    beats, demo, params = [], [], []
    for path in (PTBXL_RECORD, CINC_LVH_RECORD):
        record = read_record(path)
        analysis = analyze_record(record, config)
        rows = _parity_rows(record.patient, analysis.parameters, len(analysis.beats), medians)
        beats.append(analysis.beats)
        demo.append(rows[0])
        params.append(rows[1])
    return np.concatenate(beats).astype(np.float32), np.concatenate(demo), np.concatenate(params)


def label_table_parity_inputs(labels: Path, config, medians: dict[str, float], n_records: int = 4):
    """Beats of the first usable records of the run's own label table (e.g. the synthetic cohort), or None."""
    from training.dataset import analyze_entry

    from edge_runtime.contract import MODEL_PARAMETERS
    from edge_runtime.formats.labels import read_label_table

    try:
        entries = read_label_table(labels)
    except (OSError, ValueError):
        return None
    beats, demo, params = [], [], []
    for entry in entries:
        if len(beats) >= n_records:
            break
        result = analyze_entry(entry, config, include_full=False)
        if "error" in result or entry.patient.sex is None:
            continue
        beats.append(result["clean_beats"])
        rows = _parity_rows(entry.patient, dict(zip(MODEL_PARAMETERS, result["parameters"])),
                            len(result["clean_beats"]), medians)
        demo.append(rows[0])
        params.append(rows[1])
    if not beats:
        return None
    return np.concatenate(beats).astype(np.float32), np.concatenate(demo), np.concatenate(params)


def model_id(run_config: dict) -> str:
    """The bundle's model id, computed once here: ``elvmass-<grouping>-<features>-<data hash[:8]>``."""
    return "elvmass-" + "-".join(x.replace("+", "_") for x in (
        run_config["model"]["grouping"], run_config["model"]["features"], run_config["data_hash"][:8]))


def interval_calibration(run_dir: Path, coverage: float = 0.9) -> IntervalCalibration | None:
    """Split-conformal half-width of the LV-mass interval from the run's out-of-fold predictions.

    Every subject's cross-validation prediction comes from a model that never saw it, so the
    ``coverage`` conformal quantile of |label - prediction| is the device's interval half-width
    (the runtime reports ``median +- halfwidth``). ``None`` when the run has no predictions.
    """
    from training.conformal import conformal_halfwidth

    path = Path(run_dir) / "predictions.csv"
    if not path.exists():
        return None
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    # One residual per patient (the first of its ECGs): conformal coverage assumes exchangeable
    # calibration points, and several ECGs of one patient are not.
    seen: set[str] = set()
    rows = [row for i, row in enumerate(rows)
            if (key := row.get("subject_id") or f"row{i}") not in seen and not seen.add(key)]
    residuals = np.array([float(row["lvm_g"]) - float(row["lvm_g_predicted"]) for row in rows])
    return IntervalCalibration(
        method="split-conformal", coverage=coverage,
        lvm_halfwidth_g=round(conformal_halfwidth(np.abs(residuals), coverage), 3), n_calibration=int(residuals.size),
        data="out-of-fold predictions of the run's cross-validation (models that never saw the patient), one per patient")


def export_run(run_dir: Path, out_dir: Path | None = None, synthetic_beats: np.ndarray | None = None) -> ExportSpec:
    """Export a trained run directory; returns (and writes) ``export.json``.

    Parameters
    ----------
    run_dir : Path
        Written by ``elvmass train`` (``config.json``, ``metrics.json``, ``model.pt``).
    out_dir : Path, optional
        Where to write (default: ``run_dir``).
    synthetic_beats : ndarray, optional
        Extra beats for the parity check; default: random beats with synthetic-like amplitudes.

    Raises
    ------
    ValueError
        When the ONNX graph and torch differ by more than 1e-3 g on any parity input.
    """
    from edge_runtime.preprocess import PreprocessConfig
    from edge_runtime.record import PatientContext

    run_dir = Path(run_dir)
    out_dir = Path(out_dir or run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if config["train"]["input_mode"] != "beat":
        raise ValueError(f"only 'beat' input-mode runs are exported (the device feeds single beats); "
                         f"this run used {config['train']['input_mode']!r}")
    preprocess = PreprocessConfig.from_dict(config["preprocess"])
    models, medians = load_models(run_dir / "model.pt")
    length = preprocess.beat_length
    real = real_parity_inputs(preprocess, medians)
    synth_inputs = label_table_parity_inputs(Path(config["labels"]), preprocess, medians)
    if synth_inputs is None or synthetic_beats is not None:  # label table gone: random beats of ECG-like size
        rng = np.random.default_rng(0)
        synthetic = synthetic_beats if synthetic_beats is not None else rng.normal(0, 0.3, (8, 12, length)).astype(np.float32)
        patients = (PatientContext(55.0, "M", 172.0, 80.0), PatientContext(66.0, "F", 160.0, 62.0))
        ecg = {"qrs_ms": 92.0, "p_axis": 55.0, "r_axis": 20.0, "t_axis": 45.0}
        synth_inputs = (synthetic.astype(np.float32),
                        np.array([demographics_row(patients[i % 2]) for i in range(len(synthetic))], np.float32),
                        np.array([parameters_row(ecg)] * len(synthetic), np.float32))
    files, parity_report = {}, {}
    for variant, model in models.items():
        name = "model.onnx" if variant == "combined" else f"model_{variant}.onnx"
        export_onnx(model, out_dir / name, length)
        error_real = parity(model, out_dir / name, *real)
        error_synth = parity(model, out_dir / name, *synth_inputs)
        parity_report[name] = {"max_abs_diff_g_real": error_real, "max_abs_diff_g_synthetic": error_synth,
                               "n_real_beats": int(len(real[0])), "n_synthetic_beats": int(len(synth_inputs[0])),
                               "real_records": ["HR06004 (PTB-XL)", "E07505 (CinC 2021)"],
                               "synthetic_source": "first usable records of the run's label table"}
        if max(error_real, error_synth) >= PARITY_TOLERANCE_G:
            raise ValueError(f"{name}: torch vs onnxruntime differ by {max(error_real, error_synth):.2e} g "
                             f"(limit {PARITY_TOLERANCE_G:g})")
        files[variant] = name
    spec = ExportSpec(
        model_id=model_id(config), model_files=files, model_config=config["model"], opset=OPSET,
        inputs=InputSpec(beat_length=length), imputation=medians, preprocessing=preprocess.to_dict(),
        lvh_thresholds_g_m2={"M": config["lvh_thresholds"]["male_g_m2"], "F": config["lvh_thresholds"]["female_g_m2"]},
        training_data=config["training_data"], final_model=config["final_model"], labels=config["labels"],
        data_hash=config["data_hash"], seed=config["train"]["seed"], code_version_train=config["code_version"],
        code_version_export=code_version(),
        metrics={"cv_summary": metrics["summary"], "n_folds": len(metrics["folds"])},
        calibration=interval_calibration(run_dir), parity=parity_report,
        holdout=tuple(config.get("final_holdout_subjects", ())))
    # Written through from_dict's checks: a document the quantizer would refuse is never produced.
    document = ExportSpec.from_dict(spec.to_dict()).to_dict()
    (out_dir / "export.json").write_text(json.dumps(document, indent=2) + "\n")
    return spec
