"""R-peak detection: chunk-invariance, accuracy against annotations, rates 200-1000 Hz."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from edge_runtime.assets import LUDB_ANNOTATED_RECORD, PTBXL_RECORD
from edge_runtime.formats import read_record
from edge_runtime.resample import resample_signals
from edge_runtime.signal_core.detect import StreamingRPeakDetector, detect_r_peaks
from edge_runtime.signal_core.filters import condition
from evaluation.scoring import beat_samples, compare_detections, excluded_episodes, wave_boundaries


def ludb_reference() -> tuple[np.ndarray, np.ndarray]:
    import wfdb  # lazy: heavy

    record = read_record(LUDB_ANNOTATED_RECORD).to_standard_12()
    ann = wfdb.rdann(str(LUDB_ANNOTATED_RECORD.with_suffix("")), "ii")
    return record.signals_mv, wave_boundaries(ann.sample, ann.symbol)


def test_bundled_record_beats_match_annotations_without_shared_data():
    signals, reference = ludb_reference()
    peaks = detect_r_peaks(signals, 500.0)
    # LUDB leaves the first and last beat unannotated: score within the annotated span.
    score = compare_detections(reference[:, 1], peaks, 500.0, start=reference[0, 0] - 50, stop=reference[-1, 2] + 50)
    assert score.tp >= 6 and score.fn == 0 and score.fp == 0, score
    # R peaks (raw time) sit inside the annotated QRS
    matched = [int(np.argmin(np.abs(peaks - p))) for p in reference[:, 1]]
    assert np.all(peaks[matched] >= reference[:, 0] - 5) and np.all(peaks[matched] <= reference[:, 2] + 5)


@pytest.mark.parametrize("sizes", [[1], [7], [500], [13, 1, 333]])
def test_streaming_detector_is_chunk_invariant(sizes):
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv[:, :3000]
    conditioned = condition(signals, 500.0, 0.5, 40.0, 50.0)
    batch = StreamingRPeakDetector(500.0, 12)
    expected = np.concatenate([batch.process(conditioned), batch.flush()])
    detector = StreamingRPeakDetector(500.0, 12)
    found, i, k = [], 0, 0
    while i < conditioned.shape[1]:
        n = sizes[k % len(sizes)]
        found.append(detector.process(conditioned[:, i:i + n]))
        i, k = i + n, k + 1
    found.append(detector.flush())
    assert len(expected) >= 5
    np.testing.assert_array_equal(np.concatenate(found), expected)


@pytest.mark.parametrize("fs", [200.0, 250.0, 360.0, 1000.0])
def test_same_beats_at_other_rates(fs):
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    reference = detect_r_peaks(signals, 500.0) / 500.0
    found = detect_r_peaks(resample_signals(signals, 500.0, fs), fs) / fs
    assert len(found) == len(reference)
    assert np.max(np.abs(found - reference)) < 0.015


def test_single_lead_and_flat_input():
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    assert len(detect_r_peaks(signals[1], 500.0)) == len(detect_r_peaks(signals, 500.0))
    assert detect_r_peaks(np.zeros(5000), 500.0).size == 0
    with pytest.raises(ValueError, match="method"):
        detect_r_peaks(signals, 500.0, method="magic")
    with pytest.raises(ValueError, match="supported range"):
        detect_r_peaks(signals, 150.0)


def test_scoring_matches_one_to_one_within_tolerance():
    score = compare_detections(np.array([100, 500, 900]), np.array([110, 120, 700, 905]), 100.0, tolerance_s=0.15)
    assert (score.tp, score.fp, score.fn) == (2, 2, 1)
    skipped = compare_detections(np.array([100, 500]), np.array([500, 600]), 100.0, exclude=[(550, 650)])
    assert (skipped.tp, skipped.fp, skipped.fn) == (1, 0, 1)
    assert list(beat_samples(np.array([1, 2, 3, 4]), ["N", "+", "V", "~"])) == [1, 3]
    assert excluded_episodes(np.array([10, 20, 30]), ["[", "!", "]"]) == [(10, 31)]


@pytest.mark.shared
@pytest.mark.parametrize("name", ["119", "208"])
def test_mitdb_minutes(name):
    import wfdb  # lazy: heavy

    path = shared_path("mitdb", f"{name}.hea").with_suffix("")
    record = wfdb.rdrecord(str(path), sampto=360 * 300)
    ann = wfdb.rdann(str(path), "atr", sampto=360 * 300)
    peaks = detect_r_peaks(record.p_signal.T, 360.0, notch_hz=60.0)
    score = compare_detections(beat_samples(ann.sample, ann.symbol), peaks, 360.0, start=360,
                               stop=360 * 299, exclude=excluded_episodes(ann.sample, ann.symbol))
    assert score.sensitivity > 0.995 and score.positive_predictivity > 0.995, score


def test_streaming_latency_is_bounded():
    # After the 2 s learning phase every beat is final within ~335 ms of its R peak (docs/signal.md).
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    conditioned = condition(signals, 500.0, 0.5, 40.0, 50.0)
    detector = StreamingRPeakDetector(500.0, 12)
    latencies = []
    for start in range(0, conditioned.shape[1], 10):
        chunk = conditioned[:, start:start + 10]
        for r in detector.process(chunk):
            if r > 2.0 * 500:
                latencies.append((start + chunk.shape[1] - r) / 500.0)
    assert len(latencies) >= 6 and max(latencies) < 0.4
