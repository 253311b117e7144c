"""Raw-signal augmentation before the shared signal core, and the metamorphic checks on real ECGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.formats import read_record
from edge_runtime.record import STANDARD_LEADS, EcgRecord
from training.augment import AugmentConfig, augment_record

ASSETS = Path(__file__).resolve().parents[1] / "edge_runtime" / "assets" / "records"
LEAD = {name: i for i, name in enumerate(STANDARD_LEADS)}


@pytest.fixture(scope="module")
def real_record() -> EcgRecord:
    return read_record(ASSETS / "E07505.hea").to_standard_12()


def test_augmented_copy_keeps_lead_relations_and_differs(real_record):
    copy = augment_record(real_record, np.random.default_rng(1), AugmentConfig(p_each=1.0))
    x = copy.signals_mv.astype(np.float64)
    assert copy.lead_names == STANDARD_LEADS and x.shape == real_record.signals_mv.shape
    np.testing.assert_allclose(x[LEAD["III"]], x[LEAD["II"]] - x[LEAD["I"]], atol=1e-5)
    np.testing.assert_allclose(x[LEAD["aVF"]], x[LEAD["II"]] - x[LEAD["I"]] / 2, atol=1e-5)
    assert np.max(np.abs(x - real_record.signals_mv)) > 0.01
    again = augment_record(real_record, np.random.default_rng(1), AugmentConfig(p_each=1.0))
    assert np.array_equal(again.signals_mv, copy.signals_mv)
    untouched = augment_record(real_record, np.random.default_rng(1), AugmentConfig(p_each=0.0))
    for name in ("I", "II", "V1", "V6"):
        np.testing.assert_allclose(untouched.signals_mv[LEAD[name]], real_record.signals_mv[LEAD[name]], atol=1e-6)
    # no global rescaling: QRS voltage must stay the model's cue (gains are a +-5 % tolerance per lead)
    ratio = np.std(x[[LEAD["V5"], LEAD["II"]]], axis=1) / np.std(real_record.signals_mv[[LEAD["V5"], LEAD["II"]]], axis=1)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


def test_augmentation_refuses_a_record_without_the_independent_leads():
    two = EcgRecord(np.zeros((2, 5000), np.float32), 500.0, ("I", "II"))
    with pytest.raises(ValueError, match="needs leads"):
        augment_record(two, np.random.default_rng(0))


def test_augmented_beats_come_from_the_signal_core_and_only_feed_training(tmp_path):
    from training.dataset import add_augmented_beats, build_dataset
    from training.synth.cohort import CohortConfig, generate_cohort

    generate_cohort(tmp_path / "c", CohortConfig(n=12, seed=2), progress=False)
    labels = tmp_path / "c" / "labels.csv"
    ds = build_dataset(labels, cache_dir=tmp_path / "cache", progress=False)
    aug = add_augmented_beats(ds, labels, copies=2, seed=0, cache_dir=tmp_path / "cache", progress=False)
    assert aug.aug_beats.shape[1:] == ds.all_beats.shape[1:] and aug.aug_beats.shape[0] > ds.all_beats.shape[0]
    assert set(np.unique(aug.aug_owner)) <= set(range(len(ds)))
    pool, starts, counts = aug.training_beat_pool()
    assert np.array_equal(counts, np.bincount(ds.beat_owner, minlength=len(ds)) + np.bincount(aug.aug_owner, minlength=len(ds)))
    for row in (0, len(ds) - 1):  # each subject's slice holds its own clean beats first-class
        own = pool[starts[row]:starts[row] + counts[row]]
        assert any(np.array_equal(b, ds.all_beats[ds.beat_owner == row][0]) for b in own)
    assert np.array_equal(aug.all_beats, ds.all_beats)  # scoring still sees the unaugmented beats only
    part = aug.subset(np.array([3, 1]))
    assert np.array_equal(part.aug_beats, aug.aug_beats[np.concatenate([np.flatnonzero(aug.aug_owner == 3),
                                                                        np.flatnonzero(aug.aug_owner == 1)])])
    again = add_augmented_beats(ds, labels, copies=2, seed=0, cache_dir=tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("augmented_*.npz"))) == 1 and np.array_equal(again.aug_beats, aug.aug_beats)


def test_metamorphic_command_on_bundled_real_records(tmp_path, capsys):
    from elvmass.cli import main

    folder = tmp_path / "records"
    folder.mkdir()
    for name in ("E07505.hea", "E07505.mat", "HR06004.hea", "HR06004.mat"):
        (folder / name).write_bytes((ASSETS / name).read_bytes())
    assert main(["metamorphic", str(folder), "--quiet", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "scale_1.25" in out and "wander" in out and "mains" in out and "emg" in out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["summary"]["n_records"] == 2 and set(data["estimates"]) == {"original", "scale_1.25", "scale_qrs_1.25",
                                                                       "wander", "mains", "emg"}
    assert all(len(v) == 2 for v in data["estimates"].values())
    assert "scale_qrs_1.25" in out
    base, scaled = data["estimates"]["original"], data["estimates"]["scale_1.25"]
    assert any(b is not None and s is not None and s != b for b, s in zip(base, scaled))  # voltage moves the number
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["metamorphic", str(empty)]) == 2
    assert main(["metamorphic", str(tmp_path / "nowhere")]) == 2


def test_qrs_only_scaling_grows_the_qrs_and_leaves_p_and_t(real_record):
    """scale_qrs_1.25: QRS amplitude x 1.25 around the local baseline; the T wave and the PR level do not move."""
    from edge_runtime.preprocess import analyze_record
    from evaluation.metamorphic import qrs_scaled

    scaled = qrs_scaled(real_record, 1.25)
    before, after = analyze_record(real_record), analyze_record(scaled)
    assert before.usable and after.usable and len(after.r_peaks) == len(before.r_peaks)
    beat_before, beat_after = before.beats[before.middle_beat], after.beats[after.middle_beat]
    r = 150  # the R peak of a beat window
    for lead in ("II", "V5"):
        i = LEAD[lead]
        qrs_before = np.ptp(beat_before[i, r - 40:r + 40])
        assert np.ptp(beat_after[i, r - 40:r + 40]) == pytest.approx(1.25 * qrs_before, rel=0.06)
        t_before, t_after = beat_before[i, r + 100:r + 250], beat_after[i, r + 100:r + 250]
        assert np.max(np.abs(t_after - t_before)) < 0.03 * max(qrs_before, 0.1)  # ST-T untouched (mV)
