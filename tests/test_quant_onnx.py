"""INT8 ONNX on a small eLVMass-Net: the folded export, name compaction, static QDQ, scoring."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) builds the test model")
onnx = pytest.importorskip("onnx", reason="the train extra (onnx) is needed for quantization")

from edge_runtime.assets import CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD, PTBXL_RECORD  # noqa: E402
from quantization import onnx_int8, verify  # noqa: E402
from conftest import IMPUTATION, as_if_trained  # noqa: E402
from conftest import contract_inputs as inputs  # noqa: E402
from quantization.calibration_data import lvm_range_rows, real_record_inputs  # noqa: E402


@pytest.fixture(scope="module")
def model_and_onnx(tmp_path_factory):
    from training.export import export_onnx  # lazy: heavy (torch)
    from training.model import ElvMassNet, ModelConfig  # lazy: heavy (torch)

    torch.manual_seed(0)
    model = as_if_trained(ElvMassNet(ModelConfig(channels=8, levels=2, embed=8, hidden=16)).eval(), 64, bn_weights=True)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "fp32.onnx", 400)  # BatchNorm folded, as every export
    return model, path


def run_onnx(path, beats, demo, params):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["lvm_g"], {"beat": beats, "demographics": demo, "parameters": params})[0].ravel()


def op_types(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_export_folds_batchnorm_across_the_chomp_slice_without_changing_outputs(model_and_onnx):
    model, fp32 = model_and_onnx
    assert "BatchNormalization" not in op_types(fp32)  # training.model.fold_batchnorm, the only fold
    beats, demo, params = inputs(16, seed=1)
    with torch.no_grad():  # the torch model keeps its (non-trivial) BatchNorm layers
        reference = model(*(torch.from_numpy(x) for x in (beats, demo, params))).numpy().ravel()
    np.testing.assert_allclose(run_onnx(fp32, beats, demo, params), reference, atol=1e-3)


def test_compact_names_keeps_interface_and_numbers_and_shrinks_the_file(model_and_onnx, tmp_path):
    _, fp32 = model_and_onnx
    compact = tmp_path / "compact.onnx"
    compact.write_bytes(fp32.read_bytes())
    onnx_int8.compact_names(compact)
    graph = onnx.load(str(compact)).graph
    assert [i.name for i in graph.input] == ["beat", "demographics", "parameters"]
    assert [o.name for o in graph.output] == ["lvm_g"]
    assert compact.stat().st_size < fp32.stat().st_size
    beats, demo, params = inputs(8, seed=2)
    np.testing.assert_array_equal(run_onnx(compact, beats, demo, params), run_onnx(fp32, beats, demo, params))


def test_output_head_nodes_are_the_last_linear_layer_and_rescale(model_and_onnx):
    _, fp32 = model_and_onnx
    model = onnx.load(str(fp32))
    by_name = {node.name: node for node in model.graph.node}
    head = onnx_int8.output_head_nodes(fp32)
    kinds = [by_name[name].op_type for name in head]
    assert kinds[-1] in ("Gemm", "MatMul") and kinds.count("Gemm") + kinds.count("MatMul") == 1
    assert "Conv" not in kinds


@pytest.mark.parametrize("activation_type", ["s8", "u8"])
def test_static_int8_stays_close_to_fp32_and_keeps_the_head_float(model_and_onnx, tmp_path, activation_type):
    _, fp32 = model_and_onnx
    beats, demo, params = inputs(96, seed=3)
    int8 = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "int8.onnx",
                                        {"beat": beats[:64], "demographics": demo[:64], "parameters": params[:64]},
                                        activation_type=activation_type, keep_head_float=True)
    kinds = op_types(int8)
    assert kinds.count("QuantizeLinear") > 10 and "BatchNormalization" not in kinds
    weights = {init.name: init.data_type for init in onnx.load(str(int8)).graph.initializer}
    assert onnx.TensorProto.INT8 in weights.values()
    reference = run_onnx(fp32, beats[64:], demo[64:], params[64:])
    quantized = run_onnx(int8, beats[64:], demo[64:], params[64:])
    # Untrained weights, so a loose bound: INT8 error is a small fraction of the output spread.
    assert np.mean(np.abs(quantized - reference)) < 0.05 * np.std(reference) + 0.5
    last = onnx.load(str(int8)).graph
    producers = {out: node for node in last.node for out in node.output}
    final = producers[last.output[0].name]
    assert final.op_type != "DequantizeLinear"  # the rescale to grams runs in float


def test_quantizer_refuses_nan_calibration(model_and_onnx, tmp_path):
    _, fp32 = model_and_onnx
    beats, demo, params = inputs(4, seed=4)
    demo[0, 0] = np.nan
    with pytest.raises(ValueError, match="calibration input demographics has NaN"):
        onnx_int8.quantize_onnx_int8(fp32, tmp_path / "x.onnx", {"beat": beats, "demographics": demo, "parameters": params})


def test_lvh_calls_and_int8_score_arithmetic():
    demo = np.array([[60, 1, 180, 80], [60, 0, 160, 60]], dtype=np.float32)  # BSA 2.0 and ~1.63 m2
    calls = verify.lvh_calls(np.array([150.0, 100.0]), demo, {"M": 72.0, "F": 55.0})
    assert calls.tolist() == [True, True]
    assert verify.lvh_calls(np.array([140.0, 80.0]), demo, {"M": 72.0, "F": 55.0}).tolist() == [False, False]
    # Male cut-off 72 g/m2 x 2.0 m2 = 144 g: fp32 148 g is LVH, INT8 143 g is not.
    score = verify.score_int8("x", np.array([150.0, 100.0]), np.array([148.0, 101.0]), np.array([143.0, 100.5]),
                              demo, {"M": 72.0, "F": 55.0})
    assert score.mae_fp32_g == pytest.approx(1.5) and score.mae_int8_g == pytest.approx(3.75)
    assert score.mae_change_g == pytest.approx(2.25) and not score.passed
    assert score.lvh_agreement == 0.5 and score.lvh_disagreements == 1
    assert score.max_abs_diff_g == pytest.approx(5.0)


def test_lvm_range_rows_cover_both_ends():
    lvm = np.array([120.0, 80.0, 300.0, 95.0, 200.0, 150.0])
    rows = lvm_range_rows(lvm, 3)
    assert lvm[rows].min() == 80.0 and lvm[rows].max() == 300.0 and len(rows) == 3


def test_real_calibration_beats_come_through_the_signal_core_and_ludb_is_refused():
    rows, skipped = real_record_inputs([PTBXL_RECORD, CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD], IMPUTATION,
                                       max_beats_per_record=4)
    assert rows.beats.shape[1:] == (12, 400) and 2 <= len(rows) <= 8
    assert set(rows.sources) <= {"HR06004.hea", "E07505.hea"}
    assert np.isfinite(rows.demographics).all() and np.isfinite(rows.parameters).all()
    assert any("normalized" in reason for path, reason in skipped if "ludb_1" in path)


def test_chomp_folds_into_asymmetric_conv_pads_without_changing_outputs(model_and_onnx, tmp_path):
    _, fp32 = model_and_onnx
    folded = tmp_path / "chomp.onnx"
    folded.write_bytes(fp32.read_bytes())
    n_slices = op_types(folded).count("Slice")
    assert onnx_int8.fold_chomp(folded) == 8  # 2 encoders x 2 levels x 2 causal convs per temporal block
    assert op_types(folded).count("Slice") == n_slices - 8
    pads = [list(a.ints) for n in onnx.load(str(folded)).graph.node if n.op_type == "Conv"
            for a in n.attribute if a.name == "pads"]
    assert any(p[0] > 0 and p[1] == 0 for p in pads)  # left padding only: causal
    beats, demo, params = inputs(16, seed=9)
    np.testing.assert_allclose(run_onnx(folded, beats, demo, params), run_onnx(fp32, beats, demo, params), atol=1e-3)


def test_qoperator_u8_per_tensor_is_smaller_than_qdq_and_close_to_fp32(model_and_onnx, tmp_path):
    _, fp32 = model_and_onnx
    beats, demo, params = inputs(96, seed=3)
    calibration = {"beat": beats[:64], "demographics": demo[:64], "parameters": params[:64]}
    qdq = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "qdq.onnx", calibration, "s8", True)
    qop = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "qop.onnx", calibration, "u8", True, per_channel=False,
                                       quant_format="qoperator")
    for path in (qdq, qop):
        onnx_int8.compact_names(path)
    assert "QLinearConv" in op_types(qop) and op_types(qop).count("Slice") <= 4  # parameter columns, lead groups
    assert qop.stat().st_size < qdq.stat().st_size
    reference = run_onnx(fp32, beats[64:], demo[64:], params[64:])
    assert np.mean(np.abs(run_onnx(qop, beats[64:], demo[64:], params[64:]) - reference)) < 0.05 * np.std(reference) + 0.5


@pytest.mark.parametrize("quant_format", ["qoperator", "qdq"])
def test_integer_rewrites_quantize_the_beat_once_and_pool_in_integers_with_the_same_outputs(model_and_onnx, tmp_path,
                                                                                           quant_format):
    _, fp32 = model_and_onnx
    beats, demo, params = inputs(96, seed=4)
    calibration = {"beat": beats[:64], "demographics": demo[:64], "parameters": params[:64]}
    options = dict(activation_type="u8", keep_head_float=True, per_channel=False, quant_format=quant_format)
    plain = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "plain.onnx", calibration, fold_integer_ops=False, **options)
    folded = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "folded.onnx", calibration, **options)
    graph = onnx.load(str(folded)).graph
    first = [n for n in graph.node if "beat" in n.input]
    assert [n.op_type for n in first] == ["QuantizeLinear"]  # the float Div and the float lead Gathers are gone
    assert any(a.name == "axis" and a.i == 1 for a in first[0].attribute)  # one scale per lead
    assert op_types(plain).count("QuantizeLinear") > op_types(folded).count("QuantizeLinear")
    assert "ReduceMax" in op_types(plain) and "ReduceMax" not in op_types(folded)
    assert op_types(folded).count("MaxPool") == 2  # the max over time in integers, one per encoder
    if quant_format == "qoperator":
        assert "ReduceMean" in op_types(plain) and "ReduceMean" not in op_types(folded)
        assert op_types(folded).count("QLinearGlobalAveragePool") == 2  # one per encoder
    else:  # QDQ stays standard ONNX
        assert "QLinearGlobalAveragePool" not in op_types(folded)
    rest = (beats[64:], demo[64:], params[64:])
    # Same integers up to the rounding of x / scale / s against x / (scale * s), and of the mean.
    difference = np.abs(run_onnx(folded, *rest) - run_onnx(plain, *rest))
    assert np.mean(difference) < 0.05 and np.max(difference) < 1.0


def test_max_pooling_fold_gives_the_same_numbers_bit_for_bit(model_and_onnx, tmp_path):
    _, fp32 = model_and_onnx
    beats, demo, params = inputs(96, seed=6)
    calibration = {"beat": beats[:64], "demographics": demo[:64], "parameters": params[:64]}
    plain = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "plain.onnx", calibration, activation_type="u8",
                                         per_channel=False, quant_format="qoperator", fold_integer_ops=False)
    folded = tmp_path / "max.onnx"
    folded.write_bytes(plain.read_bytes())
    assert onnx_int8.fold_max_pooling(folded) == 2
    assert "ReduceMax" not in op_types(folded) and op_types(folded).count("MaxPool") == 2
    rest = (beats[64:], demo[64:], params[64:])
    # max commutes with the monotone dequantization and the requantize uses the same scale: exact
    np.testing.assert_array_equal(run_onnx(folded, *rest), run_onnx(plain, *rest))


@pytest.mark.parametrize("grouping", ["anatomical", "none"])
def test_input_quantization_fold_handles_gathered_and_single_lead_groups(grouping, tmp_path):
    from training.export import export_onnx
    from training.model import ElvMassNet, ModelConfig

    torch.manual_seed(1)
    model = ElvMassNet(ModelConfig(grouping=grouping, channels=4, levels=1, embed=4, hidden=8)).eval()
    beats, demo, params = inputs(48, seed=5)
    model.fit_normalization(beats, demo, params, np.random.default_rng(1).uniform(60, 260, 48))
    fp32 = export_onnx(model, tmp_path / "fp32.onnx", 400)
    calibration = {"beat": beats[:32], "demographics": demo[:32], "parameters": params[:32]}
    options = dict(activation_type="u8", keep_head_float=True, per_channel=False, quant_format="qoperator")
    plain = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "plain.onnx", calibration, fold_integer_ops=False, **options)
    folded = onnx_int8.quantize_onnx_int8(fp32, tmp_path / "folded.onnx", calibration, **options)
    assert [n.op_type for n in onnx.load(str(folded)).graph.node if "beat" in n.input] == ["QuantizeLinear"]
    rest = (beats[32:], demo[32:], params[32:])
    difference = np.abs(run_onnx(folded, *rest) - run_onnx(plain, *rest))
    assert np.mean(difference) < 0.05 and np.max(difference) < 1.0


def test_model_cost_of_a_qoperator_int8_file_uses_its_fp32_twin(model_and_onnx, tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("model_cost", Path(__file__).parents[1] / "deploy" / "model_cost.py")
    model_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(model_cost)
    _, fp32 = model_and_onnx
    twin = tmp_path / "combined_fp32.onnx"
    twin.write_bytes(fp32.read_bytes())
    onnx_int8.fold_chomp(twin)
    beats, demo, params = inputs(32, seed=3)
    int8 = onnx_int8.quantize_onnx_int8(twin, tmp_path / "combined_int8.onnx",
                                        {"beat": beats, "demographics": demo, "parameters": params},
                                        "u8", False, per_channel=False, quant_format="qoperator")
    cost = model_cost._cost_or_twin(int8)
    assert cost["macs_per_beat"] == model_cost.model_cost(twin)["macs_per_beat"] > 0
    assert cost["size_bytes"] == int8.stat().st_size and cost["macs_from"] == twin.name
    # the folded chomp computes only the kept samples: fewer MACs than the export
    assert cost["macs_per_beat"] < model_cost.model_cost(fp32)["macs_per_beat"]


def test_calibration_rows_span_every_input_range():
    from quantization.calibration_data import input_extreme_rows

    demographics = np.array([[50, 1, 170, 80], [30, 0, 150, 133.5], [70, 1, 190, 60], [np.nan, 0, 160, 70]], float)
    parameters = np.array([[90, 40, 30, 20], [100, 50, 60, 10], [80, 60, -20, 40], [95, 45, 10, 30]], float)
    rows = input_extreme_rows(demographics, parameters)
    for values in (demographics, parameters):
        for column in values.T:
            assert np.nanmin(column) in column[rows] and np.nanmax(column) in column[rows]


def test_training_ranges_cover_every_training_subject():
    from quantization.calibration_data import ModelInputs
    from quantization.pipeline import training_ranges

    demographics = np.array([[19.06, 1, 150.04, 48.96], [89.0, 0, 195.91, 123.14]], np.float32)
    rows = ModelInputs(np.zeros((2, 12, 4), np.float32), demographics, np.zeros((2, 4), np.float32), ["a", "b"])
    ranges = training_ranges(rows)
    assert set(ranges) == {"age_years", "height_cm", "weight_kg"}
    for column, name in ((0, "age_years"), (2, "height_cm"), (3, "weight_kg")):
        low, high = ranges[name]
        assert low <= demographics[:, column].min() and high >= demographics[:, column].max()
        assert high - low < np.ptp(demographics[:, column]) + 0.2
