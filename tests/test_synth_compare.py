"""Synthetic vs real comparison: the statistics and, with the shared data, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import shared_path
from elvmass.cli import main
from training.synth.compare import compare_distributions, ks_statistic, real_records


def test_ks_distance_is_zero_for_equal_and_one_for_disjoint_samples():
    a = np.arange(10.0)
    assert ks_statistic(a, a) == 0.0
    assert ks_statistic(a, a + 100.0) == 1.0
    assert np.isnan(ks_statistic(a, np.array([])))


def test_table_reports_each_side_and_ignores_missing_values():
    synthetic = [{"qrs_ms": v} for v in (80.0, 90.0, 100.0, float("nan"))]
    real = [{"qrs_ms": v} for v in (85.0, 95.0)]
    row = next(r for r in compare_distributions(synthetic, real) if r["feature"] == "qrs_ms")
    assert row["n_synthetic"] == 3 and row["n_real"] == 2
    assert row["synthetic_median"] == 90.0 and row["real_median"] == 90.0
    assert row["real_inside_synthetic_5_95"] == 1.0


@pytest.mark.shared
def test_real_lvh_labels_are_found():
    records = real_records(shared_path())
    cinc_lvh = sorted(r.path.stem for r in records if r.database == "cinc2021" and r.lvh)
    assert cinc_lvh == ["E07505", "E07519", "JS20014"]
    ludb = [r for r in records if r.database == "ludb"]
    assert ludb and any(r.lvh for r in ludb) and not all(r.lvh for r in ludb)
    assert not any(r.amplitudes_valid for r in ludb)  # LUDB gains normalize amplitudes


@pytest.mark.shared
@pytest.mark.slow
def test_synth_compare_command_writes_table_and_png(tmp_path, capsys):
    pytest.importorskip("edge_runtime.preprocess")
    pytest.importorskip("matplotlib")

    real = tmp_path / "real"  # a few real records keep the test fast; the full set is the benchmark
    for database, names in (("cinc2021", ["E07500", "E07505", "JS20000"]), ("ludb/data", ["1", "4"])):
        (real / database).mkdir(parents=True)
        for path in shared_path(*database.split("/")).iterdir():
            if path.stem in names and path.suffix in (".hea", ".mat", ".dat"):
                (real / database / path.name).symlink_to(path)
    cohort = tmp_path / "cohort"
    assert main(["synth", "--n", "12", "--out", str(cohort), "--quiet"]) == 0
    assert (cohort / "ecg_features.csv").exists()
    assert main(["synth-compare", "--synthetic", str(cohort), "--real", str(real), "--out", str(tmp_path / "cmp"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sokolow_lyon_mv" in out and "LVH direction" in out
    assert (tmp_path / "cmp" / "histograms.png").stat().st_size > 10_000
    document = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert {row["feature"] for row in document["table"]} >= {"cornell_mv", "qrs_ms", "r_axis", "noise_uv"}
