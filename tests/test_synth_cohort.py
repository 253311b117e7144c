"""Synthetic cohort: lead consistency, determinism, on-disk format and the readers, noise knob."""

from __future__ import annotations

import dataclasses
import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.formats import read_record
from edge_runtime.formats.labels import read_label_table
from edge_runtime.record import STANDARD_LEADS
from elvmass.cli import main
from training.synth.cohort import CohortConfig, generate_cohort, simulate_subject, write_cohort_json

LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}


def _digital(index: int = 0, **config) -> np.ndarray:
    return simulate_subject(index, CohortConfig(**config)).digital.astype(np.int64)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_limb_leads_obey_einthoven_and_goldberger_exactly_in_the_stored_samples(index):
    d = _digital(index)
    i, ii = d[LEAD["I"]], d[LEAD["II"]]
    assert np.array_equal(d[LEAD["III"]], ii - i)
    assert np.array_equal(2 * d[LEAD["aVR"]], -(i + ii))
    assert np.array_equal(2 * d[LEAD["aVL"]], 2 * i - ii)
    assert np.array_equal(2 * d[LEAD["aVF"]], 2 * ii - i)


def test_amplitudes_are_physiological():
    peak_to_peak = []
    for index in range(12):
        s = simulate_subject(index, CohortConfig(noise_level=0.0)).signals_mv
        peak_to_peak.append(np.ptp(s, axis=1))
    peak_to_peak = np.array(peak_to_peak)
    v5 = peak_to_peak[:, LEAD["V5"]]
    assert 0.4 < np.median(v5) < 3.5, v5
    assert peak_to_peak.max() < 8.0  # no lead beyond a few mV in a resting ECG
    assert np.median(peak_to_peak[:, LEAD["II"]]) > 0.4


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    config = CohortConfig(n=6, seed=3)
    rows = generate_cohort(out, config, chunk_size=4, progress=False)
    write_cohort_json(out, config, rows, {})
    return out


def test_the_readers_load_the_written_cohort(tiny_cohort):
    entries = read_label_table(tiny_cohort / "labels.csv")
    assert [e.subject_id for e in entries] == [f"syn{i:05d}" for i in range(6)]
    for entry in entries:
        record = read_record(entry.record_path)
        assert record.fs == 500.0
        assert record.lead_names == STANDARD_LEADS
        assert record.signals_mv.shape == (12, 5000)
        assert record.patient.sex == entry.patient.sex
        assert record.patient.age_years == pytest.approx(entry.patient.age_years)
        assert record.patient.height_cm == pytest.approx(entry.patient.height_cm)
        assert 30.0 < entry.lvm_g < 400.0
        s = record.signals_mv
        np.testing.assert_allclose(s[LEAD["III"]], s[LEAD["II"]] - s[LEAD["I"]], atol=1e-5)
        np.testing.assert_allclose(s[LEAD["aVR"]], -(s[LEAD["I"]] + s[LEAD["II"]]) / 2, atol=1e-5)
    document = json.loads((tiny_cohort / "cohort.json").read_text())
    assert document["seed"] == 3 and document["n"] == 6
    assert document["label_noise_floor_mae_g"] == pytest.approx(8.0 * np.sqrt(2 / np.pi))
    labels = {e.subject_id: e.lvm_g for e in entries}
    latents = {row.split(",")[0]: row for row in (tiny_cohort / "latents.csv").read_text().splitlines()[1:]}
    assert set(labels) == set(latents)
    assert document["oracle_mae_g"] == pytest.approx(document["label_noise_floor_mae_g_empirical"])
    header = (tiny_cohort / "latents.csv").read_text().splitlines()[0].split(",")
    for latent in ("lvm_true_g", "label_noise_g", "hypertrophy_log", "strain", "conduction_factor", "noise_level"):
        assert latent in header


