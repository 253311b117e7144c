"""The "paper" difficulty: a generated cohort stays inside the published voltage/LV-mass bands.

The bands (evaluation/cohort_check.py, docs/synthetic_cohort.md) are for a cohort of the paper's
size; this test uses 500 subjects, so each band is widened by 2.5 bootstrap SEs of that quantity
at n = 500 (e.g. ~0.04 for a within-sex r), computed on the cohort itself.
"""

from __future__ import annotations

import pytest

pytest.importorskip("edge_runtime.preprocess")

from edge_runtime.record import STANDARD_LEADS, EcgRecord  # noqa: E402
from evaluation.cohort_check import TARGETS, band_verdicts, check_cohort  # noqa: E402
from training.synth.cohort import CohortConfig, simulate_subject  # noqa: E402
from training.synth.features import measure_record  # noqa: E402

N_SUBJECTS = 500
WIDEN_SE = 2.5


def _cohort(config: CohortConfig) -> tuple[list[dict], list[dict]]:
    rows, measures = [], []
    for index in range(config.n):
        subject = simulate_subject(index, config)
        rows.append(subject.latents)
        measures.append(measure_record(EcgRecord(subject.signals_mv, config.fs, STANDARD_LEADS)))
    return rows, measures


@pytest.fixture(scope="module")
def paper_check() -> dict:
    rows, measures = _cohort(CohortConfig(n=N_SUBJECTS, seed=101))
    return check_cohort(rows, measures, n_bootstrap=100)


def test_the_default_cohort_is_the_paper_difficulty():
    assert CohortConfig().difficulty == "paper"
    assert CohortConfig().phenotype == CohortConfig.for_difficulty("paper").phenotype
    with pytest.raises(ValueError, match="unknown difficulty"):
        CohortConfig.for_difficulty("hard")


@pytest.mark.parametrize("key", [t.key if t.key.startswith("mae_") else f"{t.key}_pooled" for t in TARGETS])
def test_paper_cohort_is_inside_each_band_within_its_sampling_error(paper_check, key):
    verdict = {v["key"]: v for v in band_verdicts(paper_check, widen_se=WIDEN_SE)}[key]
    assert 0 < verdict["se"] < 0.06, verdict  # the widening stays far narrower than the easy cohort's miss
    assert verdict["inside"], verdict


def test_ecg_only_is_clearly_worse_than_ecg_with_demographics(paper_check):
    v = paper_check["values"]
    assert v["mae_ecg_only_g"] > 1.15 * v["mae_ecg_demographics_g"], v
    assert v["mae_demographics_only_g"] > v["mae_ecg_demographics_g"], v


def test_the_easy_preset_fails_the_voltage_bands():
    """The check can fail: the pre-issue-19 generator's Sokolow-Lyon tracks LV mass far too well."""
    rows, measures = _cohort(CohortConfig.for_difficulty("easy", n=200, seed=101))
    result = check_cohort(rows, measures, n_bootstrap=50)
    verdicts = {v["key"]: v for v in band_verdicts(result, widen_se=WIDEN_SE)}
    assert not verdicts["r_sokolow_lvm_pooled"]["inside"], verdicts["r_sokolow_lvm_pooled"]
    assert verdicts["r_sokolow_lvm_pooled"]["value"] > 0.35, verdicts["r_sokolow_lvm_pooled"]


def test_synth_check_command_prints_measured_vs_band_and_refuses_bad_input(tmp_path, capsys):
    from elvmass.cli import main

    cohort = tmp_path / "cohort"
    assert main(["synth", "--n", "60", "--seed", "5", "--out", str(cohort), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["synth-check", str(cohort), "--bootstrap", "20", "--json", str(tmp_path / "check.json")]) == 0
    out = capsys.readouterr().out
    assert "ecg_features.csv" in out and "r_sokolow_lvm_pooled" in out and "target band" in out
    assert (tmp_path / "check.json").read_text().count("\"inside\"") == 4 * 3 + 1  # 4 voltage targets x (men, women, pooled) + the MAE ratio
    assert main(["synth-check", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "bad.csv").write_text("record,lvm_g\n")
    assert main(["synth-check", str(tmp_path / "bad.csv")]) == 2
    assert "missing column" in capsys.readouterr().out


def test_easy_preset_is_the_generator_before_issue_19():
    """`--difficulty easy` keeps the 1.0 models; its extra gains are exactly 1, so its records are unchanged."""
    from training.synth.phenotype import PhenotypeModel
    from training.synth.subjects import SubjectModel

    easy = CohortConfig.for_difficulty("easy", n=3, seed=4)
    assert easy.subjects == SubjectModel() and easy.phenotype == PhenotypeModel()
    for index in range(3):
        latents = simulate_subject(index, easy).latents
        assert latents["precordial_gain"] == latents["p_gain"] == latents["t_gain"] == 1.0
    paper = simulate_subject(0, CohortConfig(n=3, seed=4)).latents
    assert paper["precordial_gain"] != 1.0 and paper["t_gain"] != 1.0
