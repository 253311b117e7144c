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
from evaluation.scoring import beat_samples, compare_detections, excluded_episodes, scored_samples, wave_boundaries


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


def test_the_tune_report_split_is_fixed_by_rule():
    from evaluation.splits import split_of

    assert [split_of("mitdb", name) for name in ("100", "101", "208", "203")] == ["tune", "report", "tune", "report"]
    assert split_of("ludb", "ludb_1") == "report" and split_of("ludb", "2") == "tune"
    assert split_of("cpsc2021", "data_101_6") == "tune"
    assert split_of("cpsc2021", "data_21_7") == split_of("cpsc2021", "data_84_1") == "report"  # by patient
    assert split_of("cinc2021", "JS20014") == "tune" and split_of("cinc2021", "JS20013") == "report"
    with pytest.raises(ValueError, match="patient"):
        split_of("cpsc2021", "101")
    with pytest.raises(ValueError, match="no split"):
        split_of("ptbdb", "s0010")


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
    # After the 2 s learning phase every beat is final within ~585 ms of its R peak (docs/signal.md):
    # energy maximum ~135 ms + 250 ms noise look-ahead + 200 ms refractory period.
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    conditioned = condition(signals, 500.0, 0.5, 40.0, 50.0)
    detector = StreamingRPeakDetector(500.0, 12)
    latencies = []
    for start in range(0, conditioned.shape[1], 10):
        chunk = conditioned[:, start:start + 10]
        for r in detector.process(chunk):
            if r > 2.0 * 500:
                latencies.append((start + chunk.shape[1] - r) / 500.0)
    assert len(latencies) >= 6 and max(latencies) < 0.6


