"""The device picks the fastest verified artifact: ``elvmass bench --write-config`` and what it writes."""

from __future__ import annotations

import json

import pytest

from edge_runtime.config import ConfigError, load_config
from edge_runtime.model_bundle import load_bundle
from elvmass.cli import main
from evaluation.model_choice import ArtifactTiming, alternating_median_ms, choose, time_artifacts, verified, write_config_choice


def test_near_ties_go_to_the_neutral_cost_order():
    rows = [ArtifactTiming("litert", "fp32", True, window_ms=1.00), ArtifactTiming("onnxruntime", "int8", True, window_ms=1.05),
            ArtifactTiming("onnxruntime", "fp32", True, window_ms=0.99)]
    assert (choose(rows).backend, choose(rows).precision) == ("onnxruntime", "int8")  # within 10 %: INT8 moves fewer bytes
    rows[1].window_ms = 1.5
    assert (choose(rows).backend, choose(rows).precision) == ("onnxruntime", "fp32")


def test_timings_take_the_calls_in_turn_so_a_load_change_reaches_every_one():
    order = []
    medians = alternating_median_ms({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3)
    assert order == ["a", "b"] * 4  # one warm-up each, then rounds of one call each (not a then b)
    assert set(medians) == {"a", "b"} and all(ms >= 0.0 for ms in medians.values())


def test_reference_calls_are_timed_with_the_artifacts_on_the_same_inputs():
    seen = []
    rows, reference = time_artifacts(load_bundle(None), repeats=2,
                                     reference={"ref": lambda inputs: seen.append(tuple(a.shape[0] for a in inputs))})
    assert set(reference) == {"ref", "ref/beat"}
    assert {shape for shape in seen} == {(14, 14, 14), (1, 1, 1)}  # the window and one beat, all three inputs
    measured = [r for r in rows if r.window_ms is not None]
    assert measured and all(r.beat_ms is not None for r in measured)


def test_choice_is_the_fastest_among_verified_and_measured():
    rows = [ArtifactTiming("onnxruntime", "fp32", True, window_ms=2.0),
            ArtifactTiming("onnxruntime", "int8", True, window_ms=1.0),
            ArtifactTiming("litert", "fp32", True, window_ms=None, note="runtime not installed"),
            ArtifactTiming("litert", "int8", False, window_ms=0.5)]  # fastest, but failed verification
    assert (choose(rows).backend, choose(rows).precision) == ("onnxruntime", "int8")
    assert choose([r for r in rows if not r.passed or r.window_ms is None]) is None


def test_verified_reads_the_bundle_verification():
    bundle = load_bundle()
    scores = {s["artifact"]: s["passed"] for s in bundle.manifest.verification["int8_vs_fp32"]}
    assert verified(bundle, "onnx", "int8") == scores[bundle.select("onnx", "int8").path.name]
    assert verified(bundle, "onnx", "fp32")  # parity recorded below the limit
    bundle.manifest.verification["int8_vs_fp32"] = []  # nothing recorded: INT8 is not trusted
    assert not verified(bundle, "onnx", "int8")


def test_write_config_keeps_other_keys_and_loads(tmp_path):
    path = tmp_path / "elvmass.toml"
    path.write_text('mains_hz = 60\nbackend = "onnxruntime"\nport = "/dev/ttyUSB0"\n')
    write_config_choice(path, "litert", "fp32")
    config = load_config(path)
    assert (config.backend, config.precision, config.mains_hz, config.port) == ("litert", "fp32", 60, "/dev/ttyUSB0")
    assert path.read_text().count("backend") == 1


def test_write_config_restores_the_file_when_the_result_would_not_load(tmp_path):
    path = tmp_path / "elvmass.toml"
    path.write_text("mains_hz = 60\n")
    with pytest.raises(ConfigError):
        write_config_choice(path, "tensorflow", "int8")
    assert path.read_text() == "mains_hz = 60\n"


def test_bench_writes_a_config_the_runtime_loads(tmp_path, capsys):
    from edge_runtime.runtime.pipeline import Analyzer

    path = tmp_path / "clinic" / "elvmass.toml"
    assert main(["bench", "--models-only", "--repeats", "2", "--write-config", str(path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    choice = results["choice"]
    assert results["config_written"] == str(path)
    expected = choose([ArtifactTiming(**row) for row in results["latency"]])
    assert choice == {"backend": expected.backend, "precision": expected.precision} and expected.passed
    config = load_config(path)
    assert (config.backend, config.precision) == (choice["backend"], choice["precision"])
    analyzer = Analyzer(config)  # the runtime loads the chosen artifact
    assert (analyzer.predictor.backend, analyzer.predictor.precision) == (choice["backend"], choice["precision"])
