"""Scale-out: ``elvmass prepare`` on a 2-worker Dask cluster equals the single-process arrays and restarts;
distributed training under torchrun (gloo, 2 CPU processes) trains, checkpoints, resumes and matches."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("distributed")

from conftest import REPO_ROOT  # noqa: E402
from elvmass.cli import main  # noqa: E402
from training.dataset import build_dataset  # noqa: E402
from training.prepare import load_shards, prepare  # noqa: E402
from training.synth.cohort import CohortConfig, generate_cohort, write_cohort_json  # noqa: E402
from training.trainer import TrainConfig, train_model  # noqa: E402

ARRAYS = ("subject_ids", "lvm_g", "demographics", "parameters", "extra_parameters", "beats", "qrs_onset",
          "qrs_offset", "all_beats", "beat_owner")


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    config = CohortConfig(n=36, seed=11)
    rows = generate_cohort(out, config, workers=1, progress=False)
    write_cohort_json(out, config, rows, {})
    return out


@pytest.fixture(scope="module")
def shards(small_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    report = prepare(small_cohort / "labels.csv", out, shard_size=10, workers=2)
    assert report.complete and report.workers == 2 and len(report.shards) == 4 and report.n_computed == 4
    return out


def test_prepare_on_two_dask_workers_equals_the_single_process_arrays(small_cohort, shards):
    single = build_dataset(small_cohort / "labels.csv", cache_dir=None, progress=False)
    sharded = load_shards(shards)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(sharded, name), getattr(single, name), err_msg=name)
    assert sharded.excluded == single.excluded
    excluded_csv = (shards / "excluded.csv").read_text().splitlines()
    assert len(excluded_csv) == 1 + len(single.excluded)  # every failed record listed with its reason


def test_prepare_restarts_without_recomputing_finished_shards(small_cohort, shards):
    manifest = json.loads((shards / "manifest.json").read_text())
    victim = shards / manifest["shards"][2]["file"]
    kept = {s["file"]: (shards / s["file"]).stat().st_mtime_ns for s in manifest["shards"] if s["index"] != 2}
    victim.unlink()
    report = prepare(small_cohort / "labels.csv", shards, shard_size=10, workers=2)
    assert report.n_computed == 1 and [s["index"] for s in report.shards if not s["skipped"]] == [2]
    assert {f: (shards / f).stat().st_mtime_ns for f in kept} == kept
    assert victim.exists()


def test_load_shards_refuses_an_incomplete_or_foreign_folder(tmp_path, shards):
    with pytest.raises(ValueError, match="no manifest"):
        load_shards(tmp_path)
    manifest = json.loads((shards / "manifest.json").read_text())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text(json.dumps({**manifest, "complete": False, "failed_shards": [{"index": 1}]}))
    with pytest.raises(ValueError, match="incomplete"):
        load_shards(broken)
    (broken / "manifest.json").write_text(json.dumps({**manifest, "signal_core": "0" * 64}))
    with pytest.raises(ValueError, match="signal core"):
        load_shards(broken)


def test_a_record_that_fails_is_listed_not_dropped(small_cohort, tmp_path):
    lines = (small_cohort / "labels.csv").read_text().splitlines()
    (tmp_path / "records").mkdir()
    for path in (small_cohort / "records").iterdir():
        shutil.copy(path, tmp_path / "records" / path.name)
    victim = lines[1].split(",")[0]  # the first row's record: truncate its signal file
    data_file = next((tmp_path / victim).parent.glob(f"{(tmp_path / victim).stem}.dat"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    table = tmp_path / "labels.csv"
    table.write_text("\n".join(lines[:6]) + "\n")
    report = prepare(table, tmp_path / "shards", shard_size=2, workers=1)
    excluded = [row for shard in report.shards for row in shard["excluded"]]
    assert report.complete and report.n_usable + len(excluded) == 5
    assert any(Path(victim).stem in subject or Path(victim).stem in reason for subject, reason in excluded)


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
TRAIN = ["-m", "elvmass", "train", "--epochs", "3", "--folds", "2", "--quiet"]


def _torchrun(nproc: int, shards, out) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([*TORCHRUN, "--nproc-per-node", str(nproc), *TRAIN, "--shards", str(shards), "--out", str(out),
                           "--distributed"], capture_output=True, text=True, timeout=600, env=env, cwd=REPO_ROOT)


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def single_run(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    assert main(["train", "--shards", str(shards), "--out", str(out), "--epochs", "3", "--folds", "2", "--workers", "1",
                 "--quiet"]) == 0
    return out


def test_torchrun_one_process_is_single_process_training(shards, single_run, tmp_path):
    done = _torchrun(1, shards, tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _metrics(tmp_path / "run")["folds"] == _metrics(single_run)["folds"]  # bit for bit
    assert _metrics(tmp_path / "run")["timings"]["distributed"] == {"world_size": 1, "backend": "gloo", "device": "cpu"}


def test_torchrun_two_processes_train_checkpoint_resume_and_match(shards, single_run, tmp_path):
    out = tmp_path / "run"
    done = _torchrun(2, shards, out)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics, reference = _metrics(out), _metrics(single_run)
    assert metrics["timings"]["distributed"]["world_size"] == 2
    # Not bit for bit: BatchNorm statistics and dropout masks are per rank on CPU (docs/training.md).
    mae, mae_single = metrics["summary"]["mae_g"]["mean"], reference["summary"]["mae_g"]["mean"]
    assert abs(mae - mae_single) <= 0.05 * mae_single, (mae, mae_single)
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("*.pt"))
    assert checkpoints == ["fold-0-combined.pt", "fold-1-combined.pt", "fold-final-combined.pt"]
    assert (out / "model.pt").exists()
    # The same command again resumes from the finished checkpoints and gives the same run.
    again = _torchrun(2, shards, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _metrics(out)["folds"] == metrics["folds"]


def test_a_crashed_training_resumes_to_the_uninterrupted_result(shards, tmp_path):
    from training.model import ModelConfig  # lazy: heavy

    dataset = load_shards(shards)
    fit, val = dataset.subset(np.arange(0, 24)), dataset.subset(np.arange(24, len(dataset)))
    config = TrainConfig(epochs=4, batch_size=8)
    reference, *_ = train_model(ModelConfig(), config, fit, val)

    class PowerCut(Exception):
        pass

    def crash_after_two(record: dict) -> None:
        if record["epoch"] == 2:
            raise PowerCut

    checkpoint = tmp_path / "model.pt"
    with pytest.raises(PowerCut):
        train_model(ModelConfig(), config, fit, val, crash_after_two, checkpoint=checkpoint)
    resumed, _, history, _ = train_model(ModelConfig(), config, fit, val, checkpoint=checkpoint)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_checkpoints_of_another_configuration_are_refused(shards, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--shards", str(shards), "--out", str(out), "--epochs", "1", "--folds", "2", "--workers", "1",
                 "--quiet", "--checkpoints"]) == 0
    assert main(["train", "--shards", str(shards), "--out", str(out), "--epochs", "2", "--folds", "2", "--workers", "1",
                 "--quiet", "--checkpoints"]) == 2


def test_distributed_outside_torchrun_is_a_clear_error(shards, tmp_path, capsys):
    env_backup = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        assert main(["train", "--shards", str(shards), "--out", str(tmp_path / "r"), "--distributed", "--quiet"]) == 2
    finally:
        os.environ.update(env_backup)
    assert "torchrun" in capsys.readouterr().out
