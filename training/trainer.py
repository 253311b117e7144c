"""Training one model and cross-validating a configuration on the paper's folds.

One fold = impute with the training-fold medians -> fit the baked-in normalization on the
training fold -> AdamW + cosine schedule on the MAE (L1) loss -> keep the epoch with the lowest
MAE on a validation subset of the training folds -> score the untouched test fold. Folds (and the
final all-data model) run in parallel processes with one torch thread each: on a shared 2-core
machine, 2 threads in one process spin-wait and run ~10x slower than 1 (measured, docs/training.md).
"""

from __future__ import annotations

import copy
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edge_runtime import contract
from edge_runtime.contract import SEX_COLUMN
from training.dataset import EcgDataset
from training.folds import paper_folds, validation_split
from training.metrics import LvhThresholds, score_fold, summarize_folds

INPUT_MODES = ("beat", "full", "crop")


@dataclass(frozen=True)
class TrainConfig:
    """Optimization and protocol settings (saved with every run)."""

    input_mode: str = "beat"
    beats: str = "clean"  # 'beat' mode: train on a random clean beat per subject per epoch, score the median
    #                       over the clean beats (as the device does); 'middle': the middle beat only (paper)
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    seed: int = 0
    crop_min_s: float = 2.0  # 'crop' mode: random synchronized windows of 2..10 s
    threads: int = 1
    ensemble: int = 1  # independently seeded networks per model, trained on the same data, averaged
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (Polyak)
    monotone_weight: float = 0.0  # > 0: add this x the voltage-monotonicity hinge (training.monotone) to the MAE

    def __post_init__(self) -> None:
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode {self.input_mode!r} not in {INPUT_MODES}")
        if self.beats not in ("clean", "middle"):
            raise ValueError(f"beats {self.beats!r} not in ('clean', 'middle')")
        if self.epochs < 1 or self.batch_size < 1 or self.ensemble < 1:
            raise ValueError("epochs, batch_size and ensemble must be >= 1")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.monotone_weight < 0.0 or (self.monotone_weight > 0.0 and self.input_mode != "beat"):
            raise ValueError("monotone_weight must be >= 0, and is for the beat input mode only")

    def to_dict(self) -> dict:
        return asdict(self)


def fit_medians(demographics: np.ndarray, parameters: np.ndarray) -> dict[str, float]:
    """Training-fold medians of every imputable input (NaN-aware), keyed as in the bundle manifest."""
    columns = {name: demographics[:, i] for i, name in enumerate(contract.DEMOGRAPHIC_FEATURES)}
    columns |= {name: parameters[:, i] for i, name in enumerate(contract.MODEL_PARAMETERS)}
    medians = {name: float(np.nanmedian(columns[name])) for name in contract.IMPUTED_FEATURES}
    bad = [k for k, v in medians.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"no known value of {bad} in the training data: cannot impute")
    return medians


