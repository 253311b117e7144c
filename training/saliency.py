"""Gradient saliency |d lvm_g / d beat| and its share per ECG segment (the paper's Table 3 layout).

Segments come from OUR delineation (signal core): QRS = [QRS onset, QRS offset]; PR = the PR
interval before QRS onset (``pr_ms``; 160 ms when unknown); ST-T = after QRS offset up to QRS onset
+ ``qt_ms`` (400 ms when unknown); TP = the rest of the beat window. Importance of a segment = its
share of the summed |gradient| over a lead group (limb or precordial), per subject, averaged
within LV-mass tertiles.
"""

from __future__ import annotations

import numpy as np

SEGMENTS = ("PR", "QRS", "ST-T", "TP")
LEAD_GROUPS = {"limb": slice(0, 6), "precordial": slice(6, 12)}
DEFAULT_PR_MS, DEFAULT_QT_MS = 160.0, 400.0


def gradient_saliency(model, beats: np.ndarray, demographics: np.ndarray, parameters: np.ndarray,
                      batch: int = 128) -> np.ndarray:
    """|d output / d beat| per sample, shape like ``beats`` (inputs already imputed; eval mode)."""
    import torch

    model = model.eval()
    out = []
    for i in range(0, len(beats), batch):
        x = torch.from_numpy(np.ascontiguousarray(beats[i:i + batch], dtype=np.float32)).requires_grad_(True)
        y = model(x, torch.from_numpy(demographics[i:i + batch].astype(np.float32)),
                  torch.from_numpy(parameters[i:i + batch].astype(np.float32)))
        (grad,) = torch.autograd.grad(y.sum(), x)  # rows are independent in eval mode
        out.append(grad.abs().numpy())
    return np.concatenate(out)


def segment_masks(length: int, qrs_onset: int, qrs_offset: int, pr_ms: float, qt_ms: float, fs: float) -> dict[str, np.ndarray]:
    """Boolean masks over the beat window for PR, QRS, ST-T and TP (disjoint, covering the window)."""
    index = np.arange(length)
    pr = DEFAULT_PR_MS if not np.isfinite(pr_ms) else pr_ms
    qt = DEFAULT_QT_MS if not np.isfinite(qt_ms) else qt_ms
    p_onset = qrs_onset - int(round(pr * fs / 1000.0))
    t_end = qrs_onset + int(round(qt * fs / 1000.0))
    masks = {
        "PR": (index >= p_onset) & (index < qrs_onset),
        "QRS": (index >= qrs_onset) & (index <= qrs_offset),
        "ST-T": (index > qrs_offset) & (index <= t_end),
    }
    masks["TP"] = ~(masks["PR"] | masks["QRS"] | masks["ST-T"])
    return masks


def segment_importance(saliency: np.ndarray, dataset) -> np.ndarray:
    """(n, 2 lead groups, 4 segments): each subject's share of |gradient| per segment within a lead group."""
    n, _, length = saliency.shape
    fs = dataset.preprocess.fs
    shares = np.zeros((n, len(LEAD_GROUPS), len(SEGMENTS)))
    for i in range(n):
        masks = segment_masks(length, int(dataset.qrs_onset[i]), int(dataset.qrs_offset[i]),
                              dataset.extra_parameters[i, 0], dataset.extra_parameters[i, 1], fs)
        for g, leads in enumerate(LEAD_GROUPS.values()):
            per_sample = saliency[i, leads].sum(axis=0)
            total = per_sample.sum()
            for s, name in enumerate(SEGMENTS):
                shares[i, g, s] = per_sample[masks[name]].sum() / total if total > 0 else np.nan
    return shares


def tertile_table(shares: np.ndarray, lvm_g: np.ndarray) -> dict:
    """Mean share per (LV-mass tertile, lead group, segment); also ``all`` subjects and the lead-group split."""
    edges = np.quantile(lvm_g, [1 / 3, 2 / 3])
    tertile = np.digitize(lvm_g, edges)
    table = {}
    for label, rows in [("all", np.ones(len(lvm_g), bool))] + [
            (f"T{t + 1} ({lo:.0f}-{hi:.0f} g)", tertile == t)
            for t, (lo, hi) in enumerate(zip([lvm_g.min(), *edges], [*edges, lvm_g.max()]))]:
        table[label] = {group: {seg: float(np.nanmean(shares[rows, g, s])) for s, seg in enumerate(SEGMENTS)}
                        for g, group in enumerate(LEAD_GROUPS)}
        table[label]["n"] = int(rows.sum())
    return table


def group_share(saliency: np.ndarray) -> dict[str, float]:
    """Share of all |gradient| falling on limb vs precordial leads (mean over subjects)."""
    totals = np.stack([saliency[:, leads].sum(axis=(1, 2)) for leads in LEAD_GROUPS.values()], axis=1)
    shares = totals / totals.sum(axis=1, keepdims=True)
    return {group: float(shares[:, g].mean()) for g, group in enumerate(LEAD_GROUPS)}


def format_table(table: dict, groups: dict[str, float]) -> str:
    """Table 3 layout: rows = tertile x lead group, columns = segments (share of |gradient|, %)."""
    lines = [f"{'':24s} {'leads':11s} " + " ".join(f"{s:>7s}" for s in SEGMENTS)]
    for label, row in table.items():
        for group in LEAD_GROUPS:
            lines.append(f"{label:24s} {group:11s} " + " ".join(f"{100 * row[group][s]:6.1f}%" for s in SEGMENTS))
    lines.append("share of |gradient| by lead group: " + ", ".join(f"{g} {100 * v:.1f}%" for g, v in groups.items()))
    return "\n".join(lines)


def plot_overlay(beat: np.ndarray, saliency: np.ndarray, path, title: str, qrs: tuple[int, int] | None = None,
                 fs: float = 500.0) -> None:
    """12-lead beat with its |gradient| as a colour band underneath each trace (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge_runtime.record import STANDARD_LEADS

    t_ms = np.arange(beat.shape[1]) * 1000.0 / fs
    fig, axes = plt.subplots(6, 2, figsize=(10, 11), sharex=True)
    peak = float(saliency.max()) or 1.0
    for lead in range(12):
        ax = axes[lead % 6, lead // 6]
        ax.imshow(saliency[lead][None, :] / peak, aspect="auto", cmap="Reds", vmin=0, vmax=1,
                  extent=(t_ms[0], t_ms[-1], beat.min() - 0.1, beat.max() + 0.1), alpha=0.8)
        ax.plot(t_ms, beat[lead], color="black", linewidth=0.9)
        if qrs is not None:
            for x in qrs:
                ax.axvline(x * 1000.0 / fs, color="tab:blue", linewidth=0.6, linestyle="--")
        ax.set_ylabel(f"{STANDARD_LEADS[lead]} (mV)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("ms in beat window")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
