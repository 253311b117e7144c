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
from edge_runtime.flags import Flag
from edge_runtime.record import PatientContext, STANDARD_LEADS
from edge_runtime.runtime.estimate import Estimate, ModelInfo
from edge_runtime.runtime.patient import (
    PATIENT_FIELDS, PatientConflict, PatientData, field_word, format_value, operator_only,
)

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
                 provenance: PatientData | None = None) -> dict:
    """One result as a plain dict (the ``analyze --json`` object and what the store keeps).

    Keys always present: ``lvm_g``, ``lvm_interval_g``, ``lvm_index_g_m2``, ``lvh`` (true/false/null),
    ``flags`` (list of ``{"name", "consequence", "operator_text", "reason"}``), ``n_beats``, ``model``
    (``id``, ``sha256``) and ``estimate_status`` (``ok``, ``outside_population``, ``no_estimate``); since
    issue 18 also ``lvm_index_interval_g_m2``, ``lvh_verdict`` (``"LVH"``, ``"no LVH"``, ``"borderline"``,
    null), ``lvh_verdict_text``, ``patient_sources``, ``patient_conflicts`` and ``operator_messages``
    (docs/runtime.md lists every key). ``provenance`` says where each patient value came from; without it
    every known value counts as entered by the operator (a live stream has no file).
    """
    interval = estimate.lvm_interval_g
    bsa = patient.bsa_m2
    index_interval = getattr(estimate, "lvm_index_interval_g_m2", None)
    report = {
        "estimate_status": estimate.estimate_status,
        "status_text": STATUS_TEXT[estimate.estimate_status],
        "lvm_g": _round(estimate.lvm_g),
        "lvm_interval_g": None if interval is None else [_round(interval[0]), _round(interval[1])],
        "lvm_interval_coverage": None if model is None or interval is None else model.interval_coverage,
        "lvm_interval_method": None if model is None or interval is None else model.interval_method,
        "lvm_spread_g": _round(estimate.lvm_spread_g),
        "lvm_index_g_m2": _round(estimate.lvm_index_g_m2),
        "lvm_index_interval_g_m2": None if index_interval is None else [_round(index_interval[0]),
                                                                        _round(index_interval[1])],
        "lvh": estimate.lvh,
        "lvh_verdict": getattr(estimate, "lvh_verdict", None),
        "lvh_threshold_g_m2": estimate.lvh_threshold_g_m2,
        "lvh_thresholds_g_m2": {"M": config.lvh_threshold_male_g_m2, "F": config.lvh_threshold_female_g_m2},
        "flags": [flag.to_dict() for flag in estimate.flags],
        "operator_messages": operator_messages(estimate.flags),
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
    report["lvh_verdict_text"] = verdict_text(report)
    report.update(patient_fields(provenance or operator_only(patient), estimate.imputed))
    return report


def patient_fields(provenance: PatientData, imputed: list[str] | tuple[str, ...] = ()) -> dict:
    """The report keys that say where each patient value came from (``file``/``operator``/``imputed``/null)
    and where the file and the operator disagreed; callers with a file's provenance ``update`` a report."""
    return {"patient_sources": provenance.sources_after(imputed),
            "patient_conflicts": [conflict.to_dict() for conflict in provenance.conflicts],
            "patient_prefer": provenance.prefer}


def add_patient_provenance(report: dict, provenance: PatientData) -> dict:
    """Record in ``report`` (in place) where each patient value came from and any file/operator conflict
    (as the ``patient_data_conflict`` flag too, so every reader shows it); returns ``report``."""
    report.update(patient_fields(provenance, report.get("imputed") or ()))
    if provenance.conflicts:
        flag = Flag("patient_data_conflict", "; ".join(c.text() for c in provenance.conflicts),
                    where="; ".join(c.text() for c in provenance.conflicts))
        report["flags"] = [f for f in report["flags"] if f["name"] != "patient_data_conflict"] + [flag.to_dict()]
        report["operator_messages"] = [flag.operator_text] + [
            text for text in report.get("operator_messages", []) if text != flag.operator_text]
    return report


def operator_messages(flags: list) -> list[str]:
    """The flags' plain-language texts, most serious first, each once (what the screen and the report show)."""
    order = {"blocks": 0, "outside_population": 1, "informational": 2}
    texts: list[str] = []
    for flag in sorted(flags, key=lambda f: order.get(f.consequence.value, 3)):
        if flag.operator_text not in texts:
            texts.append(flag.operator_text)
    return texts


def verdict_text(report: dict) -> str | None:
    """``borderline: index interval 49-73 g/m2 spans the threshold 55 g/m2`` and the like; ``None`` when
    there is no number."""
    if report.get("lvm_g") is None:
        return None
    verdict, threshold = report.get("lvh_verdict"), report.get("lvh_threshold_g_m2")
    if verdict is None:
        return "LVH unknown"
    band = report.get("lvm_index_interval_g_m2")
    if verdict == "borderline" and band:
        return (f"borderline: the index interval {band[0]:.0f}-{band[1]:.0f} g/m2 spans the threshold "
                f"{threshold:g} g/m2")
    return f"{verdict} (threshold > {threshold:g} g/m2)"


def patient_line(report: dict) -> str:
    """``age 77 y (file), sex F (file), height 160 cm (operator), weight unknown; BSA 1.74 m2``."""
    patient, sources = report.get("patient") or {}, report.get("patient_sources") or {}
    parts = []
    for name in PATIENT_FIELDS:
        source = sources.get(name)
        value = format_value(name, patient.get(name)) if patient.get(name) is not None else (
            "typical value" if source == "imputed" else "unknown")
        parts.append(f"{field_word(name)} {value}" + (f" ({source})" if source else ""))
    bsa = patient.get("bsa_m2")
    return ", ".join(parts) + (f"; BSA {bsa:.2f} m2" if bsa else "; BSA unknown")


def conflict_lines(report: dict) -> list[str]:
    """One line per field where the file and the operator disagreed."""
    return [PatientConflict(c["field"], c["file"], c["operator"], c.get("used")).text()
            for c in report.get("patient_conflicts") or []]


def _messages_without_conflict(report: dict) -> list[str]:
    """The operator messages, less the conflict's (the conflict has its own, more prominent line)."""
    conflict = {f["operator_text"] for f in report["flags"] if f["name"] == "patient_data_conflict"}
    messages = report.get("operator_messages")
    if messages is None:  # a report stored before operator_messages existed
        messages = [f.get("operator_text", f["name"]) for f in report["flags"]]
    return [text for text in messages if text not in conflict]


def summary_lines(report: dict) -> list[str]:
    """The report as a few human-readable lines (terminal output of ``run``/``analyze``/``demo``).

    Plain language only: each flag's ``operator_text``; the developer detail (``reason``) is in the JSON.
    """
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
            index_band = report.get("lvm_index_interval_g_m2")
            index_text = f"{report['lvm_index_g_m2']:.0f} g/m2" + (
                "" if not index_band else f" (interval {index_band[0]:.0f}-{index_band[1]:.0f} g/m2)")
            verdict = report.get("lvh_verdict") or "LVH unknown"
            threshold = report["lvh_threshold_g_m2"]
            lines.append(f"LVM index   {index_text} -> {verdict}"
                         + (f" (threshold > {threshold:g} g/m2)" if threshold is not None else ""))
        else:
            lines.append("LVH         unknown: " + next(
                (f["operator_text"] for f in report["flags"] if f["name"] == "lvh_unknown"),
                "enter height and weight to get an LVH verdict."))
    for conflict in conflict_lines(report):
        lines.append(f"CONFLICT    file and entered data disagree: {conflict}")
    lines.append(f"patient     {patient_line(report)}")
    if report.get("window_of"):
        lines.append(f"window      {report['window_of']}")
    for text in _messages_without_conflict(report):
        lines.append(f"note        {text}")
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


def headline(report: dict) -> list[tuple[str, float, str]]:
    """The result first, as ``(text, font size, colour)`` lines for the top of the printable report:
    status, LV mass with interval, index with its interval and the verdict, then what the operator must know."""
    status = report["estimate_status"]
    colour = {"ok": "black", "outside_population": "#b35900", "no_estimate": "#b00020"}[status]
    lines: list[tuple[str, float, str]] = [("RESULT: " + (STATUS_TEXT[status].upper() if status != "ok" else "ESTIMATE"), 12, colour)]
    if report["lvm_g"] is not None:
        interval = report.get("lvm_interval_g")
        coverage = report.get("lvm_interval_coverage")
        band = "" if not interval else (f"  ({coverage:.0%} interval {interval[0]:.0f}-{interval[1]:.0f} g)"
                                        if coverage else f"  (interval {interval[0]:.0f}-{interval[1]:.0f} g)")
        lines.append((f"LV mass {report['lvm_g']:.0f} g{band}", 20, colour))
        if report.get("lvm_index_g_m2") is not None:
            index_band = report.get("lvm_index_interval_g_m2")
            verdict = report.get("lvh_verdict")
            threshold = report.get("lvh_threshold_g_m2")
            lines.append((f"Index {report['lvm_index_g_m2']:.0f} g/m2"
                          + (f" (interval {index_band[0]:.0f}-{index_band[1]:.0f})" if index_band else "")
                          + f"  ->  {(verdict or 'LVH unknown').upper() if verdict != 'no LVH' else 'no LVH'}"
                          + (f"  (threshold > {threshold:g} g/m2)" if threshold is not None else ""), 17, colour))
            if verdict == "borderline":
                lines.append(("Borderline: the interval reaches both sides of the threshold; the ECG cannot "
                              "tell LVH from no LVH here.", 10, colour))
        else:
            lines.append(("LVH verdict unknown: height and weight are needed", 14, colour))
    for conflict in conflict_lines(report):
        lines.append((f"PATIENT DATA CONFLICT - {conflict}", 11, "#b00020"))
    for text in _messages_without_conflict(report)[:3]:
        lines.append((text, 9.5, "black"))
    return lines


def shared_mv_limits(beats: np.ndarray, margin: float = 0.08) -> tuple[float, float]:
    """One vertical range (mV) for every beat panel, so amplitudes compare across leads."""
    values = np.asarray(beats, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return -1.0, 1.0
    low, high = float(values.min()), float(values.max())
    pad = max(margin * (high - low), 0.05)
    return low - pad, high + pad


def unrecorded_leads(signals_mv: np.ndarray, report: dict | None = None) -> list[str]:
    """Leads with no signal in this window (flat: never attached, or absent from the file)."""
    spans = np.ptp(np.asarray(signals_mv, dtype=np.float64), axis=1)
    return [name for name, span in zip(STANDARD_LEADS, spans) if not span >= UNRECORDED_MV]


UNRECORDED_MV = 0.01  # a lead flatter than this over the whole window carries no signal


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
        The synchronized beats used by the model, overlaid per lead on one shared mV scale.
    beat_fs : float, optional
        Rate of ``beats`` (default ``fs``).

    Raises
    ------
    ImportError
        When matplotlib (the ``report`` extra) is not installed.
    """
    from matplotlib import pyplot as plt  # lazy: the report extra; the device loop never loads it

    path = Path(path)
    figure = draw_report(report, signals_mv, fs, beats, beat_fs)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    plt.close(figure)
    return path


def draw_report(report: dict, signals_mv: np.ndarray, fs: float, beats: np.ndarray | None = None,
                beat_fs: float | None = None):
    """The printable report as a matplotlib figure (A4 landscape; :func:`render_report` saves it).

    Top: the result in large type (status, LV mass with interval, index with interval and verdict), any
    file/operator conflict, the operator's messages and the patient data with the source of each value.
    Middle: the 10 s window at 25 mm/s, 10 mm/mV (true scale on a 100 % print); leads without signal
    say "not recorded" instead of a flat line. Bottom: the beats the model used, every panel on one mV
    scale, then the model and the disclaimer.
    """
    import matplotlib  # lazy: the report extra; the device loop never loads it

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # lazy

    signals_mv = np.asarray(signals_mv, dtype=np.float64)
    absent = set(unrecorded_leads(signals_mv, report))
    segment_s = 2.5
    segment = int(round(segment_s * fs))
    row_mm, width_mm = 25.0, 4 * segment_s * MM_PER_S  # 3 rows of 2.5 s + a 10 s rhythm strip of II
    height_mm = 4 * row_mm
    page_w_mm, page_h_mm = 297.0, 210.0  # A4 landscape; axes sized in page mm so a 100 % print is true scale
    figure = plt.figure(figsize=(page_w_mm / 25.4, page_h_mm / 25.4))

    # --- the result first, in large type ---
    y = 0.975
    for text, size, colour in headline(report):
        figure.text(0.03, y, text, fontsize=size, color=colour, weight="bold" if size >= 11 else "normal",
                    va="top", wrap=True)
        y -= (size + 5) / 72.0 * 25.4 / page_h_mm
    figure.text(0.03, y, "Patient: " + patient_line(report)
                + (f"   id {report['patient']['patient_id']}" if report["patient"].get("patient_id") else ""),
                fontsize=9, va="top")
    y -= 14 / 72.0 * 25.4 / page_h_mm
    when = report.get("recorded_utc") or ""
    where = report.get("window_of") or (f"10 s window starting at {report['window_start_s']:g} s"
                                         if report.get("window_start_s") is not None else "")
    figure.text(0.03, y, "   ".join(part for part in (f"Recorded {when}" if when else "", where,
                                                      f"source {report.get('source') or '-'}") if part),
                fontsize=7.5, va="top", color="#333333")
    top = y - 0.02

    # --- the ECG at true scale ---
    grid_h = height_mm / page_h_mm
    left = (page_w_mm - width_mm) / 2 / page_w_mm
    trace_axis = figure.add_axes([left, top - grid_h, width_mm / page_w_mm, grid_h])
    _ecg_grid(trace_axis, width_mm, height_mm)
    for row, names in enumerate(_LAYOUT):
        baseline = height_mm - (row + 0.5) * row_mm
        for column, name in enumerate(names):
            x0 = column * segment_s * MM_PER_S
            label = name
            if name in absent:
                trace_axis.text(x0 + segment_s * MM_PER_S / 2, baseline, "not recorded", ha="center", va="center",
                                fontsize=9, style="italic", color="#666666")
            else:
                lead = signals_mv[STANDARD_LEADS.index(name), column * segment:(column + 1) * segment]
                x_mm = x0 + np.arange(lead.size) / fs * MM_PER_S
                y_mm = baseline + (lead - np.median(lead)) * MM_PER_MV
                trace_axis.plot(x_mm, np.clip(y_mm, baseline - row_mm / 2, baseline + row_mm / 2), color="black",
                                lw=0.6)
            trace_axis.text(x0 + 1, baseline + 8, label, fontsize=8)
    if "II" in absent:
        trace_axis.text(width_mm / 2, 0.5 * row_mm, "not recorded", ha="center", va="center", fontsize=9,
                        style="italic", color="#666666")
    else:
        rhythm = signals_mv[STANDARD_LEADS.index("II")]
        x_mm = np.arange(rhythm.size) / fs * MM_PER_S
        keep = x_mm <= width_mm
        trace_axis.plot(x_mm[keep], np.clip(0.5 * row_mm + (rhythm[keep] - np.median(rhythm)) * MM_PER_MV, 0, row_mm),
                        color="black", lw=0.6)
    trace_axis.text(1, 0.5 * row_mm + 8, "II", fontsize=8)
    trace_axis.set_title("25 mm/s, 10 mm/mV", fontsize=7, loc="right", pad=2)

    # --- the beats the model used, one shared mV scale ---
    beat_top = top - grid_h - 0.045
    panel_h = min(0.16, max(0.06, beat_top - 0.08))
    if beats is not None and np.asarray(beats).size:
        beats = np.asarray(beats, dtype=np.float64)
        rate = beat_fs or fs
        t_ms = np.arange(beats.shape[2]) / rate * 1000.0
        limits = shared_mv_limits(beats)
        first = None
        for index, name in enumerate(STANDARD_LEADS):
            # the 12 panels span the ECG grid's width, aligned under it
            step = width_mm / page_w_mm / 12
            axis = figure.add_axes([left + index * step, beat_top - panel_h, step * 0.9, panel_h], sharey=first)
            first = first or axis
            axis.set_ylim(*limits)
            if name in absent:
                axis.text(0.5, 0.5, "not recorded", transform=axis.transAxes, ha="center", va="center", fontsize=6,
                          style="italic", color="#666666")
            else:
                axis.plot(t_ms, beats[:, index, :].T, color="tab:blue", lw=0.4, alpha=0.5)
                axis.plot(t_ms, np.median(beats[:, index, :], axis=0), color="black", lw=0.9)
            axis.set_title(name, fontsize=7, pad=2)
            axis.set_xticks([])
            axis.tick_params(labelsize=5)
            if index:
                axis.tick_params(labelleft=False)
            else:
                axis.set_ylabel("mV", fontsize=6)
        figure.text(left, beat_top + 0.022, f"Beats used by the model (n={beats.shape[0]}; black = median; "
                    "all panels on the same mV scale)", fontsize=7)
    else:
        figure.text(left, beat_top - panel_h / 2, "No beats were used: " + (
            (report.get("operator_messages") or ["no estimate"])[0]), fontsize=8, style="italic")

    # --- model and disclaimer ---
    model = report["model"]
    footer = [f"Model {model['id']} (manifest sha256 {str(model['sha256'])[:12]}"
              + (f", {model['backend']}, {model['precision']}" if model.get("backend") else "") + ")",
              report["disclaimer"]]
    figure.text(0.03, 0.012, "\n".join(textwrap.fill(line, width=170) for line in footer), fontsize=7,
                va="bottom", color="#333333")
    return figure