def impute(demographics: np.ndarray, parameters: np.ndarray, medians: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """float32 copies with NaN replaced by the medians (:func:`edge_runtime.contract.impute`); sex must be
    known: it is never imputed."""
    if np.isnan(demographics[:, SEX_COLUMN]).any():
        raise ValueError("sex is unknown for some subjects: it is an input and is never imputed")
    return contract.impute(demographics, parameters, medians)


def model_input(dataset: EcgDataset, mode: str) -> np.ndarray:
    """The ECG tensor a mode feeds the model: middle beat, or the conditioned 10 s window."""
    if mode == "beat":
        return dataset.beats
    if dataset.full is None:
        raise ValueError(f"input mode {mode!r} needs the 10 s windows: build the dataset with include_full=True")
    return dataset.full


def beat_groups(dataset: EcgDataset) -> tuple[np.ndarray, np.ndarray]:
    """Start and count of each subject's clean beats in ``dataset.all_beats`` (grouped by subject)."""
    if dataset.all_beats is None:
        raise ValueError("the dataset has no clean-beat arrays (rebuild its cache)")
    counts = np.bincount(dataset.beat_owner, minlength=len(dataset))
    if np.any(counts == 0):
        raise ValueError("a subject has no clean beat")
    return np.concatenate([[0], np.cumsum(counts)[:-1]]), counts


def predict_subjects(model, dataset: EcgDataset, mode: str, beats: str, demographics: np.ndarray,
                     parameters: np.ndarray) -> np.ndarray:
    """One estimate per subject: the median over its clean beats, or the model on its single input."""
    if mode != "beat" or beats == "middle":
        return predict(model, model_input(dataset, mode), demographics, parameters)
    owner = dataset.beat_owner
    per_beat = predict(model, dataset.all_beats, demographics[owner], parameters[owner])
    starts, counts = beat_groups(dataset)
    return np.array([np.median(per_beat[a:a + c]) for a, c in zip(starts, counts)])


def _random_crop(batch: np.ndarray, rng: np.random.Generator, fs: float, min_s: float) -> np.ndarray:
    """One random-length window, the same for all 12 leads and all rows of the batch (synchronized)."""
    n = batch.shape[2]
    length = int(rng.integers(int(min_s * fs), n + 1))
    start = int(rng.integers(0, n - length + 1))
    return batch[:, :, start:start + length]


def train_model(model_config, config: TrainConfig, fit: EcgDataset, val: EcgDataset,
                on_epoch: Callable[[dict], None] | None = None, *, dist=None, checkpoint: Path | None = None):
    """Train one network (``model_config.build()``: ElvMassNet or a baseline CNN).

    Returns ``(model, medians, history, best_epoch)``.

    The model's normalization buffers and the imputation medians come from ``fit`` only; the
    returned weights are those of the epoch with the lowest validation MAE. With ``dist``
    (:class:`training.distributed.DistContext`) each rank trains on its slice of every global batch under
    DDP. With ``checkpoint`` the state is saved after every epoch and a run that finds it resumes there
    (the result equals an uninterrupted run's).
    """
    import torch

    from training.distributed import load_checkpoint, save_checkpoint

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = dist.device if dist is not None else default_device()
    if config.input_mode != "beat" and getattr(model_config, "stem_stride", None) == 4:
        model_config = replace(model_config, stem_stride=16)  # 10 s input: decimate harder to stay in budget
    medians = fit_medians(fit.demographics, fit.parameters)
    x_fit, x_val = model_input(fit, config.input_mode), model_input(val, config.input_mode)
    d_fit, p_fit = impute(fit.demographics, fit.parameters, medians)
    d_val, p_val = impute(val.demographics, val.parameters, medians)
    model = model_config.build()
    model.fit_normalization(x_fit, d_fit, p_fit, fit.lvm_g)
    model.to(device)
    net = model if dist is None else dist.wrap(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(fit) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, epochs=config.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.15)
    t_x, t_d, t_p = torch.from_numpy(x_fit), torch.from_numpy(d_fit), torch.from_numpy(p_fit)
    t_y = torch.from_numpy(fit.lvm_g.astype(np.float32))
    per_beat = config.input_mode == "beat" and config.beats == "clean"
    if per_beat:  # the subject's clean beats and, when built, its augmented copies' (dataset.add_augmented_beats)
        pool, starts, counts = fit.training_beat_pool()
        t_all = torch.from_numpy(pool)
    if config.monotone_weight > 0:  # each subject's QRS in its beat window (its clean beats are aligned on R)
        from training.monotone import monotone_hinge, qrs_gain_profile, raised_voltage

        t_qrs = torch.from_numpy(qrs_gain_profile(fit.qrs_onset, fit.qrs_offset, x_fit.shape[2], fit.preprocess.fs))
    # Weight averaging (Polyak / EMA, buffers included so BatchNorm statistics match the averaged weights):
    # the validation MAE of single-beat training jumps by ~1 g between epochs; the average is what is
    # validated, kept and shipped.
    ema = None
    if config.ema_decay > 0:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    scored = model if ema is None else ema.module
    best = (math.inf, 0, copy.deepcopy(scored.state_dict()))
    history: list[dict] = []
    first_epoch = 1
    saved = load_checkpoint(checkpoint) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"][0 if dist is None else dist.rank])
        best, history, first_epoch = (saved["best_mae"], saved["best_epoch"], saved["best_state"]), saved["history"], saved["epoch"] + 1
    for epoch in range(first_epoch, config.epochs + 1):
        start = time.perf_counter()
        net.train()
        order = torch.from_numpy(rng.permutation(len(fit)))
        total = 0.0
        for i in range(0, len(fit), config.batch_size):
            rows = order[i:i + config.batch_size]
            if per_beat:  # one random clean beat of each subject in the batch
                pick = starts[rows.numpy()] + (rng.random(len(rows)) * counts[rows.numpy()]).astype(np.int64)
                xb = t_all[torch.from_numpy(pick)]
            else:
                xb = t_x[rows]
            if config.input_mode == "crop":
                xb = torch.from_numpy(_random_crop(xb.numpy(), rng, fit.preprocess.fs, config.crop_min_s))
            n_global, mine = len(rows), slice(None) if dist is None else dist.rows(len(rows))
            xb, db, pb, yb = xb[mine].to(device), t_d[rows][mine].to(device), t_p[rows][mine].to(device), t_y[rows][mine]
            if config.monotone_weight > 0:  # the beats and their raised twins in one batch (shared BatchNorm statistics)
                raised, margin_g = raised_voltage(xb, t_qrs[rows][mine], rng)
                estimate, estimate_raised = net(torch.cat([xb, raised]), torch.cat([db, db]),
                                                torch.cat([pb, pb])).squeeze(1).split(len(xb))
                penalty = config.monotone_weight * monotone_hinge(estimate, estimate_raised, margin_g).sum()
            else:
                estimate, penalty = net(xb, db, pb).squeeze(1), 0.0
            errors = torch.abs(estimate - yb.to(device))
            # DDP averages gradients over ranks: scale each rank's sum so the average is the global batch's mean
            loss = (errors.sum() + penalty) / n_global * (1 if dist is None else dist.world_size)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if ema is not None:
                ema.update_parameters(model)
            total += float(errors.sum().item())
        if dist is not None:
            total = dist.sum(total)
            dist.sync_buffers(model)
            if ema is not None:
                dist.sync_buffers(ema.module)
        val_mae = float(np.mean(np.abs(predict_subjects(scored, val, config.input_mode, config.beats, d_val, p_val)
                                       - val.lvm_g)))
        record = {"epoch": epoch, "train_mae_g": total / len(fit), "val_mae_g": val_mae,
                  "seconds": time.perf_counter() - start}
        history.append(record)
        if val_mae < best[0]:
            best = (val_mae, epoch, copy.deepcopy(scored.state_dict()))
        if checkpoint is not None:
            torch_rng = [torch.get_rng_state()] if dist is None else dist.gather(torch.get_rng_state())
            if dist is None or dist.is_main:
                save_checkpoint(checkpoint, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                             "schedule": schedule.state_dict(), "numpy_rng": rng.bit_generator.state,
                                             "torch_rng": torch_rng, "history": history, "best_mae": best[0],
                                             "best_epoch": best[1], "best_state": best[2],
                                             **({} if ema is None else {"ema": ema.state_dict()})})
            if dist is not None:
                dist.barrier()  # no rank runs ahead of a checkpoint another might resume from
        if on_epoch is not None:
            on_epoch(record)
    model.load_state_dict(best[2])
    model.eval()
    return model, medians, history, best[1]


