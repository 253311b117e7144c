"""The result as a JSON-ready dict, and the printable PNG/PDF (matplotlib, the ``report`` extra).

matplotlib is imported only inside :func:`render_report`, so the device runtime never loads it
unless a printable report is asked for.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from edge_runtime.config import ClinicConfig
from edge_runtime.record import PatientContext, STANDARD_LEADS
from edge_runtime.runtime.estimate import Estimate, ModelInfo

DISCLAIMER_NOTE = "not clinically validated"


def disclaimer(trained_on: str | None) -> str:
    """The line every report carries: what the model was trained on, and that it is not validated."""
    text = f"Research software. Model trained on {trained_on or 'synthetic data'}"
    if DISCLAIMER_NOTE not in text:
        text += f"; {DISCLAIMER_NOTE}"
    return text + ". Not for diagnosis or treatment decisions."
STATUS_TEXT = {
    "ok": "estimate",
    "outside_population": "OUTSIDE VALIDATED POPULATION - interpret with caution",
    "no_estimate": "NO ESTIMATE",
}


def _round(value: float | None, digits: int = 1) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def build_report(estimate: Estimate, patient: PatientContext, model: ModelInfo | None, config: ClinicConfig,
                 parameters: dict[str, float] | None = None, source: str | None = None,
                 recorded_utc: str | None = None, backend: str | None = None, precision: str | None = None,
                 ) -> dict:
    """One result as a plain dict (the ``analyze --json`` object and what the store keeps).

    Keys always present: ``lvm_g``, ``lvm_interval_g``, ``lvm_index_g_m2``, ``lvh`` (true/false/null),
    ``flags`` (list of ``{"name", "reason"}``), ``n_beats``, ``model`` (``id``, ``sha256``) and
    ``estimate_status`` (``ok``, ``outside_population``, ``no_estimate``).
    """
    interval = estimate.lvm_interval_g
    bsa = patient.bsa_m2
    return {
        "estimate_status": estimate.estimate_status,
        "status_text": STATUS_TEXT[estimate.estimate_status],
        "lvm_g": _round(estimate.lvm_g),
        "lvm_interval_g": None if interval is None else [_round(interval[0]), _round(interval[1])],
        "lvm_interval_coverage": None if model is None or interval is None else model.interval_coverage,
        "lvm_interval_method": None if model is None or interval is None else model.interval_method,
        "lvm_spread_g": _round(estimate.lvm_spread_g),
        "lvm_index_g_m2": _round(estimate.lvm_index_g_m2),
        "lvh": estimate.lvh,
        "lvh_threshold_g_m2": estimate.lvh_threshold_g_m2,
        "lvh_thresholds_g_m2": {"M": config.lvh_threshold_male_g_m2, "F": config.lvh_threshold_female_g_m2},
        "flags": [flag.to_dict() for flag in estimate.flags],
        "n_beats": estimate.n_beats,
        "per_beat_lvm_g": list(estimate.per_beat_lvm_g),
        "imputed": list(estimate.imputed),
        "model": {"id": None if model is None else model.model_id, "sha256": None if model is None else model.sha256,
                  "backend": backend, "precision": precision},
        "patient": {"patient_id": patient.patient_id, "age_years": patient.age_years, "sex": patient.sex,
                    "height_cm": patient.height_cm, "weight_kg": patient.weight_kg,
                    "bsa_m2": None if bsa is None else round(bsa, 3)},
        "parameters": {k: _round(v) for k, v in (parameters or {}).items()},
        "source": source,
        "recorded_utc": recorded_utc,
        "disclaimer": disclaimer(None if model is None else model.trained_on),
    }


def summary_lines(report: dict) -> list[str]:
    """The report as a few human-readable lines (terminal output of ``run``/``analyze``/``demo``)."""
    lines = [f"status      {report['status_text']}"]
    if report["lvm_g"] is not None:
        interval = report["lvm_interval_g"]
        coverage = report.get("lvm_interval_coverage")
        approximate = str(report.get("lvm_interval_method") or "").startswith("approximate")
        kind = "approximate " if approximate else ""
        band = "" if interval is None else (f"  ({coverage:.0%} {kind}interval {interval[0]:.0f}-{interval[1]:.0f} g)"
                                            if coverage else f"  ({kind}interval {interval[0]:.0f}-{interval[1]:.0f} g)")
        lines.append(f"LV mass     {report['lvm_g']:.0f} g{band}, spread across {report['n_beats']} beats "
                     f"IQR {report['lvm_spread_g'] or 0:.0f} g")
        if report["lvm_index_g_m2"] is not None:
            verdict = {True: "LVH", False: "no LVH", None: "LVH unknown (sex unknown)"}[report["lvh"]]
            threshold = report["lvh_threshold_g_m2"]
            lines.append(f"LVM index   {report['lvm_index_g_m2']:.0f} g/m2 -> {verdict}"
                         + (f" (threshold > {threshold:g} g/m2)" if threshold is not None else ""))
        else:
            lines.append("LVH         unknown (needs sex, height and weight)")
    for flag in report["flags"]:
        lines.append(f"flag        {flag['name']}: {flag['reason']}")
    model = report["model"]
    lines.append(f"model       {model['id']} sha256 {str(model['sha256'])[:12]}"
                 + (f" ({model['backend']}, {model['precision']})" if model.get("backend") else ""))
    lines.append(report["disclaimer"])
    return lines


# --- printable report --------------------------------------------------------------------------

_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
MM_PER_S = 25.0
MM_PER_MV = 10.0


def _ecg_grid(axis, width_mm: float, height_mm: float) -> None:
    for x in np.arange(0, width_mm + 0.01, 1.0):
        major = abs(x / 5 - round(x / 5)) < 1e-6
        axis.axvline(x, color="#f4a6a6" if major else "#fbdcdc", lw=0.6 if major else 0.3, zorder=0)
    for y in np.arange(0, height_mm + 0.01, 1.0):
        major = abs(y / 5 - round(y / 5)) < 1e-6
        axis.axhline(y, color="#f4a6a6" if major else "#fbdcdc", lw=0.6 if major else 0.3, zorder=0)
    axis.set_xlim(0, width_mm)
    axis.set_ylim(0, height_mm)
    axis.set_aspect("equal")
    axis.set_xticks([])
    axis.set_yticks([])


def render_report(report: dict, signals_mv: np.ndarray, fs: float, path: str | Path,
                  beats: np.ndarray | None = None, beat_fs: float | None = None) -> Path:
    """Write the printable report (PNG or PDF by the file suffix).

    Parameters
    ----------
    report : dict
        From :func:`build_report`.
    signals_mv : ndarray, shape (12, n)
        The 10 s window, standard lead order (the conditioned signal reads best).
    fs : float
        Its rate in Hz.
    path : str or Path
        Output file, ``.png`` or ``.pdf``.
    beats : ndarray, shape (n_beats, 12, L), optional
        The synchronized beats used by the model, overlaid per lead.
    beat_fs : float, optional
        Rate of ``beats`` (default ``fs``).

    Raises
    ------
    ImportError
        When matplotlib (the ``report`` extra) is not installed.
    """
    import matplotlib  # lazy: the report extra; the device loop never loads it

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # lazy

    path = Path(path)
    signals_mv = np.asarray(signals_mv, dtype=np.float64)
    segment_s = 2.5
    segment = int(round(segment_s * fs))
    row_mm, width_mm = 30.0, 4 * segment_s * MM_PER_S  # 3 rows of 2.5 s + a 10 s rhythm strip of II
    height_mm = 4 * row_mm
    page_w_mm, page_h_mm = 297.0, 210.0  # A4 landscape; axes sized in page mm so a 100 % print is true scale
    figure = plt.figure(figsize=(page_w_mm / 25.4, page_h_mm / 25.4))
    trace_axis = figure.add_axes([(page_w_mm - width_mm) / 2 / page_w_mm, 0.355, width_mm / page_w_mm,
                                  height_mm / page_h_mm])
    _ecg_grid(trace_axis, width_mm, height_mm)
    for row, names in enumerate(_LAYOUT):
        baseline = height_mm - (row + 0.5) * row_mm
        for column, name in enumerate(names):
            lead = signals_mv[STANDARD_LEADS.index(name), column * segment:(column + 1) * segment]
            x_mm = column * segment_s * MM_PER_S + np.arange(lead.size) / fs * MM_PER_S
            y_mm = baseline + (lead - np.median(lead)) * MM_PER_MV
            trace_axis.plot(x_mm, np.clip(y_mm, 0, height_mm), color="black", lw=0.6)
            trace_axis.text(x_mm[0] + 1, baseline + 9, name, fontsize=8)
    rhythm = signals_mv[STANDARD_LEADS.index("II")]
    x_mm = np.arange(rhythm.size) / fs * MM_PER_S
    keep = x_mm <= width_mm
    trace_axis.plot(x_mm[keep], np.clip(0.5 * row_mm + (rhythm[keep] - np.median(rhythm)) * MM_PER_MV, 0, height_mm),
                    color="black", lw=0.6)
    trace_axis.text(1, 0.5 * row_mm + 9, "II", fontsize=8)
    trace_axis.set_title("25 mm/s, 10 mm/mV", fontsize=8, loc="right")

    if beats is not None and np.asarray(beats).size:
        beats = np.asarray(beats, dtype=np.float64)
        rate = beat_fs or fs
        t_ms = (np.arange(beats.shape[2])) / rate * 1000.0
        for index, name in enumerate(STANDARD_LEADS):
            axis = figure.add_axes([0.03 + index * 0.0785, 0.15, 0.072, 0.14])
            axis.plot(t_ms, beats[:, index, :].T, color="tab:blue", lw=0.4, alpha=0.5)
            axis.plot(t_ms, np.median(beats[:, index, :], axis=0), color="black", lw=0.9)
            axis.set_title(name, fontsize=7)
            axis.set_xticks([])
            axis.tick_params(labelsize=5)
        figure.text(0.03, 0.33, f"synchronized beats used by the model (n={beats.shape[0]}; black = median)",
                    fontsize=7)

    # Wrap long lines (the disclaimer) so nothing runs off the printed page.
    text = "\n".join(textwrap.fill(line, width=150, subsequent_indent=" " * 12) for line in summary_lines(report))
    figure.text(0.03, 0.01, text, fontsize=7.5, family="monospace", va="bottom")
    patient = {k: ("-" if v is None else (f"{v:g}" if isinstance(v, float) else v)) for k, v in report["patient"].items()}
    figure.text(0.03, 0.955, f"eLVMass-style LV mass report   id {patient['patient_id']}   age {patient['age_years']}  "
                f"sex {patient['sex']}  height {patient['height_cm']} cm  weight {patient['weight_kg']} kg   "
                f"{report.get('recorded_utc') or ''}", fontsize=9, weight="bold")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path
