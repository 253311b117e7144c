"""Unit tests of the training side on small random tensors: model, folds, metrics, ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # 2 threads on a shared 2-core machine spin-wait and run ~10x slower

import edge_runtime  # noqa: E402
from training.dataset import signal_core_version  # noqa: E402
from training.folds import paper_folds, validation_split  # noqa: E402
from training.metrics import LvhThresholds, c_statistic, lvh_score, paired_fold_test, score_fold, summarize_folds  # noqa: E402
from training.model import LEAD_GROUPS, ElvMassNet, ModelConfig, count_parameters  # noqa: E402
from training.trainer import fit_medians, impute  # noqa: E402


def _inputs(n=4, length=400, seed=0):
    rng = np.random.default_rng(seed)
    beat = torch.from_numpy(rng.normal(0, 0.5, (n, 12, length)).astype(np.float32))
    demo = torch.tensor([[60.0, 1.0, 175.0, 80.0], [50.0, 0.0, 160.0, 60.0]] * (n // 2))
    params = torch.tensor([[95.0, 50.0, 30.0, 40.0]] * n)
    return beat, demo, params


@pytest.mark.parametrize("grouping", sorted(LEAD_GROUPS))
def test_model_shapes_and_size(grouping):
    model = ElvMassNet(ModelConfig(grouping=grouping)).eval()
    out = model(*_inputs())
    assert out.shape == (4, 1) and torch.isfinite(out).all()
    assert 5_000 < count_parameters(model) < 60_000  # "a few 10k parameters"


def test_grouping_routes_leads():
    # With the 'none' grouping every lead reaches the single encoder; with 'electrical' a change in a
    # precordial lead must change the output too (no lead silently dropped).
    for grouping in LEAD_GROUPS:
        model = ElvMassNet(ModelConfig(grouping=grouping, dropout=0.0)).eval()
        beat, demo, params = _inputs(2)
        base = model(beat, demo, params)
        for lead in range(12):
            changed = beat.clone()
            changed[:, lead] += 1.0
            assert not torch.allclose(model(changed, demo, params), base), (grouping, lead)


def test_feature_sets_ignore_unused_inputs_but_keep_them():
    beat, demo, params = _inputs(2)
    model = ElvMassNet(ModelConfig(features="ecg")).eval()
    assert torch.equal(model(beat, demo, params), model(beat, demo * 2, params * 3))
    full = ElvMassNet(ModelConfig(features="ecg+demo+params")).eval()
    assert not torch.equal(full(beat, demo, params), full(beat, demo * 2, params))
    assert not torch.equal(full(beat, demo, params), full(beat, demo, params + 40))


def test_causal_blocks_do_not_look_ahead():
    # The TCN part is causal: changing the end of the beat cannot change early feature maps.
    model = ElvMassNet(ModelConfig(dropout=0.0)).eval()
    encoder = model.encoders[0]
    beat, _, _ = _inputs(2)
    x = beat[:, :6]
    late = x.clone()
    late[:, :, 300:] += 1.0
    early = encoder.blocks(encoder.stem(x))[:, :, :70]
    assert torch.allclose(early, encoder.blocks(encoder.stem(late))[:, :, :70])


def test_normalization_is_baked_in():
    rng = np.random.default_rng(1)
    beats = rng.normal(0, 0.4, (20, 12, 400)).astype(np.float32)
    demo = np.column_stack([rng.uniform(40, 80, 20), rng.integers(0, 2, 20), rng.uniform(150, 190, 20), rng.uniform(50, 100, 20)])
    params = np.column_stack([rng.uniform(80, 110, 20), rng.uniform(-30, 90, (20, 3))])
    lvm = rng.uniform(60, 200, 20)
    model = ElvMassNet()
    model.fit_normalization(beats, demo, params, lvm)
    assert model.target_mean.item() == pytest.approx(lvm.mean(), rel=1e-5)
    assert model.beat_scale.shape == (1, 12, 1)
    names = set(dict(model.named_buffers()))
    assert {"beat_scale", "demo_mean", "demo_std", "target_mean", "target_std"} <= names


def test_paper_folds_every_fifth_by_mass():
    lvm = np.array([150.0, 90, 120, 60, 200, 110, 95, 130, 70, 180])
    folds = paper_folds(lvm, 5)
    order = np.argsort(lvm)
    assert list(folds[order]) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert np.bincount(folds).tolist() == [2] * 5
    with pytest.raises(ValueError):
        paper_folds(np.array([1.0, np.nan, 3, 4, 5]))


def test_validation_split_is_disjoint_and_deterministic():
    lvm = np.random.default_rng(0).uniform(50, 250, 200)
    train = np.flatnonzero(paper_folds(lvm) != 0)
    fit, val = validation_split(lvm, train, 0.1, seed=3)
    assert set(fit) | set(val) == set(train) and not set(fit) & set(val)
    assert 14 <= val.size <= 18
    again = validation_split(lvm, train, 0.1, seed=3)
    assert np.array_equal(fit, again[0]) and np.array_equal(val, again[1])


def test_lvh_score_uses_mosteller_and_sex_thresholds():
    # 180 cm, 80 kg -> BSA 2.0 m2; 150 g -> 75 g/m2: LVH in a man (> 72), 100 g -> 50: not LVH in a woman (< 55).
    score = lvh_score(np.array([150.0, 100.0]), np.array([1.0, 0.0]), np.array([180.0, 180.0]), np.array([80.0, 80.0]))
    assert score == pytest.approx([3.0, -5.0])
    custom = lvh_score(np.array([150.0]), np.array([1.0]), np.array([180.0]), np.array([80.0]), LvhThresholds(80, 60))
    assert custom[0] == pytest.approx(-5.0)


def test_c_statistic_known_values():
    assert c_statistic(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert c_statistic(np.array([0, 0, 1, 1]), np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert c_statistic(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(c_statistic(np.array([1, 1]), np.array([0.1, 0.2])))


def test_score_fold_counts_and_skips_unknown_body_size():
    demo = np.array([[60, 1, 180, 80], [60, 1, 180, 80], [60, 0, 180, 80], [60, 0, np.nan, 80]], float)
    truth = np.array([160.0, 120.0, 120.0, 100.0])  # indexed 80 (LVH), 60, 60 (LVH, F), unknown
    pred = np.array([150.0, 150.0, 100.0, 100.0])  # 75 (LVH), 75 (LVH: false positive), 50 (missed), unknown
    m = score_fold(truth, pred, demo, noise_floor_mae=5.0)
    assert m["mae_g"] == pytest.approx((10 + 30 + 20 + 0) / 4)
    assert m["n_lvh_scored"] == 3
    assert m["sensitivity"] == pytest.approx(0.5) and m["specificity"] == pytest.approx(0.0)
    assert m["ppv"] == pytest.approx(0.5) and m["accuracy"] == pytest.approx(1 / 3)
    assert m["mae_over_noise_floor"] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        score_fold(truth, np.array([1.0, np.nan, 1, 1]), demo)


def test_summary_and_paired_test():
    folds = [{"fold": k, "mae_g": v} for k, v in enumerate([10.0, 12, 11, 13, 9])]
    summary = summarize_folds(folds)
    assert summary["mae_g"]["mean"] == pytest.approx(11.0) and "fold" not in summary
    assert summary["mae_g"]["sd"] == pytest.approx(np.std([10, 12, 11, 13, 9], ddof=1))
    test = paired_fold_test([10, 12, 11, 13, 9], [12, 14.5, 13, 15.2, 11])
    assert test["mean_diff_g"] < 0 and test["t_test_p"] < 0.01 and test["wilcoxon_p"] == pytest.approx(0.0625)


def test_imputation_uses_training_medians_never_sex():
    demo = np.array([[50, 1, 170, np.nan], [70, 0, np.nan, 60], [np.nan, 1, 180, 80]], float)
    params = np.array([[90, np.nan, 10, 20], [100, 40, 30, np.nan], [110, 60, np.nan, 40]], float)
    medians = fit_medians(demo, params)
    assert medians["age_years"] == 60 and medians["weight_kg"] == 70 and "sex" not in medians
    d, p = impute(demo, params, medians)
    assert not np.isnan(d).any() and not np.isnan(p).any() and d[2, 0] == 60 and p[0, 1] == 50
    demo[0, 1] = np.nan
    with pytest.raises(ValueError, match="sex"):
        impute(demo, params, medians)


def test_onnx_export_parity_and_dynamic_batch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from training.export import export_onnx, parity  # lazy: heavy

    model = ElvMassNet(ModelConfig(grouping="anatomical")).eval()
    path = export_onnx(model, tmp_path / "m.onnx", 400)
    import onnx  # lazy: heavy

    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["beat", "demographics", "parameters"]
    assert [o.name for o in graph.graph.output] == ["lvm_g"]
    ops = {node.op_type for node in graph.graph.node}
    assert "BatchNormalization" not in ops and "Pad" not in ops and "Gelu" not in ops
    assert graph.opset_import[0].version >= 17
    for n in (1, 5):
        beat, demo, params = _inputs(2 if n == 1 else 6)
        beat, demo, params = beat[:n].numpy(), demo[:n].numpy(), params[:n].numpy()
        assert parity(model, path, beat, demo, params) < 1e-3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1:] == [12, 400]


def test_onnx_export_keeps_unused_inputs(tmp_path):
    pytest.importorskip("onnxruntime")
    from training.export import export_onnx  # lazy: heavy

    import onnx  # lazy: heavy

    path = export_onnx(ElvMassNet(ModelConfig(features="ecg")).eval(), tmp_path / "ecg.onnx", 400)
    assert [i.name for i in onnx.load(str(path)).graph.input] == ["beat", "demographics", "parameters"]


def test_cache_key_covers_the_signal_core_sources(tmp_path, monkeypatch):
    # The dataset cache must change when any signal-core module changes; a renamed folder must not drop out.

    root = __import__("pathlib").Path(edge_runtime.__file__).parent
    assert len(list((root / "signal_core").glob("*.py"))) >= 5
    before = signal_core_version()
    fake = tmp_path / "edge_runtime"
    (fake / "signal_core").mkdir(parents=True)
    (fake / "runtime").mkdir()
    for path in [root / "preprocess.py", root / "flags.py", root / "contract.py", root / "runtime" / "estimate.py",
                 *(root / "signal_core").glob("*.py")]:
        target = fake / path.relative_to(root)
        target.write_bytes(path.read_bytes())
    monkeypatch.setattr(edge_runtime, "__file__", str(fake / "__init__.py"))
    assert signal_core_version() == before
    (fake / "signal_core" / "detect.py").write_text((fake / "signal_core" / "detect.py").read_text() + "\n# changed\n")
    assert signal_core_version() != before


def test_final_holdout_is_every_kth_by_mass_deterministic_and_empty_at_zero():
    from training.folds import final_holdout

    lvm = np.random.default_rng(0).uniform(60, 260, 200)
    held = final_holdout(lvm, 0.1, seed=0)
    assert len(held) == 20 and len(set(held)) == 20
    assert np.array_equal(held, final_holdout(lvm, 0.1, seed=0))
    assert final_holdout(lvm, 0.0).size == 0
    # spread over the whole LV-mass range, like the paper's folds
    assert lvm[held].min() < np.quantile(lvm, 0.15) and lvm[held].max() > np.quantile(lvm, 0.85)


def test_ensemble_is_the_mean_of_its_members_and_exports_as_one_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    from training.export import export_onnx, parity  # lazy: heavy
    from training.model import ElvMassEnsemble

    members = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        members.append(ElvMassNet(ModelConfig()).eval())
    ensemble = ElvMassEnsemble(members).eval()
    inputs = _inputs(4)
    with torch.no_grad():
        each = torch.stack([m(*inputs) for m in members])
        assert not torch.allclose(each[0], each[1])  # the members differ ...
        assert torch.allclose(ensemble(*inputs), each.mean(0), atol=1e-5)  # ... and the ensemble is their mean
    path = export_onnx(ensemble, tmp_path / "ensemble.onnx", 400)
    beat, demo, params = (t.numpy() for t in inputs)
    assert parity(ensemble, path, beat, demo, params) < 1e-3
    with pytest.raises(ValueError, match="at least one member"):
        ElvMassEnsemble([])