def default_device() -> str:
    """``cuda`` when a GPU is present, else ``cpu`` (the default on the device and in CI)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def predict(model, x: np.ndarray, demographics: np.ndarray, parameters: np.ndarray, batch: int = 256) -> np.ndarray:
    """Estimates in grams (inputs already imputed), in eval mode, without gradients."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])).to(device),
                             torch.from_numpy(demographics[i:i + batch].astype(np.float32)).to(device),
                             torch.from_numpy(parameters[i:i + batch].astype(np.float32)).to(device)).cpu().numpy()[:, 0])
    model.train(was_training)
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


@dataclass
class TrainedModel:
    """A trained model (or a male/female pair) with its imputation medians."""

    models: dict  # {"combined": model} or {"male": model, "female": model}
    medians: dict[str, float]
    best_epochs: dict[str, int]
    histories: dict[str, list[dict]]

    def predict(self, dataset: EcgDataset, mode: str, beats: str = "clean") -> np.ndarray:
        demo, params = impute(dataset.demographics, dataset.parameters, self.medians)
        if "combined" in self.models:
            return predict_subjects(self.models["combined"], dataset, mode, beats, demo, params)
        out = np.full(len(dataset), np.nan)
        for name, code in (("male", 1.0), ("female", 0.0)):
            rows = np.flatnonzero(demo[:, SEX_COLUMN] == code)
            if rows.size:
                out[rows] = predict_subjects(self.models[name], dataset.subset(rows), mode, beats, demo[rows], params[rows])
        return out


