"""The paper's ablation tables on one set of folds: input mode (1a), lead grouping (1b), feature set (1c),
sex-specific vs one model, and the baselines; paired fold-wise tests against the default configuration."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from training.metrics import LvhThresholds, paired_fold_test

DEFAULT = {"input_mode": "beat", "beats": "clean", "grouping": "electrical", "features": "ecg+demo+params",
           "sex_specific": False}
TABLES: dict[str, tuple[str, list[dict]]] = {
    "1a": ("Table 1a: input mode", [{"input_mode": m} for m in ("beat", "full", "crop")]),
    "1b": ("Table 1b: lead grouping", [{"grouping": g} for g in ("electrical", "none", "anatomical")]),
    "1c": ("Table 1c: feature set", [{"features": f} for f in ("ecg", "ecg+params", "ecg+demo", "ecg+demo+params")]),
    "sex": ("Sex-specific models vs one model", [{"sex_specific": False}, {"sex_specific": True}]),
    "beats": ("Beats used (single-beat input): median over clean beats vs middle beat only",
              [{"beats": "clean"}, {"beats": "middle"}]),
}
ROW_METRICS = ("mae_g", "mape_pct", "c_statistic", "accuracy", "sensitivity", "specificity", "ppv", "f1")


def variant_name(settings: dict) -> str:
    s = {**DEFAULT, **settings}
    mode = s["input_mode"] + ("" if s["input_mode"] != "beat" or s["beats"] == "clean" else "(middle)")
    return f"{mode}/{s['grouping']}/{s['features']}" + ("/sex-specific" if s["sex_specific"] else "")


def run_ablation(dataset, *, tables: tuple[str, ...] = ("1a", "1b", "1c", "sex", "beats", "baselines"), epochs: int = 60,
                 cnn_epochs: int = 40, seed: int = 0, n_folds: int = 5, workers: int = 2,
                 thresholds: LvhThresholds = LvhThresholds(), noise_floor_mae: float | None = None,
                 progress: bool = True, log=None, parallel_variants: int = 1, on_variant=None) -> dict:
    """Train every distinct configuration once (shared across tables) and collect per-fold metrics.

    ``parallel_variants`` configurations train at once, each with ``workers`` fold processes (on a
    many-core machine every core stays busy instead of waiting for the slowest fold of each variant);
    results do not depend on it. ``on_variant(name, run)`` is called (one call at a time) as each configuration
    finishes, so a caller can save finished variants before the whole ablation ends.
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from training.baselines import BASELINES, run_baselines
    from training.model import ModelConfig
    from training.trainer import TrainConfig, cross_validate

    if parallel_variants > 1 and workers < 2:  # in-process folds of several threads would share torch's global RNG
        raise ValueError("parallel_variants > 1 needs workers >= 2 (each fold in its own process)")
    wanted: dict[str, dict] = {}
    for settings in [DEFAULT] + [{**DEFAULT, **row} for table in tables if table in TABLES for row in TABLES[table][1]]:
        wanted.setdefault(variant_name(settings), settings)
    finished = threading.Lock()

    def train_variant(name: str, settings: dict) -> dict:
        start = time.perf_counter()
        cv = cross_validate(
            dataset, ModelConfig(grouping=settings["grouping"], features=settings["features"]),
            TrainConfig(input_mode=settings["input_mode"], beats=settings["beats"], epochs=epochs, seed=seed),
            n_folds=n_folds, sex_specific=settings["sex_specific"], train_final=False, workers=workers,
            thresholds=thresholds, noise_floor_mae=noise_floor_mae, log=log,
            progress=progress and parallel_variants <= 1)
        run = {"settings": settings, "folds": cv.fold_metrics, "summary": cv.summary,
               "wall_s": time.perf_counter() - start, "best_epochs": cv.best_epochs}
        if log is not None:
            log(f"{name}: MAE {cv.summary['mae_g']['mean']:.2f} +- {cv.summary['mae_g']['sd']:.2f} g "
                f"({run['wall_s']:.0f} s)")
        if on_variant is not None:
            with finished:
                on_variant(name, run)
        return run

    with ThreadPoolExecutor(max_workers=max(1, parallel_variants)) as pool:  # threads only wait on fold processes
        futures = {name: pool.submit(train_variant, name, settings) for name, settings in wanted.items()}
        runs: dict[str, dict] = {name: future.result() for name, future in futures.items()}
    if "baselines" in tables:
        start = time.perf_counter()
        for name, result in run_baselines(dataset, names=BASELINES, n_folds=n_folds, seed=seed, cnn_epochs=cnn_epochs,
                                          workers=workers, thresholds=thresholds, noise_floor_mae=noise_floor_mae,
                                          progress=progress, log=log).items():
            runs[f"baseline:{name}"] = {"settings": {"baseline": name}, "folds": result["folds"],
                                        "summary": result["summary"]}
        runs["baseline:all"] = {"wall_s": time.perf_counter() - start}
    default_mae = [f["mae_g"] for f in runs[variant_name(DEFAULT)]["folds"]]
    for name, run in runs.items():
        if "folds" in run and name != variant_name(DEFAULT):
            run["vs_default"] = paired_fold_test([f["mae_g"] for f in run["folds"]], default_mae)
    return {"runs": runs, "tables": list(tables), "default": variant_name(DEFAULT), "epochs": epochs,
            "cnn_epochs": cnn_epochs, "seed": seed, "n_folds": n_folds, "n_subjects": len(dataset),
            "data_hash": dataset.data_hash}


def _row(label: str, run: dict) -> str:
    cells = [f"{run['summary'][m]['mean']:.3f}±{run['summary'][m]['sd']:.3f}" if m != "mae_g"
             else f"{run['summary'][m]['mean']:.2f}±{run['summary'][m]['sd']:.2f}" for m in ROW_METRICS]
    test = run.get("vs_default")
    p = f"{test['t_test_p']:.3g}/{test['wilcoxon_p']:.3g}" if test else "(reference)"
    return f"  {label:34s} " + " ".join(f"{c:>13s}" for c in cells) + f"  {p}"


def format_tables(result: dict) -> str:
    """The paper's layout: one block per table, one row per variant, metrics mean±SD over folds."""
    header = f"  {'':34s} " + " ".join(f"{m:>13s}" for m in ROW_METRICS) + "  p vs default (t/Wilcoxon)"
    lines = [f"{result['n_folds']}-fold CV on {result['n_subjects']} subjects, seed {result['seed']}, "
             f"{result['epochs']} epochs; MAE in g, MAPE in %"]
    runs = result["runs"]
    for table in result["tables"]:
        if table == "baselines":
            lines += ["", "Baselines (same folds)", header, _row(f"eLVMass-Net ({result['default']})", runs[result["default"]])]
            lines += [_row(name.split(":", 1)[1], run) for name, run in runs.items()
                      if name.startswith("baseline:") and "folds" in run]
            continue
        title, rows = TABLES[table]
        lines += ["", title, header]
        for row in rows:
            name = variant_name({**DEFAULT, **row})
            lines.append(_row(name, runs[name]))
    lines.append("")
    lines.append("With 5 folds the smallest two-sided Wilcoxon p is 0.0625; the paired t-test is the sharper one.")
    return "\n".join(lines)


def to_json(result: dict) -> dict:
    """Plain-JSON copy (floats, no numpy)."""
    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        if dataclasses.is_dataclass(value):
            return clean(dataclasses.asdict(value))
        return value

    return clean(result)
