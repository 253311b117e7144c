"""What the Result and Device screens show, as plain dicts for the templates (report keys read defensively)."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from edge_runtime.station.controller import operator_texts, verdict_of

_CONSEQUENCE_TITLES = (("blocks", "Why there is no number"), ("outside_population", "Read the number with caution"),
                       ("informational", "Notes"))


def _number(value: Any, digits: int = 0) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return f"{value:.{digits}f}"


def _interval(value: Any, digits: int = 0) -> str | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = _number(value[0], digits), _number(value[1], digits)
        if low is not None and high is not None:
            return f"{low}\u2013{high}"
    return None


def result_context(report: dict) -> dict:
    """The Result screen of one report: numbers as text, verdict, reasons in operator words, model."""
    patient = report.get("patient") if isinstance(report.get("patient"), dict) else {}
    patient = {key: (value.get("value") if isinstance(value, dict) else value) for key, value in patient.items()}
    model = report.get("model") if isinstance(report.get("model"), dict) else {}
    coverage = report.get("lvm_interval_coverage")
    method = str(report.get("lvm_interval_method") or "")
    verdict = verdict_of(report) if report.get("lvm_g") is not None else None
    reasons = [(title, operator_texts(report, (consequence,))) for consequence, title in _CONSEQUENCE_TITLES]
    index_interval = None
    for key in ("lvm_index_interval_g_m2", "lvm_index_interval"):
        index_interval = index_interval or _interval(report.get(key))
    status = str(report.get("estimate_status") or "no_estimate")
    return {
        "result_id": report.get("result_id"),
        "status": status,
        "status_text": {"ok": "estimate OK"}.get(status) or report.get("status_text") or status,
        "lvm": _number(report.get("lvm_g")),
        "lvm_exact": _number(report.get("lvm_g"), 1),
        "interval": _interval(report.get("lvm_interval_g")),
        "coverage": None if not isinstance(coverage, (int, float)) else f"{coverage:.0%}",
        "approximate": method.startswith("approximate"),
        "index": _number(report.get("lvm_index_g_m2")),
        "index_interval": index_interval,
        "verdict": verdict,
        "verdict_class": {"LVH": "lvh", "no LVH": "nolvh", "borderline": "borderline"}.get(verdict or "", "unknown"),
        "threshold": _number(report.get("lvh_threshold_g_m2")),
        "reasons": [(title, texts) for title, texts in reasons if texts],
        "n_beats": report.get("n_beats") or 0,
        "per_beat": [_number(value) for value in report.get("per_beat_lvm_g") or [] if _number(value) is not None],
        "model_id": model.get("id") or "unknown",
        "model_sha": str(model.get("sha256") or "")[:12],
        "model_runtime": ", ".join(str(model[key]) for key in ("backend", "precision") if model.get(key)),
        "disclaimer": report.get("disclaimer") or "Research software; not clinically validated.",
        "patient": {
            "patient_id": patient.get("patient_id") or "\u2014",
            "age": _number(patient.get("age_years")) or "\u2014",
            "sex": patient.get("sex") or "\u2014",
            "height": _number(patient.get("height_cm")) or "\u2014",
            "weight": _number(patient.get("weight_kg")) or "\u2014",
            "bsa": _number(patient.get("bsa_m2"), 2) or "\u2014",
        },
        "recorded_utc": str(report.get("recorded_utc") or "")[:19].replace("T", " "),
    }


def _size(n_bytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n_bytes < 1000 or unit == "TB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000.0
    return ""


def device_context(controller: Any, config: Any, source_label: str, n_results: int) -> dict:
    """The Device screen: link, model bundle, storage, software, clinic config (PIN hash never shown)."""
    from elvmass import __version__

    analyzer = controller.analyzer
    model = analyzer.model
    store_file = Path(controller.store_path)
    used = sum(p.stat().st_size for p in store_file.parent.glob(store_file.name + "*") if p.is_file()) \
        if store_file.parent.exists() else 0
    probe = store_file.parent if store_file.parent.exists() else Path("/")
    disk = shutil.disk_usage(probe)
    settings = dataclasses.asdict(config)
    settings["station_pin_hash"] = "set (scrypt)" if settings.get("station_pin_hash") else "not set"
    calibration = "none"
    if model is not None and model.interval_halfwidth_g is not None:
        calibration = (f"\u00b1{model.interval_halfwidth_g:.1f} g"
                       + (f", {model.interval_coverage:.0%} coverage" if model.interval_coverage else "")
                       + f" ({model.interval_method})")
    snapshot = controller.snapshot()
    return {
        "link": snapshot["link"],
        "source": source_label,
        "events": list(reversed(list(controller.events)))[:40],
        "model_id": getattr(model, "model_id", "unknown"),
        "model_sha": getattr(model, "sha256", ""),
        "calibration": calibration,
        "trained_on": getattr(model, "trained_on", "unknown"),
        "training_ranges": {k: f"{v[0]:g}\u2013{v[1]:g}" for k, v in (getattr(model, "training_ranges", {}) or {}).items()},
        "backend": f"{analyzer.backend}, {analyzer.precision}",
        "storage_path": str(store_file),
        "storage_used": _size(used),
        "storage_free": _size(disk.free),
        "n_results": n_results,
        "version": __version__,
        "python": sys.version.split()[0],
        "config": settings,
    }
