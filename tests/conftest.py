"""Shared fixtures: where the real data lives, and a clear skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ELVMASS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, skipping the calling test when it is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is present for developers and CI, not in a fresh clone)")
    return path


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# --- Helpers shared by several test modules (tests import them from here, never from each other) ---------

import numpy as np  # noqa: E402

BEAT_LENGTH = 40  # beat length of the tiny linear test bundles
PREPROCESSING = {"fs": 500.0, "highpass_hz": 0.5, "lowpass_hz": 40.0, "notch_hz": 50.0,
                 "beat_pre_ms": 30.0, "beat_post_ms": 50.0}
IMPUTATION = {"age_years": 60.0, "height_cm": 170.0, "weight_kg": 75.0,
              "qrs_ms": 95.0, "p_axis": 50.0, "r_axis": 40.0, "t_axis": 45.0}
CALIBRATION = {"method": "split-conformal", "coverage": 0.9, "lvm_halfwidth_g": 31.5, "n_calibration": 400,
               "data": "unit-test constant"}
STANDARD_LEAD_NAMES = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def save_contract_onnx(path: Path, name: str, nodes: list, initializers: dict[str, np.ndarray], beat_length: int,
                       opset: int) -> Path:
    """Save ``nodes`` as an ONNX graph with the model contract's inputs (beat, demographics, parameters)
    and output (lvm_g), batch axis dynamic."""
    import onnx  # lazy: heavy (the train extra)
    from onnx import TensorProto, helper, numpy_helper  # lazy: heavy

    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("beat", TensorProto.FLOAT, ["batch", 12, beat_length]),
         helper.make_tensor_value_info("demographics", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("parameters", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("lvm_g", TensorProto.FLOAT, ["batch", 1])],
        [numpy_helper.from_array(value, key) for key, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def linear_onnx(path: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    """A tiny ONNX model with the contract's inputs: lvm_g = beat.w_b + demo.w_d + params.w_p + b."""
    from onnx import helper  # lazy: heavy (the train extra)

    rng = np.random.default_rng(seed)
    weights = {
        "w_beat": rng.normal(0, 0.1, (12 * BEAT_LENGTH, 1)).astype(np.float32),
        "w_demo": np.array([[0.5], [20.0], [0.3], [0.8]], dtype=np.float32),
        "w_params": np.array([[0.4], [0.01], [0.02], [0.01]], dtype=np.float32),
        "bias": np.array([10.0], dtype=np.float32),
    }
    nodes = [
        helper.make_node("Flatten", ["beat"], ["beat_flat"], axis=1),
        helper.make_node("MatMul", ["beat_flat", "w_beat"], ["from_beat"]),
        helper.make_node("MatMul", ["demographics", "w_demo"], ["from_demo"]),
        helper.make_node("MatMul", ["parameters", "w_params"], ["from_params"]),
        helper.make_node("Sum", ["from_beat", "from_demo", "from_params", "bias"], ["lvm_g"]),
    ]
    return save_contract_onnx(path, "linear_lvm", nodes, weights, BEAT_LENGTH, opset=17), weights


def make_bundle(tmp_path: Path, variants: tuple[str, ...] = ("combined",)) -> Path:
    """A verified bundle of :func:`linear_onnx` models (one per variant) with the test preprocessing."""
    from quantization.bundle import BundleModel, write_bundle

    models = []
    for i, variant in enumerate(variants):
        source, _ = linear_onnx(tmp_path / f"src_{variant}.onnx", seed=i)
        models.append(BundleModel(source=source, file=f"{variant}_fp32.onnx", format="onnx", precision="fp32", variant=variant))
    out = tmp_path / "bundle"
    write_bundle(out, models, model_id="test-linear", training_data="unit-test weights; not clinically validated",
                 preprocessing=PREPROCESSING, imputation=IMPUTATION, beat_length=BEAT_LENGTH,
                 metrics={"cv_mae_g": 1.0})
    return out


