"""Where the run loop's CPU goes, stage by stage (``elvmass bench --stages``).

The bench's throughput run (decode -> window -> analyze -> model -> store) is repeated with a CPU-time
accumulator (``time.process_time``) around each stage of the signal chain, the estimate and the store,
wrapped where the caller looks the function up. The stream and its windows are the bench's own; the
first pass is the run itself (decoding included), then the captured windows are analyzed ``repeats``
more times and the best pass per stage is kept (the machine's other load only ever adds time).
Nested stages are listed under their parent; a parent's time includes its children's.
"""

from __future__ import annotations

import collections
import importlib
import tempfile
import time
from pathlib import Path
from typing import Callable

# (label, module the caller looks the function up in, function name); indentation = nesting.
STAGES = (
    ("session.analyze (per window, all below)", None, None),
    ("  railed / absent leads", "edge_runtime.runtime.session", "railed_leads"),
    ("  railed / absent leads", "edge_runtime.runtime.session", "absent_leads"),
    ("  analyze_12 (signal chain + estimate + report)", None, None),
    ("    input checks (finite, shape)", "edge_runtime.preprocess", "_validated"),
    ("    flat and saturated leads", "edge_runtime.signal_core.quality", "flat_leads"),
    ("    flat and saturated leads", "edge_runtime.signal_core.quality", "saturated_leads"),
    ("    conditioning (causal band-pass + notch)", "edge_runtime.preprocess", "condition"),
    ("    R-peak detection", "edge_runtime.preprocess", "_detect"),
    ("    QRS boundaries", "edge_runtime.preprocess", "qrs_boundaries"),
    ("    baseline correction (all below)", "edge_runtime.preprocess", "baseline_corrected"),
    ("      zero-phase high-pass", "edge_runtime.preprocess", "zero_phase_highpass"),
    ("      low-pass + notch", "edge_runtime.preprocess", "smooth"),
    ("      PR-knot spline removed", "edge_runtime.preprocess", "remove_baseline"),
    ("    R-peak alignment", "edge_runtime.preprocess", "align_r_peaks"),
    ("    beat extraction", "edge_runtime.preprocess", "extract_beats"),
    ("    median beat", "edge_runtime.preprocess", "median_along"),
    ("    parameters (axes, PR, QT)", "edge_runtime.preprocess", "_parameters"),
    ("    window guards (pacing, AF, reversal, noise)", "edge_runtime.preprocess", "_window_guards"),
    ("    estimate (all below)", "edge_runtime.runtime.pipeline", "estimate_window"),
    ("      clean beats", "edge_runtime.runtime.estimate", "clean_beats"),
    ("      model (one call per window)", None, None),
    ("    report dict", "edge_runtime.runtime.pipeline", "build_report"),
    ("  store (all below)", None, None),
    ("    window encoding (int16 microvolts, delta8)", "edge_runtime.runtime.store", "encode_window"),
)


def _timed(function: Callable, label: str, totals: dict) -> Callable:
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.process_time() - start
    return wrapper


def stage_breakdown(bundle: str | None, seconds: float, backend: str, precision: str, repeats: int = 5,
                    read_bytes: int | None = None) -> dict:
    """CPU ms per 10 s window of each stage (best of ``repeats`` passes), and decoding per s of ECG.

    Returns
    -------
    dict
        ``stages``: list of ``(label, ms per window)`` in :data:`STAGES` order; ``decode_ms_per_s``;
        ``windows``; ``ecg_s``.
    """
    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.runtime.store import ResultStore
    from edge_runtime.runtime.warmup import warm_up
    from evaluation.commands.bench import _encoded_stream
    from firmware_bridge.decoder import StreamDecoder
    from firmware_bridge.transport import steady_read_bytes

    totals: dict[str, float] = collections.defaultdict(float)
    for label, module_name, name in STAGES:
        if module_name is not None:
            module = importlib.import_module(module_name)
            if not hasattr(module, name):  # an older checkout without this helper: the row reads 0
                continue
            setattr(module, name, _timed(getattr(module, name), label, totals))
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle, backend=backend, precision=precision)
    warm_up(analyzer)
    analyzer.predictor.predict = _timed(analyzer.predictor.predict, "      model (one call per window)", totals)
    analyzer.analyze_12 = _timed(analyzer.analyze_12, "  analyze_12 (signal chain + estimate + report)", totals)
    wire, n_samples = _encoded_stream(seconds)
    windows = []
    with tempfile.TemporaryDirectory() as folder, ResultStore(Path(folder) / "stages.sqlite") as store:
        store.add = _timed(store.add, "  store (all below)", totals)
        session = RuntimeSession(analyzer, PatientContext(77.0, "F", 160.0, 68.0, "BENCH"), store)
        analyze = _timed(session.analyze, "session.analyze (per window, all below)", totals)

        def capture(window):
            windows.append(window)
            return analyze(window)

        session.analyze = capture  # type: ignore[method-assign]
        decoder = StreamDecoder(coalesce=True)
        read_bytes = read_bytes or steady_read_bytes(len(wire) / seconds)  # as the bench's run: real-time reads
        decode_s = 0.0
        for offset in range(0, len(wire), read_bytes):
            start = time.process_time()
            events = decoder.feed(wire[offset:offset + read_bytes])
            decode_s += time.process_time() - start
            for event in events:
                session.handle(event)
        best = dict(totals)
        for _ in range(repeats):
            totals.clear()
            for window in windows:
                analyze(window)
            for label, value in totals.items():
                best[label] = min(best.get(label, value), value)
    n = max(1, len(windows))
    labels = list(dict.fromkeys(label for label, _, _ in STAGES))
    return {"stages": [(label, best.get(label, 0.0) / n * 1e3) for label in labels],
            "decode_ms_per_s": decode_s / (n_samples / 500.0) * 1e3, "read_bytes": read_bytes, "windows": len(windows),
            "ecg_s": n_samples / 500.0}
