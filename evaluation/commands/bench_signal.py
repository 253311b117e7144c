"""``elvmass bench-signal [--data DIR]``: score the signal core on real data, beside wfdb XQRS and neurokit2.

Tables, each for the tuning and the report split of ``evaluation.splits`` separately: beat
detection on mitdb (per record + gross), cpsc2021 and LUDB lead II, ours beside wfdb XQRS and
neurokit2; the AF flag per 10 s window on cpsc2021 and its specificity on cinc2021; then LUDB QRS
onset/offset errors and throughput (whole chain, and the R-peak detector alone per 10 s 12-lead
window). ``--write-doc docs/signal.md`` replaces the summary between the ``bench-signal`` markers
of that file with this run's numbers. Reference toolkits (wfdb, neurokit2: the ``bench`` extra)
are imported here only; a missing one is reported and its column left empty. Run it with
``nice``: it takes a few minutes (XQRS on 24 half-hour records dominates).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

MITDB_RECORDS = ("101 102 104 106 108 109 112 114 115 116 118 119 122 124 "
                 "201 203 205 207 208 209 215 220 223 230").split()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get("ELVMASS_SHARED_DATA", str(Path(__file__).resolve().parents[2].parent / "shared" / "data"))
    parser.add_argument("--data", default=default, help="folder with mitdb/, ludb/, cpsc2021/, cinc2021/")
    parser.add_argument("--minutes", type=float, default=None, help="score only the first N minutes of each mitdb record")
    parser.add_argument("--no-reference", action="store_true", help="skip wfdb XQRS and neurokit2")
    parser.add_argument("--split", choices=("tune", "report", "both"), default="both",
                        help="which half of the records to score (evaluation/splits.py)")
    parser.add_argument("--write-doc", default=None, metavar="MARKDOWN",
                        help="replace the summary between <!-- bench-signal:begin/end --> in this file")


# ---------------------------------------------------------------- detectors under comparison
def _ours(signals: np.ndarray, fs: float, notch_hz: float) -> tuple[np.ndarray, list[tuple[int, int]]]:
    from edge_runtime.signal_core.detect import detect_r_peaks

    return detect_r_peaks(signals, fs, notch_hz=notch_hz, return_unreadable=True)


def _xqrs(signal: np.ndarray, fs: float) -> np.ndarray:
    from wfdb.processing import xqrs_detect

    return np.asarray(xqrs_detect(signal, fs, verbose=False), dtype=np.int64)


def _neurokit(signal: np.ndarray, fs: float) -> np.ndarray:
    import neurokit2 as nk

    cleaned = nk.ecg_clean(signal, sampling_rate=int(round(fs)))
    _, info = nk.ecg_peaks(cleaned, sampling_rate=int(round(fs)))
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def _available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def _fmt(score) -> str:
    if score is None:
        return f"{'-':>15}"
    return f"{100 * score.sensitivity:7.2f} {100 * score.positive_predictivity:7.2f}"


# ---------------------------------------------------------------- tables
def detection_table(title: str, items, methods: dict) -> tuple[dict, dict, dict, float]:
    """Print per-record Se/+P for each method; ``items`` yields (name, signals, fs, reference, start, stop, exclude).

    Returns the gross scores per method (strict: beats in refused stretches are missed), the scores
    outside the stretches a method refused as noise, the seconds it refused and the seconds scored (both
    outside the first/last second and the VF episodes the protocol skips).
    """
    from evaluation.scoring import DetectionScore, compare_detections, scored_samples

    print(f"\n## {title}\n")
    print(f"{'record':>10} {'beats':>6} " + " ".join(f"{name:>15}" for name in methods))
    print(f"{'':>10} {'':>6} " + " ".join(f"{'Se%   +P%':>15}" for _ in methods))
    totals = {name: DetectionScore(0, 0, 0) for name in methods}
    readable = {name: DetectionScore(0, 0, 0) for name in methods}
    refused_s = {name: 0.0 for name in methods}
    seconds = {name: 0.0 for name in methods}
    scored_s = 0.0
    for name, signals, fs, reference, start, stop, exclude in items:
        scored_s += scored_samples([(0, signals.shape[-1])], start, stop, exclude) / fs
        row = []
        for method, detector in methods.items():
            if detector is None:
                row.append(None)
                continue
            began = time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detected = detector(signals, fs)
            seconds[method] += time.process_time() - began
            unreadable: list[tuple[int, int]] = []
            if isinstance(detected, tuple):  # ours: (peaks, stretches refused as noise)
                detected, unreadable = detected
            # Strict (EC57): a beat inside a refused stretch counts as missed.
            score = compare_detections(reference, detected, fs, start=start, stop=stop, exclude=exclude)
            totals[method] = totals[method] + score
            readable[method] = readable[method] + compare_detections(
                reference, detected, fs, start=start, stop=stop, exclude=list(exclude) + list(unreadable))
            refused_s[method] += scored_samples(unreadable, start, stop, exclude) / fs  # outside what is skipped anyway
            row.append(score)
        n_ref = next((s.tp + s.fn for s in row if s is not None), 0)
        print(f"{name:>10} {n_ref:>6} " + " ".join(_fmt(s) for s in row))
    print(f"{'gross':>10} {'':>6} " + " ".join(_fmt(totals[m]) if methods[m] else f"{'-':>15}" for m in methods))
    print(f"{'FP / FN':>10} {'':>6} " + " ".join(f"{totals[m].fp:>7} {totals[m].fn:>7}" for m in methods))
    print(f"{'errors':>10} {'':>6} " + " ".join(f"{totals[m].fp + totals[m].fn:>15}" for m in methods))
    print(f"{'CPU s':>10} {'':>6} " + " ".join(f"{seconds[m]:>15.1f}" for m in methods))
    for method in methods:
        if refused_s[method]:
            print(f"{method}: {refused_s[method]:.1f} of {scored_s:.0f} s scored refused as noise (unreadable); outside them "
                  f"{_fmt(readable[method]).strip()} (Se% +P%), {readable[method].fn} FN {readable[method].fp} FP")
    return totals, readable, refused_s, scored_s


def mitdb_items(data: Path, minutes: float | None, split: str | None = None):
    import wfdb

    from evaluation.scoring import beat_samples, excluded_episodes
    from evaluation.splits import split_of

    for name in MITDB_RECORDS:
        path = data / "mitdb" / name
        if not path.with_suffix(".hea").exists() or (split and split_of("mitdb", name) != split):
            continue
        sampto = None if minutes is None else int(minutes * 60 * 360)
        record = wfdb.rdrecord(str(path), sampto=sampto)
        ann = wfdb.rdann(str(path), "atr", sampto=sampto)
        fs = float(record.fs)
        signals = record.p_signal.T
        yield (name, signals, fs, beat_samples(ann.sample, ann.symbol), int(fs), signals.shape[1] - int(fs),
               excluded_episodes(ann.sample, ann.symbol))


def cpsc_items(data: Path, split: str | None = None):
    import wfdb

    from evaluation.scoring import beat_samples
    from evaluation.splits import split_of

    for header in sorted((data / "cpsc2021").glob("*.hea")):
        if split and split_of("cpsc2021", header.stem) != split:
            continue
        record = wfdb.rdrecord(str(header.with_suffix("")))
        ann = wfdb.rdann(str(header.with_suffix("")), "atr")
        fs = float(record.fs)
        signals = np.nan_to_num(record.p_signal.T)
        yield (header.stem, signals, fs, beat_samples(ann.sample, ann.symbol), int(fs), signals.shape[1] - int(fs), [])


def ludb_headers(data: Path) -> list[Path]:
    folder = data / "ludb" / "data" if (data / "ludb" / "data").exists() else data / "ludb"
    return sorted(folder.glob("*.hea"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)


def ludb_lead_ii_items(data: Path, split: str | None = None):
    import wfdb

    from evaluation.scoring import wave_boundaries
    from evaluation.splits import split_of

    for header in ludb_headers(data):
        if split and split_of("ludb", header.stem) != split:
            continue
        record = wfdb.rdrecord(str(header.with_suffix("")))
        names = [n.lower() for n in record.sig_name]
        ann = wfdb.rdann(str(header.with_suffix("")), "ii")
        reference = wave_boundaries(ann.sample, ann.symbol)[:, 1]
        fs = float(record.fs)
        signal = record.p_signal[:, names.index("ii")]
        # LUDB annotates neither the first nor the last beat reliably: score within the annotated span.
        if reference.size == 0:
            continue
        yield header.stem, signal, fs, reference, int(reference[0] - 0.2 * fs), int(reference[-1] + 0.2 * fs), []


def delineation_table(data: Path, reference_tools: bool) -> None:
    import wfdb

    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import PreprocessConfig, analyze_record
    from evaluation.delineation_check import interval_errors
    from evaluation.scoring import boundary_errors, wave_boundaries

    config = PreprocessConfig()
    shift = int(round(config.delay_s * config.fs))
    errors = {"ours (12-lead)": ([], []), "neurokit2 dwt (II)": ([], [])}
    errors_by_interval: dict[str, list[float]] = {"pr_ms": [], "qt_ms": [], "qrs_ms": []}
    use_nk = reference_tools and _available("neurokit2")
    for header in ludb_headers(data):
        record = read_record(header)
        ann = wfdb.rdann(str(header.with_suffix("")), "ii")
        reference = wave_boundaries(ann.sample, ann.symbol)
        analysis = analyze_record(record, config)
        to_raw = lambda idx: np.where(idx >= 0, idx - shift, -1)  # noqa: E731
        on, off = boundary_errors(reference, to_raw(analysis.r_peaks), to_raw(analysis.qrs_onset),
                                  to_raw(analysis.qrs_offset), config.fs)
        errors["ours (12-lead)"][0].extend(on)
        errors["ours (12-lead)"][1].extend(off)
        for name, error in interval_errors(ann, analysis.parameters, config.fs).items():
            errors_by_interval[name].append(error)
        if use_nk:
            import neurokit2 as nk

            lead_ii = record.lead("II").astype(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    cleaned = nk.ecg_clean(lead_ii, sampling_rate=int(record.fs))
                    _, info = nk.ecg_peaks(cleaned, sampling_rate=int(record.fs))
                    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
                    _, waves = nk.ecg_delineate(cleaned, peaks, sampling_rate=int(record.fs), method="dwt")
                    nk_on = np.nan_to_num(np.asarray(waves["ECG_R_Onsets"], dtype=float), nan=-1).astype(np.int64)
                    nk_off = np.nan_to_num(np.asarray(waves["ECG_R_Offsets"], dtype=float), nan=-1).astype(np.int64)
                    on, off = boundary_errors(reference, peaks, nk_on, nk_off, record.fs)
                    errors["neurokit2 dwt (II)"][0].extend(on)
                    errors["neurokit2 dwt (II)"][1].extend(off)
                except Exception as error:  # a reference tool failing on one record is reported, not fatal
                    print(f"  neurokit2 failed on ludb {header.stem}: {type(error).__name__}: {error}")
    print("\n## LUDB QRS delineation vs lead II annotations (ms; error = detected - reference)\n")
    print(f"{'method':>20} {'n':>5} {'on bias':>8} {'on |med|':>9} {'on p90':>7} {'off bias':>9} {'off |med|':>10} {'off p90':>8}")
    for name, (on, off) in errors.items():
        on, off = np.asarray(on), np.asarray(off)
        if on.size == 0 or off.size == 0:
            print(f"{name:>20} {'-':>5}")
            continue
        print(f"{name:>20} {on.size:>5} {np.median(on):>8.1f} {np.median(np.abs(on)):>9.1f} "
              f"{np.percentile(np.abs(on), 90):>7.1f} {np.median(off):>9.1f} {np.median(np.abs(off)):>10.1f} "
              f"{np.percentile(np.abs(off), 90):>8.1f}")


    print("\nper-record interval error (ours - median of the lead II annotations), ms")
    for name, values in errors_by_interval.items():
        values = np.asarray([v for v in values if np.isfinite(v)])
        if values.size:
            print(f"{name:>8}: n {values.size:>3}  bias {np.median(values):6.1f}  |median| {np.median(np.abs(values)):5.1f}"
                  f"  p90 {np.percentile(np.abs(values), 90):5.1f}")


def _af_windows(record_path: Path, fs: float, n_samples: int):
    """``(start, step, label)`` of the whole 10 s windows of a cpsc2021 record; label 1 AF, 0 non-AF, None mixed."""
    import wfdb

    ann = wfdb.rdann(str(record_path), "atr")
    in_af = np.zeros(n_samples, dtype=bool)
    current, start = None, 0
    for sample, note in zip(ann.sample, ann.aux_note):
        note = note.strip("\x00").strip()
        if note.startswith("("):
            if current in ("(AFIB", "(AFL"):
                in_af[start:sample] = True
            current, start = note, int(sample)
    if current in ("(AFIB", "(AFL"):
        in_af[start:] = True
    step = int(10 * fs)
    for i in range(0, n_samples - step + 1, step):
        fraction = in_af[i:i + step].mean()
        yield i, step, (None if 0.0 < fraction < 1.0 else int(fraction == 1.0))


def af_table(data: Path, split: str) -> dict:
    """AF flag per 10 s window: cpsc2021 (reference rhythm annotations) and cinc2021 (no AF label: specificity)."""
    from edge_runtime.formats import read_record
    from edge_runtime.preprocess import analyze_leads
    from evaluation.splits import split_of

    counts = {"tp": 0, "fn": 0, "tn": 0, "fp": 0, "mixed": 0}
    for header in sorted((data / "cpsc2021").glob("*.hea")):
        if split_of("cpsc2021", header.stem) != split:
            continue
        record = read_record(header)
        for i, step, label in _af_windows(header.with_suffix(""), record.fs, record.n_samples):
            if label is None:
                counts["mixed"] += 1
                continue
            flagged = "af_suspected" in analyze_leads(record.signals_mv[:, i:i + step], record.fs,
                                                      record.lead_names).flag_names
            counts[("tp" if flagged else "fn") if label else ("fp" if flagged else "tn")] += 1
    cinc = {"windows": 0, "flagged": []}
    for header in sorted((data / "cinc2021").glob("*.hea")):
        if split_of("cinc2021", header.stem) != split:
            continue
        record = read_record(header).to_standard_12()
        window = record.signals_mv[:, :int(10 * record.fs)]
        cinc["windows"] += 1
        if "af_suspected" in analyze_leads(window, record.fs, record.lead_names).flag_names:
            cinc["flagged"].append(header.stem)
    se = counts["tp"] / max(1, counts["tp"] + counts["fn"])
    sp = counts["tn"] / max(1, counts["tn"] + counts["fp"])
    print(f"\n## AF flag per 10 s window, {split} split (cpsc2021 reference: (AFIB/(AFL rhythm annotations)\n")
    print(f"cpsc2021 windows AF {counts['tp'] + counts['fn']}, non-AF {counts['tn'] + counts['fp']}, "
          f"mixed (skipped) {counts['mixed']}")
    print(f"cpsc2021 Se {100 * se:.1f} %  Sp {100 * sp:.1f} %  "
          f"(TP {counts['tp']} FN {counts['fn']} TN {counts['tn']} FP {counts['fp']})")
    if cinc["windows"]:
        print(f"cinc2021 (no AF label), first 10 s of {cinc['windows']} records: flagged "
              f"{len(cinc['flagged'])} {cinc['flagged']}")
    return {"counts": counts, "se": se, "sp": sp, "cinc": cinc}


def _load_windows(data: Path) -> list[np.ndarray]:
    from edge_runtime.formats import read_record

    windows = []
    for header in sorted((data / "cinc2021").glob("*.hea")):
        record = read_record(header).to_standard_12()
        if record.fs == 500.0 and record.n_samples >= 5000:
            windows.append(record.signals_mv[:, :5000])
    return windows


def throughput_table(data: Path, reference_tools: bool) -> dict:
    from edge_runtime.preprocess import analyze_window
    from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS
    from edge_runtime.signal_core.detect import StreamingRPeakDetector
    from edge_runtime.signal_core.filters import condition

    windows = _load_windows(data)
    if not windows:
        print("\n(no 500 Hz cinc2021 records for the throughput test)")
        return {}
    repeats = 5
    began = time.process_time()
    for _ in range(repeats):
        for window in windows:
            analyze_window(window, 500.0)
    ours_cpu = time.process_time() - began
    seconds = repeats * len(windows) * 10.0
    # The R-peak detector alone, as the chain runs it: 8 independent leads of the conditioned window.
    rows = [STANDARD_LEADS.index(name) for name in INDEPENDENT_LEADS]
    conditioned = [condition(window, 500.0, 0.5, 40.0, 50.0)[rows] for window in windows]
    began = time.process_time()
    for _ in range(repeats):
        for window in conditioned:
            detector = StreamingRPeakDetector(500.0, len(rows))
            detector.process(window)
            detector.flush()
    detect_ms = 1000 * (time.process_time() - began) / (repeats * len(windows))
    per_window_ms = 1000 * ours_cpu / (repeats * len(windows))
    print("\n## Throughput (12-lead 500 Hz, 10 s windows; seconds of ECG per CPU-second, time.process_time)\n")
    print(f"ours, whole chain (filter+detect+extract+delineate+quality): {seconds / ours_cpu:8.0f} x real time "
          f"({per_window_ms:.2f} ms per window, {len(windows)} windows x {repeats})")
    print(f"R-peak detector alone (8 independent leads, conditioned): {detect_ms:.2f} ms per 10 s window")
    out = {"chain_ms": per_window_ms, "detect_ms": detect_ms, "realtime": seconds / ours_cpu, "n": len(windows)}
    if reference_tools and _available("neurokit2"):
        import neurokit2 as nk

        subset = windows[:5]
        began = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for window in subset:
                for lead in window.astype(np.float64):
                    nk.ecg_process(lead, sampling_rate=500)
        nk_cpu = time.process_time() - began
        nk_rate = len(subset) * 10.0 / nk_cpu
        print(f"neurokit2 ecg_process on each of the 12 leads:               {nk_rate:8.1f} x real time "
              f"({len(subset)} windows)")
        print(f"ratio ours / neurokit2: {seconds / ours_cpu / nk_rate:.0f}")
    return out


# ---------------------------------------------------------------- summary for the documentation
DOC_BEGIN = "<!-- bench-signal:begin -->"
DOC_END = "<!-- bench-signal:end -->"
FAMILIES = ("ours", "XQRS", "neurokit2")


def _cell(score) -> str:
    if score is None or score.tp + score.fn == 0:
        return "-"
    return (f"{100 * score.sensitivity:.2f} / {100 * score.positive_predictivity:.2f} "
            f"({score.fn} FN, {score.fp} FP)")


def summary_markdown(detection: dict, af: dict, speed: dict, command: str, outside: dict | None = None) -> list[str]:
    """The documentation's tables from this run: detection per split and set, AF per split, speed."""
    from evaluation.scoring import DetectionScore

    lines = [f"Written by `{command}` (do not edit by hand).", "",
             "| split | set | beats | ours Se / +P % | XQRS (one lead) | neurokit2 (one lead) |",
             "|---|---|---|---|---|---|"]
    for split in ("tune", "report"):
        sets = detection.get(split, {})
        if not sets:
            continue
        pooled = {family: DetectionScore(0, 0, 0) for family in FAMILIES}
        complete = {family: True for family in FAMILIES}
        for name, scores in sets.items():
            beats = next((s.tp + s.fn for s in scores.values() if s is not None), 0)
            lines.append(f"| {split} | {name} | {beats} | " + " | ".join(_cell(scores.get(f)) for f in FAMILIES) + " |")
            for family in FAMILIES:
                if scores.get(family) is None:
                    complete[family] = False
                else:
                    pooled[family] = pooled[family] + scores[family]
        beats = pooled["ours"].tp + pooled["ours"].fn
        lines.append(f"| **{split}** | **all sets** | {beats} | " + " | ".join(
            f"**{_cell(pooled[f])}**" if complete[f] else "-" for f in FAMILIES) + " |")
    for split, (score, refused_s, scored_s) in (outside or {}).items():
        lines += ["", f"{split} split, ours on the beats outside the {refused_s:.1f} s it refused as noise "
                      f"({100 * refused_s / scored_s:.2f} % of the {scored_s:.0f} s scored): {_cell(score)}."]
    if af:
        lines += ["", "| AF flag per 10 s window | cpsc2021 AF windows | Se % | non-AF windows | Sp % "
                      "| cinc2021 records flagged (no AF label) |", "|---|---|---|---|---|---|"]
        for split, result in af.items():
            c = result["counts"]
            lines.append(f"| {split} | {c['tp'] + c['fn']} | {100 * result['se']:.1f} | {c['tn'] + c['fp']} | "
                         f"{100 * result['sp']:.1f} | {len(result['cinc']['flagged'])} of {result['cinc']['windows']} |")
    if speed:
        lines += ["", f"R-peak detector alone: **{speed['detect_ms']:.2f} ms** CPU per 10 s 12-lead 500 Hz window; "
                      f"whole chain {speed['chain_ms']:.2f} ms ({speed['realtime']:.0f}x real time; "
                      f"{speed['n']} cinc2021 windows, time.process_time, machine load varies)."]
    return lines