def train_variant(dataset: EcgDataset, train_index: np.ndarray, model_config, config: TrainConfig,
                  sex_specific: bool, on_epoch: Callable[[dict], None] | None = None, *, dist=None,
                  checkpoint_stem: Path | None = None) -> TrainedModel:
    """Train on ``train_index`` (split into fit/validation by the paper's rule), one model or one per sex.

    ``dist`` and ``checkpoint_stem`` (``DIR/fold-0``: one ``DIR/fold-0-<model>.pt`` per model) go to
    :func:`train_model`."""
    groups = {"combined": train_index}
    if sex_specific:
        sex = dataset.demographics[train_index, SEX_COLUMN]
        groups = {"male": train_index[sex == 1.0], "female": train_index[sex == 0.0]}
    models, histories, best_epochs, medians = {}, {}, {}, None
    for name, index in groups.items():
        fit_index, val_index = validation_split(dataset.lvm_g, index, config.val_fraction, config.seed,
                                                 groups=dataset.subject_ids)  # patients, never ECGs
        fit, val = dataset.subset(fit_index), dataset.subset(val_index)
        checkpoint = None if checkpoint_stem is None else checkpoint_stem.with_name(f"{checkpoint_stem.name}-{name}.pt")
        members = []
        for member in range(config.ensemble):  # member 0 is exactly the single model; the others change seed only
            member_config = config if member == 0 else replace(config, seed=config.seed + 1000 * member)
            member_checkpoint = checkpoint if checkpoint is None or member == 0 else \
                checkpoint.with_name(f"{checkpoint.stem}-m{member}.pt")
            key = name if member == 0 else f"{name}-m{member}"
            callback = None if on_epoch is None else (lambda record, key=key: on_epoch({**record, "model": key}))
            model, fitted_medians, history, best_epoch = train_model(model_config, member_config, fit, val, callback,
                                                                     dist=dist, checkpoint=member_checkpoint)
            members.append(model)
            histories[key], best_epochs[key] = history, best_epoch
        if len(members) > 1:
            from training.model import ElvMassEnsemble

            if not all(hasattr(m, "encoders") for m in members):
                raise ValueError("ensembles are of ElvMassNet models only")
            model = ElvMassEnsemble(members).eval()
        models[name] = model
        medians = fitted_medians if medians is None else medians
    if sex_specific:  # one imputation table for the bundle: medians of the whole training set
        fit_index, _ = validation_split(dataset.lvm_g, train_index, config.val_fraction, config.seed,
                                        groups=dataset.subject_ids)
        medians = fit_medians(dataset.demographics[fit_index], dataset.parameters[fit_index])
    return TrainedModel(models, medians, best_epochs, histories)


def _fold_job(args, dist=None, checkpoint_dir: Path | None = None) -> dict:
    dataset, train_index, test_index, model_config, config, sex_specific, fold, queue = args

    def on_epoch(record: dict) -> None:
        if queue is not None:
            queue.put({**record, "fold": fold})

    start, cpu = time.perf_counter(), time.process_time()
    stem = None if checkpoint_dir is None else Path(checkpoint_dir) / f"fold-{fold}"
    trained = train_variant(dataset, train_index, model_config, config, sex_specific, on_epoch, dist=dist,
                            checkpoint_stem=stem)
    result = {"fold": fold, "trained": trained, "wall_s": time.perf_counter() - start,
              "cpu_s": time.process_time() - cpu}
    if test_index is not None:
        result["test_index"] = test_index
        result["prediction"] = trained.predict(dataset.subset(test_index), config.input_mode, config.beats)
        if config.ensemble > 1 and "combined" in trained.models:  # each member alone, to measure what averaging buys
            test = dataset.subset(test_index)
            demo, params = impute(test.demographics, test.parameters, trained.medians)
            result["member_predictions"] = np.stack([
                predict_subjects(member, test, config.input_mode, config.beats, demo, params)
                for member in trained.models["combined"].members])
    for model in trained.models.values():  # a CUDA tensor sent to the parent would be a CUDA IPC handle into
        model.cpu()                         # this worker, which the pool ends; weights travel and save on the CPU
    return result


@dataclass
class CvResult:
    """Out-of-fold predictions, per-fold metrics and their summary (+ the final model when trained)."""

    folds: np.ndarray
    prediction: np.ndarray
    fold_metrics: list[dict]
    summary: dict
    best_epochs: list[dict]
    timings: list[dict]
    final: TrainedModel | None
    member_predictions: np.ndarray | None = None  # (members, subjects) out-of-fold, ensembles only


