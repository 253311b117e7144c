"""The verification table: parity, INT8-vs-fp32 accuracy and LVH agreement, sizes, latency.

Scoring functions are plain functions of arrays (wfdb ``compare_annotations`` style), so tests and
``elvmass quantize`` use the same arithmetic and the same thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from edge_runtime.contract import DEMOGRAPHIC_COLUMN, SEX_CODES

PARITY_MAX_G = 1e-3  # fp32 ONNX / fp32 TFLite vs torch, max |diff|
MAE_CHANGE_MAX_G = 0.3  # |INT8 MAE minus fp32 MAE| on held-out rows (either sign: a change is a change)
LVH_AGREEMENT_MIN = 0.98  # fraction of rows where INT8 and fp32 give the same LVH call
SIZE_RATIO_MIN = 3.0  # fp32 ONNX bytes / INT8 artifact bytes


def lvh_calls(lvm_g: np.ndarray, demographics: np.ndarray, thresholds_g_m2: Mapping[str, float]) -> np.ndarray:
    """LVH (True/False) as LVM / BSA (Mosteller) above the sex-specific threshold."""
    demographics = np.asarray(demographics, dtype=np.float64)
    height, weight = demographics[:, DEMOGRAPHIC_COLUMN["height_cm"]], demographics[:, DEMOGRAPHIC_COLUMN["weight_kg"]]
    bsa_m2 = np.sqrt(height * weight / 3600.0)
    male = demographics[:, DEMOGRAPHIC_COLUMN["sex"]] == SEX_CODES["M"]
    threshold = np.where(male, thresholds_g_m2["M"], thresholds_g_m2["F"])
    return np.asarray(lvm_g, dtype=np.float64) / bsa_m2 > threshold


def max_abs_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Largest absolute difference (g)."""
    return float(np.max(np.abs(np.asarray(candidate, np.float64) - np.asarray(reference, np.float64))))


@dataclass
class Int8Score:
    """One INT8 artifact against its fp32 counterpart on the same rows."""

    artifact: str
    n: int
    mae_fp32_g: float
    mae_int8_g: float
    mae_change_g: float
    max_abs_diff_g: float
    lvh_agreement: float
    lvh_disagreements: int

    @property
    def passed(self) -> bool:
        return abs(self.mae_change_g) <= MAE_CHANGE_MAX_G and self.lvh_agreement >= LVH_AGREEMENT_MIN

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def score_int8(artifact: str, lvm_true: np.ndarray, fp32_g: np.ndarray, int8_g: np.ndarray,
               demographics: np.ndarray, thresholds_g_m2: Mapping[str, float]) -> Int8Score:
    """MAE change and LVH agreement of an INT8 artifact versus fp32 on labelled rows."""
    lvm_true = np.asarray(lvm_true, np.float64)
    mae_fp32 = float(np.mean(np.abs(np.asarray(fp32_g, np.float64) - lvm_true)))
    mae_int8 = float(np.mean(np.abs(np.asarray(int8_g, np.float64) - lvm_true)))
    same = lvh_calls(fp32_g, demographics, thresholds_g_m2) == lvh_calls(int8_g, demographics, thresholds_g_m2)
    return Int8Score(artifact, len(lvm_true), mae_fp32, mae_int8, mae_int8 - mae_fp32, max_abs_diff(fp32_g, int8_g),
                     float(np.mean(same)), int(np.sum(~same)))


def format_table(parity: Mapping[str, float], int8_scores: Sequence[Int8Score], sizes: Mapping[str, int],
                 fp32_onnx_bytes: int, latency_ms: Mapping[str, float],
                 explored: Mapping[str, Mapping] | None = None) -> str:
    """The table ``elvmass quantize`` prints and docs/quantization.md carries.

    ``explored`` (artifact -> score dict with ``size_bytes``) lists the ONNX INT8 configurations
    measured before choosing the shipped one (s8 vs u8 activations, float vs INT8 head).
    """
    lines = [f"Parity vs torch (max |diff|, limit {PARITY_MAX_G:g} g)"]
    for name, diff in parity.items():
        lines.append(f"  {name:<28} {diff:10.2e} g   {'PASS' if diff < PARITY_MAX_G else 'FAIL'}")
    lines.append(f"INT8 vs fp32 (|MAE change| <= {MAE_CHANGE_MAX_G} g, LVH agreement >= {LVH_AGREEMENT_MIN:.0%})")
    lines.append(f"  {'artifact':<28} {'n':>5} {'MAE fp32':>9} {'MAE int8':>9} {'change':>8} {'max|d|':>8} {'LVH agree':>10}")
    for s in int8_scores:
        lines.append(f"  {s.artifact:<28} {s.n:5d} {s.mae_fp32_g:9.3f} {s.mae_int8_g:9.3f} {s.mae_change_g:+8.3f} "
                     f"{s.max_abs_diff_g:8.3f} {s.lvh_agreement:9.1%}  {'PASS' if s.passed else 'FAIL'}")
    if explored:
        lines.append("INT8 configurations measured (the first passing one in this order ships)")
        for name, e in explored.items():
            lines.append(f"  {name:<34} MAE change {e['mae_change_g']:+7.3f} g  max|d| {e['max_abs_diff_g']:6.3f} g  "
                         f"LVH agree {e['lvh_agreement']:6.1%}  {e['size_bytes']:7d} B")
    lines.append(f"Sizes (INT8 >= {SIZE_RATIO_MIN:g}x smaller than fp32 ONNX = {fp32_onnx_bytes} B)")
    for name, size in sizes.items():
        ratio = fp32_onnx_bytes / size
        verdict = ("PASS" if ratio >= SIZE_RATIO_MIN else "FAIL") if "int8" in name else ""
        twin = name.replace("int8", "fp32")  # the same format's fp32 file (issue 14: INT8 >= 3x smaller than it)
        same_format = f"  {sizes[twin] / size:5.2f}x smaller than {twin}" if "int8" in name and twin in sizes else ""
        lines.append(f"  {name:<28} {size:8d} B  {ratio:5.2f}x  {verdict}{same_format}")
    lines.append("Latency per window of 14 beats in one call (median, 1 thread, this machine)")
    for name, ms in latency_ms.items():
        lines.append(f"  {name:<28} {ms:8.3f} ms")
    return "\n".join(lines)
