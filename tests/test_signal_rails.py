"""Per-lead rails in the R-peak detector (issue 16, fifth pass): a lead at its rail is left out there."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.formats import read_record
from edge_runtime.signal_core.detect import DETECTION_BAND, StreamingRPeakDetector, detect_r_peaks
from edge_runtime.signal_core.filters import condition, group_delay_s
from edge_runtime.signal_core.rails import RailTracker
from evaluation.scoring import beat_samples, compare_detections

FS = 500.0
RAILS_S = [(6.1, 6.8), (14.3, 15.0), (22.2, 22.9)]  # like MIT-BIH 116's lead 1: 0.4-0.7 s at the rail


def two_leads() -> np.ndarray:
    """Leads II and V2 of the bundled PTB-XL record, three times over (30 s)."""
    record = read_record(PTBXL_RECORD).to_standard_12()
    names = list(record.lead_names)
    two = record.signals_mv[[names.index("II"), names.index("V2")]].astype(np.float64)
    return np.concatenate([two, two, two], axis=1)


def railed(signals: np.ndarray, rail_mv: float, lead: int = 0) -> np.ndarray:
    """``signals`` with ``lead`` held at ``rail_mv`` (one code: a saturated front end) over ``RAILS_S``."""
    out = signals.copy()
    for a, b in RAILS_S:
        out[lead, int(a * FS):int(b * FS)] = rail_mv
    return out


def without_raw(signals: np.ndarray, fs: float, notch_hz: float) -> np.ndarray:
    """The detector as before the fifth pass: conditioned samples only (no rail mask), raw time."""
    conditioned = condition(signals, fs, *DETECTION_BAND, notch_hz)
    detector = StreamingRPeakDetector(fs, signals.shape[0])
    peaks = np.unique(np.concatenate([detector.process(conditioned), detector.flush()]))
    return peaks - int(round(group_delay_s(fs, *DETECTION_BAND, notch_hz) * fs))


def test_rail_tracker_marks_runs_at_the_lead_extreme_only():
    rng = np.random.default_rng(0)
    x = np.round(np.sin(np.arange(3000) / 40.0) + rng.normal(0, 0.01, 3000), 2)[None, :]
    x[0, 1500:1520] = 0.30  # flat quantized stretch in the middle of the range: not a rail
    x[0, 2000:2020] = 1.8  # beyond every earlier sample: a rail
    x[0, 100:140] = -1.5  # at the extreme, but within the first 2 s: the range is not known yet
    tracker = RailTracker(FS, 1, 0.05, 0.5, 2.0)
    for i in range(0, 3000, 7):
        tracker.process(x[:, i:i + 7])
    assert tracker.live(0, 1900) is None  # nothing railed there
    live = tracker.live(0, 3000)[0]
    assert live[1500:1520].all() and live[100:140].all()
    assert not live[2000 - 25:2020 + 250].any()
    assert live[:2000 - 25].sum() == 2000 - 25 and live[2020 + 250:].all()


@pytest.mark.parametrize("rail_mv", [6.0, -6.0])
def test_a_lead_at_its_rail_is_left_out_of_the_detection(rail_mv):
    clean = two_leads()
    reference = detect_r_peaks(clean, FS)
    signals = railed(clean, rail_mv)
    start, stop = int(FS), signals.shape[1] - int(FS)
    score = compare_detections(reference, detect_r_peaks(signals, FS), FS, start=start, stop=stop)
    assert score.tp >= 30 and score.fn == 0 and score.fp == 0, score
    # the detector before this change took the steps into and out of the rail for beats
    before = compare_detections(reference, without_raw(signals, FS, 50.0), FS, start=start, stop=stop)
    assert before.fn + before.fp >= 4, before


def test_every_lead_at_its_rail_leaves_the_detection_as_it_was():
    # some lead must carry the detection: with all of them railed none is left out
    signals = railed(railed(two_leads(), 6.0, lead=0), 6.0, lead=1)
    np.testing.assert_array_equal(detect_r_peaks(signals, FS), without_raw(signals, FS, 50.0))


@pytest.mark.parametrize("sizes", [[1], [7], [500], [13, 1, 333]])
def test_streaming_with_raw_samples_is_chunk_invariant(sizes):
    raw = railed(two_leads(), 6.0)[:, :int(16 * FS)]
    conditioned = condition(raw, FS, *DETECTION_BAND, 50.0)
    batch = StreamingRPeakDetector(FS, 2)
    expected = np.concatenate([batch.process(conditioned, raw=raw), batch.flush()])
    detector = StreamingRPeakDetector(FS, 2)
    found, i, k = [], 0, 0
    while i < raw.shape[1]:
        n = sizes[k % len(sizes)]
        found.append(detector.process(conditioned[:, i:i + n], raw=raw[:, i:i + n]))
        i, k = i + n, k + 1
    found.append(detector.flush())
    assert len(expected) >= 15
    np.testing.assert_array_equal(np.concatenate(found), expected)


def test_latency_with_raw_samples_is_bounded():
    # the features wait for the rail mask: 16 ms (a rail's shortest run) + 50 ms (margin before it)
    raw = railed(two_leads(), 6.0)
    conditioned = condition(raw, FS, *DETECTION_BAND, 50.0)
    detector = StreamingRPeakDetector(FS, 2)
    latencies = []
    for start in range(0, raw.shape[1], 10):
        for r in detector.process(conditioned[:, start:start + 10], raw=raw[:, start:start + 10]):
            if r > 2.0 * FS:
                latencies.append((min(start + 10, raw.shape[1]) - r) / FS)
    assert len(latencies) >= 25 and max(latencies) < 0.6 + 0.066


def test_raw_samples_come_with_every_chunk_or_none():
    raw = two_leads()[:, :1000]
    detector = StreamingRPeakDetector(FS, 2)
    detector.process(raw[:, :500], raw=raw[:, :500])
    with pytest.raises(ValueError, match="every chunk"):
        detector.process(raw[:, 500:])
    detector = StreamingRPeakDetector(FS, 2)
    detector.process(raw[:, :500])
    with pytest.raises(ValueError, match="every chunk"):
        detector.process(raw[:, 500:], raw=raw[:, 500:])
    with pytest.raises(ValueError, match="differ in shape"):
        StreamingRPeakDetector(FS, 2).process(raw[:, :500], raw=raw[:, :400])


@pytest.mark.shared
@pytest.mark.parametrize("seconds", [(995, 1010), (1385, 1410)])
def test_mitdb_116_lead_1_at_its_rails(seconds):
    # A record of the tune split (evaluation/splits.py): lead 1 sits at the ADC's rails (codes 0 and
    # 2047) for 0.4-0.7 s at a time while lead 2 shows every QRS.
    import wfdb  # lazy: heavy

    path = shared_path("mitdb", "116.hea").with_suffix("")
    lo, hi = (int(s * 360) for s in seconds)
    record = wfdb.rdrecord(str(path), sampfrom=lo, sampto=hi)
    ann = wfdb.rdann(str(path), "atr", sampfrom=lo, sampto=hi)
    reference = beat_samples(ann.sample, ann.symbol) - lo
    signals = record.p_signal.T
    start, stop = 3 * 360, signals.shape[1] - 360
    score = compare_detections(reference, detect_r_peaks(signals, 360.0, notch_hz=60.0), 360.0, start=start, stop=stop)
    assert score.fn == 0 and score.fp == 0, score
    before = compare_detections(reference, without_raw(signals, 360.0, 60.0), 360.0, start=start, stop=stop)
    assert before.fn + before.fp >= 2, before