# ---------------------------------------------------------------- failure modes (synthetic, from a real record)
def _with_pause(signals: np.ndarray, r_peaks: np.ndarray, pause_s: float, noise_mv: float,
                rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """The record with a sinus pause of ``pause_s`` (baseline + noise) between beats 4 and 5."""
    a, b = int(r_peaks[4] + 0.55 * 500), int(r_peaks[5] - 0.25 * 500)
    n = int(pause_s * 500)
    gap = np.linspace(signals[:, a - 1], signals[:, b], n).T
    joined = np.concatenate([signals[:, :a], gap, signals[:, b:], signals[:, r_peaks[1]:]], axis=1)
    return joined + rng.normal(0.0, noise_mv, joined.shape), a, a + n


@pytest.mark.parametrize("pause_s", [3.0, 4.0, 6.0])
@pytest.mark.parametrize("noise_mv", [0.01, 0.03, 0.05])
def test_long_pause_invents_no_beats(pause_s, noise_mv):
    # Search-back lowers the threshold when no beat comes; in a long pause it must not reach the noise.
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    r_peaks = detect_r_peaks(signals, 500.0)
    paused, lo, hi = _with_pause(signals, r_peaks, pause_s, noise_mv, np.random.default_rng(0))
    found = detect_r_peaks(paused, 500.0)
    assert not np.any((found > lo + 50) & (found < hi + 50)), found[(found > lo) & (found < hi + 50)] / 500.0
    # ... and every beat after the pause is found again (same count as beats outside the pause)
    assert np.sum(found >= hi + 50) == np.sum(r_peaks >= r_peaks[5]) + np.sum(r_peaks >= r_peaks[1])


def _ectopic_sequence(pattern: str, rr_s: list[float], gain: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Real sinus beats (HR06004) and wide ventricular beats (``gain`` x the QRS amplitude) in the given order."""
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    r = detect_r_peaks(signals, 500.0)
    sinus = signals[:, r[3] - 150:r[3] + 250]
    t = np.arange(400) / 500.0 - 0.3
    rng = np.random.default_rng(2)
    lead_gain = gain * rng.choice([-1.0, 1.0], 12) * rng.uniform(1.0, 2.5, 12)
    ventricular = lead_gain[:, None] * (np.exp(-(t / 0.035) ** 2) - 0.6 * np.exp(-((t - 0.06) / 0.04) ** 2)
                                        - 0.3 * np.exp(-((t - 0.3) / 0.08) ** 2))
    n = int((sum(rr_s) + 1.5) * 500)
    out, peaks, position = np.zeros((12, n)), [], 0.6
    for kind, rr in zip(pattern, rr_s):
        i = int(position * 500)
        out[:, i - 150:i + 250] += sinus if kind == "N" else ventricular
        peaks.append(i)
        position += rr
    return out + rng.normal(0.0, 0.01, out.shape), np.asarray(peaks)


@pytest.mark.parametrize("pattern, rr_s", [
    ("NNNNN" + "V" * 6 + "NNNNN", [0.8] * 4 + [0.5] + [0.4] * 6 + [1.1] + [0.8] * 4),  # ventricular run, 150 bpm
    ("NV" * 8, [0.5, 1.0] * 8),  # bigeminy
    ("NNVV" * 4, [0.8, 0.5, 0.45, 1.1] * 4),  # couplets
])
def test_runs_of_ventricular_ectopy_are_beats_not_noise(pattern, rr_s):
    signals, truth = _ectopic_sequence(pattern, rr_s)
    found, unreadable = detect_r_peaks(signals, 500.0, return_unreadable=True)
    score = compare_detections(truth, found, 500.0, tolerance_s=0.075, start=500)
    assert score.fn == 0 and score.fp == 0, score
    assert unreadable == []  # wide fast beats are not a noise burst


@pytest.mark.parametrize("pattern, rr_s", [
    ("NNNNNN" + "NV" * 12 + "NN", [0.8] * 6 + [0.45, 0.9] * 12 + [0.8, 0.8]),  # bigeminy
    ("NNNNNN" + "NNV" * 8 + "NN", [0.8] * 6 + [0.8, 0.45, 0.9] * 8 + [0.8, 0.8]),  # trigeminy
])
@pytest.mark.parametrize("n_leads", [12, 2])
def test_sinus_beats_between_large_ventricular_beats_are_found_by_shape(pattern, rr_s, n_leads):
    # Ventricular beats 5x the sinus QRS set the signal level 25x above the sinus beats' energy: the
    # energy thresholds alone missed 12 sinus beats in each case (commit 966360b); search-back by
    # shape finds them, and still invents nothing in the compensatory pauses.
    signals, truth = _ectopic_sequence(pattern, rr_s, gain=5.0)
    found, unreadable = detect_r_peaks(signals[:n_leads], 500.0, return_unreadable=True)
    score = compare_detections(truth, found, 500.0, tolerance_s=0.075, start=500)
    assert score.fn == 0 and score.fp == 0, score
    assert unreadable == []


def test_noise_burst_is_refused_not_guessed():
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    signals = np.concatenate([signals, signals, signals], axis=1)
    clean = detect_r_peaks(signals, 500.0)
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(1)
    burst = sosfilt(butter(4, [20, 150], "bandpass", fs=500.0, output="sos"), rng.normal(0.0, 2.0, (12, 1250)))
    noisy = signals.copy()
    noisy[:, 6000:7250] += burst  # 2.5 s of muscle noise about the size of the QRS
    found, unreadable = detect_r_peaks(noisy, 500.0, return_unreadable=True)
    assert len(unreadable) == 1 and unreadable[0][0] <= 6100 and unreadable[0][1] >= 7200, unreadable
    # nothing is guessed inside: every reported beat is a true one, and all beats away from the burst are found
    assert all(np.min(np.abs(clean - p)) <= 10 for p in found), found
    away = clean[(clean < unreadable[0][0]) | (clean >= unreadable[0][1])]
    assert all(np.min(np.abs(found - p)) <= 10 for p in away)
    # a clean record has no unreadable stretch, and a milder burst is read through, not refused
    assert detect_r_peaks(signals, 500.0, return_unreadable=True)[1] == []
    mild = signals.copy()
    mild[:, 6000:7250] += 0.1 * burst
    peaks, refused = detect_r_peaks(mild, 500.0, return_unreadable=True)
    assert refused == [] and len(peaks) == len(clean)


def test_scored_samples_counts_what_compare_detections_scores():
    # a record of 1000 samples scored from 100 to 900, a VF episode 400-500 skipped
    assert scored_samples([(0, 1000)], 100, 900, [(400, 500)]) == 700
    # refused stretches: one partly before the start, one across the skipped episode, one open-ended episode
    assert scored_samples([(50, 150), (450, 650)], 100, 900, [(400, 500)]) == 50 + 150
    assert scored_samples([(0, 1000)], 0, None, [(800, np.iinfo(np.int64).max)]) == 800
    assert scored_samples([], 0, 1000) == 0


# Regression floors on the report split (records never used for tuning; evaluation/splits.py): mitdb odd
# records (full length), cpsc2021 patients 21 and 84, LUDB odd records, pooled, with the protocol of
# `elvmass bench-signal` (150 ms, first/last second and VF episodes skipped, noise stretches the
# detector refuses count as missed). docs/signal.md states the measured values; these floors sit just under
# (measured with the search-back by shape: Se 99.76 % / +P 99.81 %, 72 FN / 55 FP of 29618 beats).
REPORT_MIN_SENSITIVITY = 0.9974
REPORT_MIN_POSITIVE_PREDICTIVITY = 0.9978
# Issue 16 asks to refuse a noise stretch rather than guess, and for Se and +P >= 99.8 %: on the beats the
# detector did not refuse, both hold (measured 99.83 % / 99.81 %, 49 FN / 55 FP), and the refused time is
# bounded so that refusing cannot stand in for detecting (measured 11.0 s of 22,287 s scored, 0.05 %,
# outside the VF episodes the protocol already skips).
READ_MIN_SENSITIVITY = READ_MIN_POSITIVE_PREDICTIVITY = 0.998
MAX_REFUSED_FRACTION = 0.001


@pytest.mark.shared
def test_detection_floors_on_the_report_split(shared_data):
    from evaluation.commands.bench_signal import _ours, cpsc_items, ludb_lead_ii_items, mitdb_items
    from evaluation.scoring import DetectionScore, scored_samples

    sets = {"mitdb": (mitdb_items(shared_data, None, "report"), 60.0),
            "cpsc2021": (cpsc_items(shared_data, "report"), 50.0),
            "ludb": (ludb_lead_ii_items(shared_data, "report"), 50.0)}
    total, read, names = DetectionScore(0, 0, 0), DetectionScore(0, 0, 0), []
    scored_s = refused_s = 0.0
    for database, (items, notch) in sets.items():
        for name, signals, fs, reference, start, stop, exclude in items:
            peaks, refused = _ours(signals, fs, notch)
            total = total + compare_detections(reference, peaks, fs, start=start, stop=stop, exclude=exclude)
            read = read + compare_detections(reference, peaks, fs, start=start, stop=stop,
                                             exclude=list(exclude) + list(refused))
            scored_s += scored_samples([(0, signals.shape[-1])], start, stop, exclude) / fs
            refused_s += scored_samples(refused, start, stop, exclude) / fs
            names.append(f"{database}/{name}")
    assert len(names) >= 11 + 6 + 30, names  # the whole split, not a sample
    assert total.sensitivity >= REPORT_MIN_SENSITIVITY and total.positive_predictivity >= REPORT_MIN_POSITIVE_PREDICTIVITY, total
    assert read.sensitivity >= READ_MIN_SENSITIVITY and read.positive_predictivity >= READ_MIN_POSITIVE_PREDICTIVITY, read
    assert 0.0 < refused_s <= MAX_REFUSED_FRACTION * scored_s, (refused_s, scored_s)
