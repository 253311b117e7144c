"""End-to-end training on a tiny synthetic cohort (n=40, 1 epoch, 2 folds) and on a site's MUSE files.

The cohort and the trained run are the session fixtures ``tiny_cohort`` / ``trained_run`` of conftest.py
(tests/test_contract.py takes the same run through export, quantize and the runtime).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from edge_runtime.bundle_spec import EXPORT_SPEC_VERSION, ExportSpec  # noqa: E402
from edge_runtime.formats import read_record  # noqa: E402
from edge_runtime.formats.muse_xml import write_muse_xml  # noqa: E402
from edge_runtime.preprocess import analyze_record  # noqa: E402
from edge_runtime.runtime.estimate import clean_beats  # noqa: E402
from elvmass.cli import main  # noqa: E402
from training.ablation import format_tables, run_ablation, to_json  # noqa: E402
from training.dataset import build_dataset  # noqa: E402
from training.external import external_validation, fit_recalibration  # noqa: E402
from training.trainer import TrainedModel, beat_groups, impute, predict  # noqa: E402


def test_dataset_comes_from_the_signal_core_and_is_cached(tiny_cohort, tmp_path):
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=tmp_path, progress=False)
    assert ds.beats.shape[1:] == (12, 400) and len(ds) + len(ds.excluded) == 40 and len(ds) >= 30
    assert all(reason for _, reason in ds.excluded)
    first = ds.subject_ids[0]
    analysis = analyze_record(read_record(tiny_cohort / "records" / f"{first}.hea"))
    assert np.array_equal(ds.beats[0], analysis.beats[analysis.middle_beat])
    assert ds.parameters[0, 0] == pytest.approx(analysis.parameters["qrs_ms"])
    assert 0 < ds.qrs_onset[0] < 150 < ds.qrs_offset[0] < 400
    again = build_dataset(tiny_cohort / "labels.csv", cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and np.array_equal(again.beats, ds.beats)
    assert again.data_hash == ds.data_hash and again.full is None
    with_full = build_dataset(tiny_cohort / "labels.csv", cache_dir=tmp_path, include_full=True, progress=False)
    assert with_full.full.shape == (len(ds), 12, 5000)


def test_train_writes_a_reproducible_run(trained_run):
    run_dir, _ = trained_run
    config = json.loads((run_dir / "config.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert config["train"]["seed"] == 0 and len(config["data_hash"]) == 64 and config["code_version"]
    assert "not clinically validated" in config["training_data"] and config["preprocess"]["fs"] == 500.0
    assert len(metrics["folds"]) == 2 and metrics["summary"]["mae_g"]["mean"] > 0
    assert {"c_statistic", "sensitivity", "specificity", "ppv", "f1", "mape_pct"} <= set(metrics["summary"])
    log = (run_dir / "train.log").read_text()
    assert "epoch   2" in log and "val_mae" in log
    rows = list(csv.DictReader(open(run_dir / "predictions.csv")))
    assert len(rows) == config["n_usable"] and all(np.isfinite(float(r["lvm_g_predicted"])) for r in rows)


def test_training_is_deterministic(tiny_cohort, trained_run, tmp_path):
    run_dir, cache = trained_run
    assert main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(tmp_path), "--epochs", "2",
                 "--folds", "2", "--workers", "1", "--quiet", "--cache-dir", str(cache)]) == 0
    assert (tmp_path / "predictions.csv").read_text() == (run_dir / "predictions.csv").read_text()


def test_export_parity_and_manifest_constants(trained_run, tmp_path):
    run_dir, cache = trained_run
    assert main(["export", str(run_dir), "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "export.json").read_text())
    assert document["spec_version"] == EXPORT_SPEC_VERSION and ExportSpec.from_dict(document).model_id.startswith("elvmass-")
    assert document["model_files"] == {"combined": "model.onnx"} and document["opset"] >= 17
    # The default --final-holdout 0.1: the final model never saw these subjects; quantize scores INT8 on them.
    held = json.loads((run_dir / "config.json").read_text())["final_holdout_subjects"]
    assert document["holdout"] == held and len(held) >= 3
    for report in document["parity"].values():
        assert report["max_abs_diff_g_real"] < 1e-3 and report["max_abs_diff_g_synthetic"] < 1e-3
        assert report["n_real_beats"] > 5
    assert set(document["imputation"]) == {"age_years", "height_cm", "weight_kg", "qrs_ms", "p_axis", "r_axis", "t_axis"}
    assert document["preprocessing"]["beat_post_ms"] == 500.0 and document["inputs"]["beat"]["length"] == 400
    # The ONNX model reproduces the run's own final-model predictions on the cohort's beats.
    from training.export import load_models  # lazy: heavy

    config = json.loads((run_dir / "config.json").read_text())
    ds = build_dataset(config["labels"], cache_dir=cache, progress=False)
    models, medians = load_models(run_dir / "model.pt")
    demo, params = impute(ds.demographics, ds.parameters, medians)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["lvm_g"], {"beat": ds.beats, "demographics": demo, "parameters": params})[0][:, 0]
    assert np.max(np.abs(onnx_out - predict(models["combined"], ds.beats, demo, params))) < 1e-3


def test_saliency_table_and_png(trained_run, tmp_path):
    run_dir, cache = trained_run
    assert main(["saliency", str(run_dir), "--out", str(tmp_path), "--png", "1", "--cache-dir", str(cache)]) == 0
    table = json.loads((tmp_path / "saliency.json").read_text())
    for group in ("limb", "precordial"):
        shares = table["tertiles"]["all"][group]
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-6) and all(v >= 0 for v in shares.values())
    assert sum(table["lead_groups"].values()) == pytest.approx(1.0)
    assert len(list(tmp_path.glob("*.png"))) == 1


def test_sex_specific_run_exports_two_models(tiny_cohort, trained_run, tmp_path):
    _, cache = trained_run
    assert main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(tmp_path), "--epochs", "1",
                 "--folds", "2", "--workers", "1", "--quiet", "--sex-specific", "--cache-dir", str(cache)]) == 0
    assert main(["export", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "export.json").read_text())
    assert document["model_files"] == {"male": "model_male.onnx", "female": "model_female.onnx"}
    assert ExportSpec.from_dict(document).sex_specific is True


def test_ensemble_run_trains_seeded_members_and_exports_their_mean(tiny_cohort, trained_run, tmp_path):
    from training.export import load_models
    from training.model import ElvMassEnsemble

    _, cache = trained_run
    assert main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(tmp_path), "--epochs", "1",
                 "--folds", "2", "--workers", "1", "--quiet", "--ensemble", "2", "--augment-copies", "0",
                 "--cache-dir", str(cache)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert all({"combined", "combined-m1"} <= set(row) for row in metrics["best_epochs"])
    assert json.loads((tmp_path / "config.json").read_text())["train"]["ensemble"] == 2
    models, _ = load_models(tmp_path / "model.pt")
    assert isinstance(models["combined"], ElvMassEnsemble) and len(models["combined"].members) == 2
    with open(tmp_path / "predictions.csv") as handle:  # out-of-fold estimates of each member alone, too
        rows = list(csv.DictReader(handle))
    member0 = np.array([float(row["lvm_g_predicted_member0"]) for row in rows])
    member1 = np.array([float(row["lvm_g_predicted_member1"]) for row in rows])
    assert np.all(np.isfinite(member0)) and not np.allclose(member0, member1)  # seeds differ
    assert main(["export", str(tmp_path)]) == 0  # parity is checked by export on real and synthetic beats
    assert main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(tmp_path / "bad"),
                 "--ensemble", "0", "--quiet", "--cache-dir", str(cache)]) != 0


def test_weight_averaging_keeps_the_averaged_weights(tiny_cohort, trained_run):
    """--ema-decay: the kept (validated) weights are the moving average, not the last step's."""
    from training.model import ModelConfig
    from training.trainer import TrainConfig, train_model

    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    fit, val = ds.subset(np.arange(0, len(ds) - 8)), ds.subset(np.arange(len(ds) - 8, len(ds)))
    plain, _, plain_history, _ = train_model(ModelConfig(), TrainConfig(epochs=2, seed=1), fit, val)
    averaged, _, history, _ = train_model(ModelConfig(), TrainConfig(epochs=2, seed=1, ema_decay=0.9), fit, val)
    assert [h["train_mae_g"] for h in history] == pytest.approx([h["train_mae_g"] for h in plain_history])  # same steps
    weights = [k for k in plain.state_dict() if k.endswith("weight")]
    assert any(not torch.equal(plain.state_dict()[k], averaged.state_dict()[k]) for k in weights)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_label_table_pointing_at_site_muse_files(tiny_cohort, tmp_path):
    site = tmp_path / "site"
    (site / "ecg").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with open(site / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["record", "lvm_g", "age_years", "sex", "height_cm", "weight_kg"])
        for k, row in enumerate(csv.DictReader(open(tiny_cohort / "labels.csv"))):
            if k >= 16:
                break
            record = read_record(tiny_cohort / row["record"])
            write_muse_xml(record, site / "ecg" / f"p{k}.xml")
            made_up = f"{rng.uniform(70, 200):.1f}"  # any site value: training must simply use it
            writer.writerow([f"ecg/p{k}.xml", made_up, row["age_years"], row["sex"], "" if k == 3 else row["height_cm"],
                             row["weight_kg"]])
    run_dir = tmp_path / "run"
    assert main(["train", "--labels", str(site / "labels.csv"), "--out", str(run_dir), "--epochs", "1", "--folds", "2",
                 "--workers", "1", "--quiet", "--cache-dir", ""]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert "label table labels.csv" in config["training_data"] and config["n_usable"] >= 10


def test_missing_record_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("record,lvm_g,age_years,sex,height_cm,weight_kg\nnope.hea,120,50,M,170,70\n")
    assert main(["train", "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().out


def test_tabular_baselines_and_voltage_criteria(tiny_cohort, trained_run):
    from training.baselines import qrs_amplitudes, run_baselines, voltage_criteria  # lazy: heavy

    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    results = run_baselines(ds, names=("ecg_ai_gbt", "voltage_linear", "demographics_linear"), n_folds=2, progress=False)
    for result in results.values():
        assert np.isfinite(result["prediction"]).all() and result["summary"]["mae_g"]["mean"] > 0
    # A hand-made beat: R of 2 mV in V5, S of 1.5 mV in V1 -> Sokolow-Lyon 3.5 mV.
    one = ds.subset(np.array([0]))
    one.beats = np.zeros_like(one.beats)
    one.qrs_onset[:], one.qrs_offset[:] = 140, 170
    one.beats[0, 10, 150] = 2.0
    one.beats[0, 6, 155] = -1.5
    r_amp, s_amp = qrs_amplitudes(one)
    assert r_amp[0, 10] == pytest.approx(2.0) and s_amp[0, 6] == pytest.approx(1.5)
    assert voltage_criteria(one)[0, 0] == pytest.approx(3.5)


@pytest.mark.slow
def test_ablation_tables_and_paired_tests(tiny_cohort, trained_run):
    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, include_full=True, progress=False)
    result = run_ablation(ds, tables=("sex", "baselines"), epochs=1, cnn_epochs=1, n_folds=2, workers=1, progress=False)
    runs = result["runs"]
    assert {"beat/electrical/ecg+demo+params", "beat/electrical/ecg+demo+params/sex-specific",
            "baseline:lvm_ai_cnn", "baseline:ecg_ai_gbt", "baseline:voltage_linear",
            "baseline:demographics_linear"} <= set(runs)
    assert "vs_default" in runs["baseline:ecg_ai_gbt"] and "vs_default" not in runs[result["default"]]
    text = format_tables(result)
    assert "Sex-specific models vs one model" in text and "Baselines (same folds)" in text
    json.dumps(to_json(result))  # plain JSON


@pytest.mark.slow
def test_ablation_variants_in_parallel_give_the_sequential_numbers(tiny_cohort, trained_run):
    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    kwargs = {"tables": ("beats",), "epochs": 1, "n_folds": 2, "progress": False}
    sequential = run_ablation(ds, workers=1, **kwargs)["runs"]
    finished = []
    parallel = run_ablation(ds, workers=2, parallel_variants=2, on_variant=lambda name, run: finished.append(name),
                            **kwargs)["runs"]
    assert sorted(finished) == sorted(parallel)
    assert list(parallel) == list(sequential) == ["beat/electrical/ecg+demo+params", "beat(middle)/electrical/ecg+demo+params"]
    for name in sequential:
        assert [f["mae_g"] for f in parallel[name]["folds"]] == [f["mae_g"] for f in sequential[name]["folds"]]
    with pytest.raises(ValueError, match="workers >= 2"):
        run_ablation(ds, workers=1, parallel_variants=2, **kwargs)


def test_external_validation_recalibrates_on_a_subset_only(tiny_cohort, trained_run):
    from training.export import load_models  # lazy: heavy

    assert fit_recalibration(np.array([1.0, 2, 3]), np.array([12.0, 14, 16])) == pytest.approx((10.0, 2.0))
    run_dir, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    models, medians = load_models(run_dir / "model.pt")
    result = external_validation(TrainedModel(models, medians, {}, {}), ds, n_recalibration=10)
    assert result["n_evaluated"] == len(ds) - 10
    assert result["before"]["n"] == result["after"]["n"] == len(ds) - 10
    with pytest.raises(ValueError, match="more than"):
        external_validation(TrainedModel(models, medians, {}, {}), ds, n_recalibration=len(ds))


def test_clean_beats_follow_their_subjects(tiny_cohort, trained_run):
    _, cache = trained_run
    ds = build_dataset(tiny_cohort / "labels.csv", cache_dir=cache, progress=False)
    starts, counts = beat_groups(ds)
    assert counts.sum() == len(ds.all_beats) and np.all(counts >= 1)
    # subject 1's clean beats are the runtime's clean beats of its record, in order
    analysis = analyze_record(read_record(tiny_cohort / "records" / f"{ds.subject_ids[1]}.hea"))
    expected = analysis.beats[clean_beats(analysis.beats)]
    assert np.array_equal(ds.all_beats[starts[1]:starts[1] + counts[1]], expected)
    sub = ds.subset(np.array([3, 1]))
    sub_starts, sub_counts = beat_groups(sub)
    assert sub_counts.tolist() == [counts[3], counts[1]]
    assert np.array_equal(sub.all_beats[sub_starts[1]:sub_starts[1] + sub_counts[1]], expected)


def test_channels_option_sets_the_encoder_width(tiny_cohort, trained_run, tmp_path):
    from training.export import load_models

    _, cache = trained_run
    assert main(["train", "--labels", str(tiny_cohort / "labels.csv"), "--out", str(tmp_path), "--epochs", "1",
                 "--folds", "2", "--workers", "1", "--quiet", "--channels", "8", "--augment-copies", "0",
                 "--cache-dir", str(cache)]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["model"]["channels"] == 8
    models, _ = load_models(tmp_path / "model.pt")
    stem = next(m for m in models["combined"].modules() if isinstance(m, torch.nn.Conv1d))
    assert stem.out_channels == 8
