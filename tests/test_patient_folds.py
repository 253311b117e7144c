"""Patient-grouped folds: every ECG of one patient stays on one side of every split."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from training.external import patient_split
from training.folds import paper_folds, validation_split


def _repeated_patients(n_patients: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, size=n_patients)  # 1-4 ECGs per patient
    groups = np.repeat([f"P{k:03d}" for k in range(n_patients)], counts)
    lvm = np.repeat(rng.normal(110, 30, n_patients), counts) + rng.normal(0, 3, groups.size)  # repeat ECGs, similar label
    order = rng.permutation(groups.size)  # a site's table is not sorted by patient
    return lvm[order], groups[order]


def test_no_patient_crosses_cv_folds_and_folds_stay_balanced():
    lvm, groups = _repeated_patients()
    folds = paper_folds(lvm, 5, groups=groups)
    for patient in np.unique(groups):
        assert np.unique(folds[groups == patient]).size == 1, patient
    patients_per_fold = [np.unique(groups[folds == k]).size for k in range(5)]
    assert max(patients_per_fold) - min(patients_per_fold) <= 1  # patients are dealt every fifth
    # without groups the same table would put a patient in several folds: the test can fail
    assert any(np.unique(paper_folds(lvm, 5)[groups == p]).size > 1 for p in np.unique(groups))


def test_one_ecg_per_patient_gives_the_per_ecg_folds():
    lvm = np.random.default_rng(1).normal(110, 30, 97)
    ids = np.array([f"S{i}" for i in range(97)])
    assert np.array_equal(paper_folds(lvm, 5, groups=ids), paper_folds(lvm, 5))
    train = np.flatnonzero(paper_folds(lvm) != 0)
    for a, b in zip(validation_split(lvm, train, 0.1, 3, groups=ids), validation_split(lvm, train, 0.1, 3)):
        assert np.array_equal(a, b)


def test_no_patient_crosses_the_validation_split():
    lvm, groups = _repeated_patients(seed=2)
    folds = paper_folds(lvm, 5, groups=groups)
    train = np.flatnonzero(folds != 0)
    fit, val = validation_split(lvm, train, 0.1, seed=4, groups=groups)
    assert np.intersect1d(fit, val).size == 0 and np.array_equal(np.sort(np.concatenate([fit, val])), train)
    assert val.size > 0 and not set(groups[fit]) & set(groups[val])
    assert not set(groups[train]) & set(groups[folds == 0])


def test_no_patient_crosses_the_external_recalibration_split():
    _, groups = _repeated_patients(seed=3)
    recal, rest = patient_split(groups, 50, seed=0)
    assert recal.size >= 50 and recal.size + rest.size == groups.size
    assert not set(groups[recal]) & set(groups[rest])


def test_grouping_refuses_mismatched_groups_and_too_few_patients():
    with pytest.raises(ValueError, match="one entry per subject"):
        paper_folds(np.ones(10), 5, groups=np.array(["a"] * 9))
    with pytest.raises(ValueError, match="patients"):
        paper_folds(np.arange(10.0), 5, groups=np.array(["a", "b", "c"] * 3 + ["a"]))


@pytest.mark.slow
def test_training_keeps_each_patient_in_one_fold_and_calibrates_once_per_patient(tmp_path):
    """End to end: a label table where patients have 1-3 ECGs; train 1 epoch on 2 folds."""
    pytest.importorskip("torch")
    from elvmass.cli import main
    from training.export import interval_calibration
    from training.synth.cohort import CohortConfig, generate_cohort

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, CohortConfig(n=30, seed=4), progress=False)
    rows = list(csv.DictReader(open(cohort / "labels.csv")))
    patient = [f"P{k // 3 if k < 18 else k}" for k in range(len(rows))]  # 6 patients with 3 ECGs, 12 with 1
    for row, pid in zip(rows, patient):
        row["subject_id"] = pid
    with open(cohort / "patients.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    run = tmp_path / "run"
    assert main(["train", "--labels", str(cohort / "patients.csv"), "--out", str(run), "--epochs", "1", "--folds", "2",
                 "--workers", "1", "--quiet", "--cache-dir", str(tmp_path / "cache")]) == 0
    predictions = list(csv.DictReader(open(run / "predictions.csv")))
    folds_of: dict[str, set] = {}
    for row in predictions:
        folds_of.setdefault(row["subject_id"], set()).add(row["fold"])
    assert any(sum(r["subject_id"] == p for r in predictions) > 1 for p in folds_of)  # repeats survived
    assert all(len(f) == 1 for f in folds_of.values()), folds_of
    assert interval_calibration(run).n_calibration == len(folds_of)


def test_dataset_applies_the_closest_ecg_rule(tmp_path):
    from training.dataset import build_dataset
    from training.synth.cohort import CohortConfig, generate_cohort

    cohort = tmp_path / "cohort"
    generate_cohort(cohort, CohortConfig(n=6, seed=9), progress=False)
    rows = list(csv.DictReader(open(cohort / "labels.csv")))
    for k, row in enumerate(rows):  # patients P0..P2, two ECGs each, one CT each; the second ECG is closer
        row.update(subject_id=f"P{k // 2}", lvm_g=rows[k - k % 2]["lvm_g"], lvm_time="2024-06-10",
                   ecg_time="2024-01-01" if k % 2 == 0 else "2024-06-08")
    with open(cohort / "timed.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    every = build_dataset(cohort / "timed.csv", cache_dir=None, progress=False)
    closest = build_dataset(cohort / "timed.csv", cache_dir=None, progress=False, closest_ecg=True)
    assert len(every) + len(every.excluded) == 6 and len(closest) + len(closest.excluded) == 3
    # closest.table_rows index the rule's 3 kept entries (patient order); each must be the patient's later ECG
    later = {int(r) // 2: j for j, r in enumerate(every.table_rows) if int(r) % 2 == 1}
    for i, kept in enumerate(closest.table_rows):
        assert closest.subject_ids[i] == f"P{int(kept)}"
        if int(kept) in later:
            assert np.array_equal(closest.beats[i], every.beats[later[int(kept)]])