def test_same_seed_gives_identical_files_whatever_the_chunking_and_workers(tiny_cohort, tmp_path):
    other = tmp_path / "again"
    generate_cohort(other, CohortConfig(n=6, seed=3), chunk_size=1, workers=2, progress=False)
    for name in ["labels.csv", "latents.csv"] + [f"records/syn{i:05d}.{ext}" for i in range(6) for ext in ("hea", "dat")]:
        assert filecmp.cmp(tiny_cohort / name, other / name, shallow=False), name


def test_a_prefix_of_a_larger_cohort_is_the_smaller_cohort(tiny_cohort, tmp_path):
    generate_cohort(tmp_path, CohortConfig(n=8, seed=3), chunk_size=8, progress=False)
    small = (tiny_cohort / "labels.csv").read_text().splitlines()
    large = (tmp_path / "labels.csv").read_text().splitlines()
    assert large[: len(small)] == small


def test_another_seed_gives_another_cohort(tmp_path):
    a = simulate_subject(0, CohortConfig(seed=1))
    b = simulate_subject(0, CohortConfig(seed=2))
    assert a.latents["lvm_g"] != b.latents["lvm_g"]
    assert not np.array_equal(a.digital, b.digital)


def test_noise_level_scales_only_the_noise():
    clean = simulate_subject(5, CohortConfig(noise_level=0.0))
    typical = simulate_subject(5, CohortConfig(noise_level=1.0))
    poor = simulate_subject(5, CohortConfig(noise_level=3.0))
    assert clean.latents["lvm_g"] == typical.latents["lvm_g"] == poor.latents["lvm_g"]
    rms_1 = np.sqrt(np.mean((typical.signals_mv - clean.signals_mv) ** 2))
    rms_3 = np.sqrt(np.mean((poor.signals_mv - clean.signals_mv) ** 2))
    assert rms_1 > 0.005  # a typical recording has tens of microvolts of noise
    assert rms_3 / rms_1 == pytest.approx(3.0, rel=0.02)


def test_mains_frequency_follows_the_setting():
    def mains_share(mains_hz: float, at_hz: float) -> float:
        clean = simulate_subject(2, CohortConfig(noise_level=0.0, mains_hz=mains_hz)).signals_mv[LEAD["I"]]
        noisy = simulate_subject(2, CohortConfig(noise_level=2.0, mains_hz=mains_hz)).signals_mv[LEAD["I"]]
        spectrum = np.abs(np.fft.rfft(noisy - clean))
        freqs = np.fft.rfftfreq(noisy.size, 1 / 500.0)
        return spectrum[np.argmin(np.abs(freqs - at_hz))] / np.median(spectrum[(freqs > 20) & (freqs < 240)])

    assert mains_share(60.0, 60.0) > 5 * mains_share(60.0, 50.0)
    assert mains_share(50.0, 50.0) > 5 * mains_share(50.0, 60.0)


@pytest.mark.parametrize("change, message", [({"n": 0}, "positive"), ({"noise_level": -1.0}, "noise level"),
                                             ({"mains_hz": 55.0}, "mains")])
def test_impossible_settings_are_refused_with_a_reason(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        generate_cohort(tmp_path, dataclasses.replace(CohortConfig(n=2), **change), progress=False)


def test_cli_writes_a_cohort_and_refuses_bad_input(tmp_path, capsys):
    assert main(["synth", "--n", "3", "--seed", "1", "--out", str(tmp_path / "c"), "--quiet", "--no-floor"]) == 0
    assert len(read_label_table(tmp_path / "c" / "labels.csv")) == 3
    printed = capsys.readouterr().out
    assert "floor MAE" in printed and "oracle" in printed and "skipped (--no-floor)" in printed
    assert json.loads((tmp_path / "c" / "cohort.json").read_text())["oracle_mae_g"] >= 0.0
    assert main(["synth", "--n", "0", "--out", str(tmp_path / "d"), "--quiet", "--no-floor"]) == 2
    assert main(["synth", "--n", "2", "--label-noise-sd", "-1", "--out", str(tmp_path / "e"), "--quiet"]) == 2