def cross_validate(dataset: EcgDataset, model_config, config: TrainConfig, *, n_folds: int = 5,
                   sex_specific: bool = False, train_final: bool = True, workers: int = 2,
                   thresholds: LvhThresholds = LvhThresholds(), noise_floor_mae: float | None = None,
                   log: Callable[[str], None] | None = None, progress: bool = True, dist=None,
                   checkpoint_dir: Path | None = None, final_holdout: np.ndarray | None = None) -> CvResult:
    """The paper's protocol for one configuration; fold jobs (and the final model) run in ``workers`` processes.

    With ``dist`` (under torchrun) the jobs run one after another, each trained data-parallel by every rank;
    with ``checkpoint_dir`` every model is checkpointed per epoch and a re-run resumes where it stopped.

    The final model is retrained on ALL subjects (its own validation subset picks the epoch), not
    taken from the best fold; the CV numbers estimate how that procedure generalizes.
    ``final_holdout`` (subject indices) are left out of the final model only (the CV folds use every
    subject), so the quantization check can compare INT8 with fp32 on rows the shipped model never saw.
    """
    from tqdm import tqdm

    if config.input_mode == "beat" and dataset.full is not None:  # do not ship 10 s windows to workers
        dataset = replace(dataset, full=None)
    if (config.input_mode != "beat" or config.beats == "middle") and dataset.all_beats is not None:
        dataset = replace(dataset, all_beats=None, beat_owner=None)
    folds = paper_folds(dataset.lvm_g, n_folds, groups=dataset.subject_ids)  # every ECG of a patient in one fold
    jobs = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k), k) for k in range(n_folds)]
    if train_final:
        final_index = np.arange(len(dataset))
        if final_holdout is not None and len(final_holdout):
            final_index = np.setdiff1d(final_index, final_holdout)
        jobs.append((final_index, None, "final"))
    n_models = (2 if sex_specific else 1) * config.ensemble
    bar = tqdm(total=len(jobs) * config.epochs * n_models, desc="epochs", disable=not progress, smoothing=0.05)

    def handle(record: dict) -> None:
        bar.update(1)
        bar.set_postfix(fold=record["fold"], val_mae=f"{record['val_mae_g']:.2f}")
        if log is not None:
            log(f"fold {record['fold']} {record['model']} epoch {record['epoch']:3d} train_mae {record['train_mae_g']:.2f} "
                f"val_mae {record['val_mae_g']:.2f} g ({record['seconds']:.1f} s)")

    if dist is not None or checkpoint_dir is not None:
        results = [_fold_job((dataset, tr, te, model_config, config, sex_specific, k, _Direct(handle)), dist, checkpoint_dir)
                   for tr, te, k in jobs]
    else:
        results = _run_jobs(dataset, jobs, model_config, config, sex_specific, workers, handle)
    bar.close()
    prediction = np.full(len(dataset), np.nan)
    members = np.full((config.ensemble, len(dataset)), np.nan) if config.ensemble > 1 and not sex_specific else None
    fold_metrics, best_epochs, timings, final = [], [], [], None
    for result in sorted(results, key=lambda r: (r["fold"] == "final", str(r["fold"]))):
        timings.append({"fold": result["fold"], "wall_s": result["wall_s"], "cpu_s": result["cpu_s"]})
        best_epochs.append({"fold": result["fold"], **result["trained"].best_epochs})
        if result["fold"] == "final":
            final = result["trained"]
            continue
        index = result["test_index"]
        prediction[index] = result["prediction"]
        if members is not None:
            members[:, index] = result["member_predictions"]
        metrics = score_fold(dataset.lvm_g[index], result["prediction"], dataset.demographics[index],
                             thresholds, noise_floor_mae)
        fold_metrics.append({"fold": result["fold"], **metrics})
    return CvResult(folds, prediction, fold_metrics, summarize_folds(fold_metrics), best_epochs, timings, final,
                    members)


class _Direct:
    """A queue stand-in that hands epoch records straight to the handler (jobs in this process)."""

    def __init__(self, handle: Callable[[dict], None]) -> None:
        self.handle = handle

    def put(self, record: dict) -> None:
        self.handle(record)


def _run_jobs(dataset, jobs, model_config, config, sex_specific, workers, handle) -> list[dict]:
    if workers <= 1:
        direct = _Direct(handle)
        return [_fold_job((dataset, tr, te, model_config, config, sex_specific, k, direct)) for tr, te, k in jobs]
    import multiprocessing
    import queue as queue_module

    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with context.Manager() as manager:
        events = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_fold_job, (dataset, tr, te, model_config, config, sex_specific, k, events))
                       for tr, te, k in jobs]
            while not all(f.done() for f in futures):
                try:
                    handle(events.get(timeout=0.5))
                except queue_module.Empty:
                    pass
            while not events.empty():
                handle(events.get())
            return [f.result() for f in futures]