def amplitude_onnx(path: Path, beat_length: int) -> Path:
    """lvm_g = 40 + 6 * sum over leads of peak-to-peak(beat) + 0.8 * weight + 20 * sex."""
    from onnx import helper  # lazy: heavy (the train extra)

    constants = {
        "axes2": np.array([2], dtype=np.int64), "axes1": np.array([1], dtype=np.int64),
        "k_amp": np.array([[6.0]], dtype=np.float32),
        "w_demo": np.array([[0.0], [20.0], [0.0], [0.8]], dtype=np.float32),
        "bias": np.array([[40.0]], dtype=np.float32),
    }
    nodes = [
        helper.make_node("ReduceMax", ["beat", "axes2"], ["beat_max"], keepdims=0),
        helper.make_node("ReduceMin", ["beat", "axes2"], ["beat_min"], keepdims=0),
        helper.make_node("Sub", ["beat_max", "beat_min"], ["ptp"]),
        helper.make_node("ReduceSum", ["ptp", "axes1"], ["ptp_sum"], keepdims=1),
        helper.make_node("Mul", ["ptp_sum", "k_amp"], ["from_beat"]),
        helper.make_node("MatMul", ["demographics", "w_demo"], ["from_demo"]),
        helper.make_node("Sum", ["from_beat", "from_demo", "bias"], ["lvm_g"]),
    ]
    return save_contract_onnx(path, "amplitude_lvm", nodes, constants, beat_length, opset=18)


def make_runtime_bundle(folder: Path, calibration: dict | None = CALIBRATION) -> Path:
    """A verified bundle (fp32 and "int8" = the same :func:`amplitude_onnx` file) with the runtime's
    preprocessing and, unless ``None``, the interval calibration: real waveforms give checkable numbers."""
    pytest.importorskip("onnx")
    from edge_runtime.bundle_spec import IntervalCalibration
    from edge_runtime.preprocess import PreprocessConfig
    from quantization.bundle import BundleModel, write_bundle

    config = PreprocessConfig()
    source = amplitude_onnx(folder / "amplitude.onnx", config.beat_length)
    models = [BundleModel(source=source, file=f"combined_{p}.onnx", format="onnx", precision=p) for p in ("fp32", "int8")]
    out = folder / "bundle"
    write_bundle(out, models, model_id="runtime-test-amplitude", training_data="unit-test formula; not clinically validated",
                 preprocessing=config.to_dict(), imputation=IMPUTATION, beat_length=config.beat_length,
                 metrics={"cv_mae_g": 15.0},
                 calibration=None if calibration is None else IntervalCalibration(**calibration), overwrite=True)
    return out


def contract_inputs(n: int, seed: int, beat_length: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random model inputs in the contract's order and raw units: QRS-like beats, plausible demographics
    (sex 0/1) and ECG parameters."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-0.3, 0.5, beat_length)
    qrs = np.exp(-(t / 0.02) ** 2)  # a QRS-like spike at the R index, per-lead amplitude
    beats = (rng.uniform(-1.5, 2.0, (n, 12, 1)) * qrs + rng.normal(0, 0.05, (n, 12, beat_length))).astype(np.float32)
    demo = np.column_stack([rng.uniform(25, 85, n), rng.integers(0, 2, n), rng.uniform(150, 195, n),
                            rng.uniform(45, 110, n)]).astype(np.float32)
    params = np.column_stack([rng.uniform(70, 130, n), rng.uniform(-30, 90, n), rng.uniform(-60, 100, n),
                              rng.uniform(-30, 90, n)]).astype(np.float32)
    return beats, demo, params


def as_if_trained(model, n: int, *, bn_weights: bool = False):
    """``model`` (an ``ElvMassNet``) with input normalization fitted on ``n`` random contract inputs and
    non-trivial BatchNorm statistics (and affine weights with ``bn_weights``), as after training."""
    import torch  # lazy: only the torch tests call this

    beats, demo, params = contract_inputs(n, seed=0)
    model.fit_normalization(beats, demo, params, np.random.default_rng(0).uniform(60, 260, n))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                if bn_weights:
                    module.weight.uniform_(0.5, 1.5)
    return model


def store_report(i: int = 0) -> dict:
    """A report dict as the runtime stores it (for the result-store tests and their writer subprocess)."""
    return {"estimate_status": "ok", "lvm_g": 150.0 + i, "lvm_interval_g": [120.0 + i, 180.0 + i],
            "lvm_index_g_m2": 80.0, "lvh": True, "n_beats": 9,
            "flags": [{"name": "imputed_height_cm", "reason": "unknown"}],
            "model": {"id": "demo", "sha256": "ab" * 32},
            "patient": {"patient_id": "P1", "age_years": 60.0, "sex": "M", "height_cm": 180.0, "weight_kg": 80.0}}


def export_spec(**changes):
    """A valid :class:`edge_runtime.bundle_spec.ExportSpec` of a combined model (fields overridable)."""
    from edge_runtime.bundle_spec import ExportSpec, InputSpec

    fields = dict(
        model_id="elvmass-electrical-ecg_demo_params-01234567", model_files={"combined": "model.onnx"},
        model_config={"grouping": "electrical", "features": "ecg+demo+params"}, opset=17,
        inputs=InputSpec(400), imputation=dict(IMPUTATION),
        preprocessing={"fs": 500.0, "highpass_hz": 0.5, "lowpass_hz": 40.0, "notch_hz": 50.0,
                       "beat_pre_ms": 300.0, "beat_post_ms": 500.0},
        lvh_thresholds_g_m2={"M": 72.0, "F": 55.0}, training_data="synthetic cohort, n = 40; not clinically validated",
        final_model="retrained on all usable subjects", labels="/data/cohort/labels.csv", data_hash="0123456789abcdef",
        seed=0, code_version_train="abc123", code_version_export="abc123",
        metrics={"cv_summary": {"mae_g": {"mean": 12.5, "sd": 1.0}}, "n_folds": 2}, calibration=None, parity={})
    fields.update(changes)
    return ExportSpec(**fields)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """A synthetic cohort of 40 subjects (labels.csv + WFDB records)."""
    from training.synth.cohort import CohortConfig, generate_cohort, write_cohort_json

    out = tmp_path_factory.mktemp("cohort")
    config = CohortConfig(n=40, seed=3)
    rows = generate_cohort(out, config, workers=1, progress=False)
    write_cohort_json(out, config, rows, {})
    return out


@pytest.fixture(scope="session")
def trained_run(tiny_cohort, tmp_path_factory) -> tuple[Path, Path]:
    """``(run_dir, dataset cache)`` of ``elvmass train`` on :func:`tiny_cohort` for 2 epochs and 2 folds."""
    torch = pytest.importorskip("torch")
    from elvmass.cli import main

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    code = main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(run_dir), "--epochs", "2",
                 "--folds", "2", "--workers", "1", "--quiet", "--cache-dir", str(cache)])
    assert code == 0
    return run_dir, cache