def write_doc(path: Path, lines: list[str]) -> None:
    """Replace the text between the ``bench-signal`` markers of ``path`` with ``lines``."""
    text = path.read_text()
    if DOC_BEGIN not in text or DOC_END not in text:
        raise ValueError(f"{path} has no {DOC_BEGIN} ... {DOC_END} markers")
    head, rest = text.split(DOC_BEGIN, 1)
    _, tail = rest.split(DOC_END, 1)
    path.write_text(head + DOC_BEGIN + "\n" + "\n".join(lines) + "\n" + DOC_END + tail)


def run(args: argparse.Namespace) -> int:
    from evaluation.scoring import DetectionScore

    data = Path(args.data)
    if not data.exists():
        print(f"elvmass bench-signal: data folder {data} not found (use --data)")
        return 1
    reference = not args.no_reference
    have_wfdb = _available("wfdb")
    if not have_wfdb:
        print("elvmass bench-signal: needs wfdb to read the annotations (pip install 'elvmass[bench]')")
        return 1
    have_nk = reference and _available("neurokit2")
    if reference and not have_nk:
        print("(neurokit2 not installed: its columns are empty; pip install 'elvmass[bench]')")
    notch = {"mitdb": 60.0, "cpsc2021": 50.0, "ludb": 50.0}
    sets = {
        "mitdb": ("mitdb beat detection (150 ms, first/last second and VF episodes skipped)",
                  lambda split: mitdb_items(data, args.minutes, split), {
                      "ours": lambda s, fs: _ours(s, fs, notch["mitdb"]),
                      "ours (lead 1)": lambda s, fs: _ours(s[0], fs, notch["mitdb"]),
                      "XQRS": (lambda s, fs: _xqrs(s[0], fs)) if reference else None,
                      "neurokit2": (lambda s, fs: _neurokit(s[0], fs)) if have_nk else None}),
        "cpsc2021": ("cpsc2021 beat detection (AF, 200 Hz; ours leads I+II, others lead I)",
                     lambda split: cpsc_items(data, split), {
                         "ours": lambda s, fs: _ours(s, fs, notch["cpsc2021"]),
                         "XQRS": (lambda s, fs: _xqrs(s[0], fs)) if reference else None,
                         "neurokit2": (lambda s, fs: _neurokit(s[0], fs)) if have_nk else None}),
        "ludb": ("LUDB lead II beat detection (within the annotated span)",
                 lambda split: ludb_lead_ii_items(data, split), {
                     "ours": lambda s, fs: _ours(s, fs, notch["ludb"]),
                     "XQRS": (lambda s, fs: _xqrs(s, fs)) if reference else None,
                     "neurokit2": (lambda s, fs: _neurokit(s, fs)) if have_nk else None}),
    }
    splits = ("tune", "report") if args.split == "both" else (args.split,)
    detection: dict[str, dict] = {}
    outside: dict[str, list] = {}  # ours outside its refused noise stretches: [score, seconds refused, scored]
    for split in splits:
        for name, (title, items, methods) in sets.items():
            if not (data / name).exists():
                continue
            print(f"\n# {split} split")
            totals, readable, refused_s, scored_s = detection_table(f"{title}, {split} split", items(split), methods)
            if sum(t.tp + t.fn for t in totals.values()):
                detection.setdefault(split, {})[name] = {
                    family: (totals[family] if methods.get(family) else None) for family in FAMILIES}
                outside.setdefault(split, [DetectionScore(0, 0, 0), 0.0, 0.0])
                outside[split][0] = outside[split][0] + readable["ours"]
                outside[split][1] += refused_s["ours"]
                outside[split][2] += scored_s
        pooled = {family: DetectionScore(0, 0, 0) for family in FAMILIES}
        for scores in detection.get(split, {}).values():
            for family in FAMILIES:
                if scores[family] is not None:
                    pooled[family] = pooled[family] + scores[family]
        print(f"\n## {split} split, all sets pooled: " + "; ".join(
            f"{family} {_cell(pooled[family])}, errors {pooled[family].fp + pooled[family].fn}" for family in FAMILIES))
    if (data / "ludb").exists():
        delineation_table(data, reference)
    af = {}
    if (data / "cpsc2021").exists() or (data / "cinc2021").exists():
        af = {split: af_table(data, split) for split in splits}
    speed = throughput_table(data, reference) if (data / "cinc2021").exists() else {}
    if args.write_doc:
        command = "elvmass bench-signal --write-doc " + str(args.write_doc)
        write_doc(Path(args.write_doc), summary_markdown(detection, af, speed, command, outside))
        print(f"\nwrote the summary into {args.write_doc}")
    return 0
