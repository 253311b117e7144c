"""Compare the outputs of ``exercise.sh`` on the x86 host and on the emulated aarch64 device.

    python compare_outputs.py X86_DIR AARCH64_DIR [--atol 0.05] [--fp32-atol 0.15] [--lvm-atol 0.5]
                              [--beat-atol 2.0] [--rtol 1e-4] [--json REPORT.json]

Every step must have the same status on both sides and must have run: a step ``skipped`` on either side (e.g. the
model steps when the build has no bundled model) is a failure, because a smoke test that skips the model proves
nothing about it. ``--allow-skip STEP`` (repeatable) accepts a named step as skipped on both sides, deliberately. JSON outputs must agree key by key: strings, booleans and nulls exactly; numbers within
``atol + rtol * |x86|``, with atol chosen by what the number is (see :func:`tolerance_for`):

- LV mass from an fp32 model: ``--fp32-atol`` g (observed: identical; 0.15 g allows one 0.1 g report rounding step),
- single-beat LV mass and its spread from an INT8 model: ``--beat-atol`` g (INT8 kernels round differently on x86
  and ARM, onnxruntime and XNNPACK alike: one output step of the demo model moved a beat by 1.5 g),
- other LV mass values from an INT8 model (the estimate, its interval, the index): ``--lvm-atol`` g,
- everything else (mV, ms, degrees, counts): ``--atol``.

LVH verdicts, flags, statuses and beat counts must be identical. Keys that name a place or a moment (paths, times,
database ids) are not compared. Exit status 1 on any difference.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# Keys whose values legitimately differ between two runs or two machines.
UNCOMPARED_KEY = re.compile(
    r"(^|_)(source|path|paths|time|timestamp|created|created_at|date|utc|elapsed|seconds|id|db|pty|port)$"
    r"|^first_estimate_s$"  # wall-clock latency: emulation is slow by design; speed is not compared here
    r"|^samples$"  # samples a live session read before it stopped: depends on replay speed and scheduling
)
# Machine-specific parts inside strings: where the package is installed, the emulator's temporary pty directory.
MACHINE_SPECIFIC_TEXT = [(re.compile(r"\S*/site-packages/"), "<site-packages>/"),
                         (re.compile(r"/tmp/elvmass-emu-[A-Za-z0-9_]+"), "<emulator-pty-dir>")]


def normalized(text: str) -> str:
    """``text`` with install locations and temporary pty directories replaced by placeholders."""
    for pattern, placeholder in MACHINE_SPECIFIC_TEXT:
        text = pattern.sub(placeholder, text)
    return text
PLATFORM_FILES = {"platform.json"}  # describes the machine: reported, not compared


def read_steps(directory: Path) -> dict[str, tuple[str, str]]:
    """``steps.tsv`` as {step: (status, detail)}."""
    with open(directory / "steps.tsv", newline="") as handle:
        return {row[0]: (row[1], row[3] if len(row) > 3 else "") for row in csv.reader(handle, delimiter="\t") if row}


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerances by kind of number (see the module docstring); ``rtol`` applies to all."""

    atol: float = 0.05
    fp32_atol: float = 0.15
    lvm_atol: float = 0.5
    beat_atol: float = 2.0
    rtol: float = 1e-4


def tolerance_for(where: str, tolerances: Tolerances) -> float:
    """The absolute tolerance of the number at ``where`` ("STEP:/key/key[i]"; model_outputs: "model_outputs:/FILE/...")."""
    path = where.lower()
    is_lvm = "lvm" in path or path.startswith("model_outputs:")  # every model output is an LV mass in grams
    if not is_lvm:
        return tolerances.atol
    if "fp32" in path:
        return tolerances.fp32_atol
    if "per_beat" in path or "spread" in path or path.startswith("model_outputs:"):
        return tolerances.beat_atol
    return tolerances.lvm_atol