HIL_PATIENT_ARGS = ["--age", "77", "--sex", "F", "--height", "160", "--weight", "70", "--id", "HIL-1"]


def run_runtime(port: str, bundle, db, *options: str, timeout: float = 120.0) -> dict:
    """``elvmass run --port PORT`` in a subprocess (fp32, JSON summary) for the hardware-in-the-loop tests."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "elvmass", "run", "--port", port, "--bundle", str(bundle), "--precision", "fp32",
               "--db", str(db), "--json", "--quiet", *HIL_PATIENT_ARGS, *options]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


REPORT_DISCLAIMER = "Research software. Model trained on synthetic data; not clinically validated. Not for diagnosis."


def make_report(i: int = 0, **changes) -> dict:
    """A complete stored report (as the runtime writes it) for the FHIR results and outbox tests."""
    report = {"estimate_status": "ok", "lvm_g": 150.0 + i, "lvm_interval_g": [120.0 + i, 180.0 + i],
              "lvm_interval_coverage": 0.9, "lvm_index_g_m2": 80.0, "lvh": True, "lvh_threshold_g_m2": 72.0,
              "n_beats": 9, "flags": [], "model": {"id": "demo-model", "sha256": "ab" * 32},
              "patient": {"patient_id": f"P-{i:04d}", "age_years": 60.0, "sex": "M", "height_cm": 180.0,
                          "weight_kg": 80.0},
              "disclaimer": REPORT_DISCLAIMER, "recorded_utc": f"2026-11-26T01:{i % 60:02d}:00.000+00:00"}
    report.update(changes)
    return report


def fill_store(path: Path, reports) -> list[int]:
    """Store ``reports`` (each with an empty 12-lead window) in a result store at ``path``; their row ids."""
    from edge_runtime.runtime.store import ResultStore

    window = np.zeros((12, 50), np.float32)
    with ResultStore(path) as store:
        return [store.add(report, window, 500.0, STANDARD_LEAD_NAMES) for report in reports]


def start_emulator(tmp_path: Path, record: Path, *flags: str):
    """`elvmass emulate RECORD --pty` in its own process; the process and the pty link it printed."""
    import select
    import subprocess
    import sys

    link = tmp_path / "ttyECG0"
    process = subprocess.Popen([sys.executable, "-m", "elvmass", "emulate", str(record), "--pty", "--link", str(link),
                                *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    if not select.select([process.stdout], [], [], 90)[0]:
        process.kill()
        pytest.fail("emulator printed no address within 90 s: " + process.stderr.read())
    address = process.stdout.readline().strip()
    assert address == str(link), (address, process.stderr.read() if process.poll() is not None else "")
    return process, address


def stop_emulator(process) -> str:
    """Terminate (kill after 10 s) an emulator from :func:`start_emulator`; its stderr."""
    import subprocess

    process.terminate()
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    return stderr