def json_differences(reference, candidate, tolerances: Tolerances = Tolerances(), where: str = "") -> tuple[list[str], float]:
    """Differences between two JSON values and the largest absolute numeric difference seen.

    Parameters
    ----------
    reference, candidate
        Parsed JSON (x86 and aarch64).
    tolerances : Tolerances
        Numbers agree when ``|a - b| <= tolerance_for(where) + rtol * |a|``.
    where : str
        Path of this value ("STEP:/key[i]"): names it in messages and selects its tolerance.

    Returns
    -------
    (list of str, float)
        Human-readable differences (empty when equal) and the maximum absolute numeric difference.
    """
    if isinstance(reference, dict) and isinstance(candidate, dict):
        problems, worst = [], 0.0
        for key in sorted(set(reference) | set(candidate)):
            if UNCOMPARED_KEY.search(str(key)):
                continue
            if key not in reference or key not in candidate:
                problems.append(f"{where}/{key}: only on {'x86' if key in reference else 'aarch64'}")
                continue
            sub_problems, sub_worst = json_differences(reference[key], candidate[key], tolerances, f"{where}/{key}")
            problems += sub_problems
            worst = max(worst, sub_worst)
        return problems, worst
    if isinstance(reference, list) and isinstance(candidate, list):
        if len(reference) != len(candidate):
            return [f"{where}: length {len(reference)} on x86, {len(candidate)} on aarch64"], 0.0
        problems, worst = [], 0.0
        for index, (a, b) in enumerate(zip(reference, candidate)):
            sub_problems, sub_worst = json_differences(a, b, tolerances, f"{where}[{index}]")
            problems += sub_problems
            worst = max(worst, sub_worst)
        return problems, worst
    numeric = (int, float)
    if isinstance(reference, numeric) and isinstance(candidate, numeric) and not isinstance(reference, bool) and not isinstance(candidate, bool):
        a, b = float(reference), float(candidate)
        if math.isnan(a) or math.isnan(b):
            return ([] if math.isnan(a) and math.isnan(b) else [f"{where}: {a} vs {b}"]), 0.0
        difference = abs(a - b)
        allowed = tolerance_for(where, tolerances) + tolerances.rtol * abs(a)
        return ([] if difference <= allowed else [f"{where}: {a} on x86, {b} on aarch64 (|diff| {difference:.3g} > {allowed:.3g})"]), difference
    if isinstance(reference, str) and isinstance(candidate, str):
        reference, candidate = normalized(reference), normalized(candidate)
    if reference != candidate:
        return [f"{where}: {reference!r} on x86, {candidate!r} on aarch64"], 0.0
    return [], 0.0


def compare(x86: Path, aarch64: Path, tolerances: Tolerances = Tolerances(),
            allow_skip: frozenset[str] = frozenset()) -> dict:
    """Step-by-step comparison; ``result["ok"]`` is False on any difference and on any skipped step.

    Parameters
    ----------
    x86, aarch64 : Path
        The two ``exercise.sh`` output directories.
    tolerances : Tolerances
    allow_skip : frozenset of str
        Steps that may be skipped (on both sides); every other skipped step is a problem.
    """
    steps_x86, steps_arm = read_steps(x86), read_steps(aarch64)
    rows = []
    for step in list(dict.fromkeys([*steps_x86, *steps_arm])):
        status_x86, detail_x86 = steps_x86.get(step, ("missing", ""))
        status_arm, detail_arm = steps_arm.get(step, ("missing", ""))
        row = {"step": step, "x86": status_x86, "aarch64": status_arm, "max_abs_diff": None, "problems": []}
        if status_x86 != status_arm:
            row["problems"].append(f"status differs: x86 {status_x86} ({detail_x86}), aarch64 {status_arm} ({detail_arm})")
        elif status_x86 == "failed":
            row["problems"].append(f"failed on both: {detail_arm}")
        elif status_x86 == "skipped" and step not in allow_skip:
            row["problems"].append(f"skipped on both ({detail_arm}): the step did not run, so nothing was compared")
        elif status_x86 == "ok" and detail_x86.endswith(".json") and detail_x86 not in PLATFORM_FILES:
            reference = json.loads((x86 / detail_x86).read_text())
            candidate = json.loads((aarch64 / detail_x86).read_text())
            row["problems"], row["max_abs_diff"] = json_differences(reference, candidate, tolerances, f"{step}:")
        rows.append(row)
    platform = {side: json.loads((d / "platform.json").read_text()) if (d / "platform.json").is_file() else None
                for side, d in (("x86", x86), ("aarch64", aarch64))}
    return {"ok": not any(r["problems"] for r in rows), "tolerances": asdict(tolerances), "steps": rows,
            "platform": platform}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("x86", type=Path)
    parser.add_argument("aarch64", type=Path)
    defaults = Tolerances()
    parser.add_argument("--atol", type=float, default=defaults.atol, help="numbers other than LV mass")
    parser.add_argument("--fp32-atol", type=float, default=defaults.fp32_atol, help="LV mass from fp32 models (g)")
    parser.add_argument("--lvm-atol", type=float, default=defaults.lvm_atol, help="INT8 LV mass estimate, interval, index (g)")
    parser.add_argument("--beat-atol", type=float, default=defaults.beat_atol, help="INT8 single-beat LV mass and spread (g)")
    parser.add_argument("--rtol", type=float, default=defaults.rtol, help="relative tolerance for every number")
    parser.add_argument("--allow-skip", action="append", default=[], metavar="STEP",
                        help="accept this step as skipped on both sides (repeatable); any other skip fails")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args(argv)
    tolerances = Tolerances(args.atol, args.fp32_atol, args.lvm_atol, args.beat_atol, args.rtol)
    result = compare(args.x86, args.aarch64, tolerances, frozenset(args.allow_skip))
    for row in result["steps"]:
        diff = "" if row["max_abs_diff"] is None else f"max|diff| {row['max_abs_diff']:.3g}"
        verdict = "DIFFERS" if row["problems"] else "same"
        print(f"{row['step']:<22} x86 {row['x86']:<8} aarch64 {row['aarch64']:<8} {verdict:<8} {diff}")
        for problem in row["problems"][:10]:
            print(f"    {problem}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print("aarch64 outputs equal x86 within tolerance" if result["ok"] else "aarch64 outputs DIFFER from x86")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
