"""analyze_window / analyze_record: the interface training and the device share."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import CINC_LVH_RECORD, LUDB_ANNOTATED_RECORD, PTBXL_RECORD
from edge_runtime.formats import read_record
from edge_runtime.preprocess import BeatAnalysis, PreprocessConfig, analyze_leads, analyze_record, analyze_window
from edge_runtime.record import STANDARD_LEADS, derive_limb_leads
from edge_runtime.resample import resample_signals
from edge_runtime.signal_core.filters import StreamingConditioner


@pytest.fixture(scope="module")
def clean() -> tuple[np.ndarray, BeatAnalysis]:
    signals = read_record(PTBXL_RECORD).to_standard_12().signals_mv
    return signals, analyze_window(signals, 500.0)


def test_config_round_trip_and_beat_length():
    config = PreprocessConfig()
    assert config.beat_length == 400 and config.beat_r_index == 150
    assert PreprocessConfig.from_dict(config.to_dict()) == config
    assert PreprocessConfig.from_dict({**config.to_dict(), "notch_hz": None}).notch_hz is None
    with pytest.raises(ValueError, match="unknown"):
        PreprocessConfig.from_dict({**config.to_dict(), "gain": 2})
    with pytest.raises(ValueError):
        PreprocessConfig(highpass_hz=50.0, lowpass_hz=40.0)
    with pytest.raises(ValueError):
        PreprocessConfig(fs=100.0)


def test_clean_record_is_usable_with_synchronized_beats(clean):
    signals, analysis = clean
    assert analysis.usable, analysis.flags
    assert 10 <= len(analysis.r_peaks) <= 15
    n_beats = analysis.beats.shape[0]
    assert analysis.beats.shape == (n_beats, 12, 400) and analysis.beats.dtype == np.float32
    assert n_beats >= len(analysis.r_peaks) - 2
    # every row is the same window around its (aligned) R peak, in all 12 leads of the baseline-corrected signal
    assert analysis.baseline_corrected is not None and analysis.model_signal is analysis.baseline_corrected
    for row, r in enumerate(analysis.beat_r_peaks):
        np.testing.assert_array_equal(analysis.beats[row], analysis.baseline_corrected[:, r - 150:r + 250])
    # alignment moves a fiducial by a few samples at most on a clean record
    detected = analysis.r_peaks[np.searchsorted(analysis.r_peaks, analysis.beat_r_peaks - 30)]
    assert np.max(np.abs(analysis.beat_r_peaks - detected)) <= 5
    # edge-crossing windows are dropped, never padded
    assert np.all(analysis.beat_r_peaks >= 150) and np.all(analysis.beat_r_peaks + 250 <= signals.shape[1])
    centre = (signals.shape[1] - 1) / 2
    distances = np.abs(analysis.beat_r_peaks - centre)
    assert distances[analysis.middle_beat] == distances.min()


def test_parameters_are_plausible(clean):
    _, analysis = clean
    p = analysis.parameters
    assert set(p) == {"qrs_ms", "p_axis", "r_axis", "t_axis", "pr_ms", "qt_ms", "heart_rate_bpm"}
    assert 60 <= p["qrs_ms"] <= 110
    assert 50 <= p["heart_rate_bpm"] <= 100
    for axis in ("p_axis", "r_axis", "t_axis"):
        assert -180 <= p[axis] <= 180
    # onset < R < offset for every delineated beat
    found = (analysis.qrs_onset >= 0) & (analysis.qrs_offset >= 0)
    assert found.mean() > 0.8
    assert np.all(analysis.qrs_onset[found] < analysis.r_peaks[found])
    assert np.all(analysis.r_peaks[found] < analysis.qrs_offset[found])


def test_batch_conditioning_is_what_the_stream_computes(clean):
    signals, analysis = clean
    conditioner = StreamingConditioner(500.0, 0.5, 40.0, 50.0)
    chunks = [conditioner.process(signals[:, i:i + 250]) for i in range(0, signals.shape[1], 250)]
    np.testing.assert_array_equal(np.concatenate(chunks, axis=1), analysis.conditioned)


def test_other_rates_are_resampled_to_the_analysis_rate(clean):
    signals, analysis = clean
    slow = analyze_window(resample_signals(signals, 500.0, 250.0), 250.0)
    assert slow.fs == 500.0 and slow.conditioned.shape == analysis.conditioned.shape
    assert len(slow.r_peaks) == len(analysis.r_peaks)
    assert np.max(np.abs(slow.r_peaks - analysis.r_peaks)) <= 5


def test_analyze_record_derives_leads_and_real_records_agree():
    lvh = analyze_record(read_record(CINC_LVH_RECORD))
    assert lvh.usable and lvh.beats.shape[1:] == (12, 400)
    ludb = analyze_record(read_record(LUDB_ANNOTATED_RECORD))
    assert ludb.middle_beat is not None and np.isfinite(ludb.parameters["qrs_ms"])


def test_fewer_leads_give_beats_but_no_axes(clean):
    signals, analysis = clean
    two = analyze_leads(signals[:2], 500.0, ("I", "II"))
    assert "no_delineation" in two.flag_names and not two.usable
    assert np.isnan(two.parameters["r_axis"])
    assert len(two.r_peaks) == len(analysis.r_peaks)
    assert two.beats.shape[1] == 2


@pytest.mark.parametrize("bad, message", [
    (np.zeros((11, 5000)), "12 standard leads"),
    (np.zeros(5000), "12 standard leads"),
    (np.zeros((12, 200)), "shorter than one beat window"),
])
def test_bad_shapes_are_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        analyze_window(bad, 500.0)


def test_non_finite_and_rate_errors(clean):
    signals, _ = clean
    for value in (np.nan, np.inf):
        broken = signals.copy()
        broken[3, 100] = value
        with pytest.raises(ValueError, match="NaN/inf"):
            analyze_window(broken, 500.0)
    for fs in (150.0, 1200.0, float("nan")):
        with pytest.raises(ValueError, match="supported range"):
            analyze_window(signals, fs)


def test_standard_leads_order_is_the_contract():
    assert STANDARD_LEADS[0] == "I" and STANDARD_LEADS[5] == "aVF"


@pytest.mark.parametrize("angle", [-60.0, 0.0, 45.0, 90.0, 150.0])
def test_axes_follow_a_known_frontal_dipole(angle):
    # One waveform projected onto a known frontal direction: P, QRS and T axes all equal it.

    waveform = read_record(PTBXL_RECORD).to_standard_12().lead("II").astype(np.float64)
    lead_i = waveform * np.cos(np.radians(angle))
    lead_avf = waveform * np.sin(np.radians(angle))
    lead_ii = lead_avf + lead_i / 2.0
    limb = derive_limb_leads(lead_i, lead_ii)
    rows = [lead_i, lead_ii, limb["III"], limb["aVR"], limb["aVL"], limb["aVF"]] + [waveform] * 6
    analysis = analyze_window(np.stack(rows), 500.0)
    for name in ("p_axis", "r_axis", "t_axis"):
        difference = (analysis.parameters[name] - angle + 180.0) % 360.0 - 180.0
        assert abs(difference) < 1.0, (name, analysis.parameters[name])


def test_training_and_the_device_cut_the_same_baseline_corrected_beats(tmp_path):
    # One implementation: training's dataset entry and the device's Analyzer both run analyze_window.
    pytest.importorskip("torch")
    from edge_runtime.formats.labels import read_label_table
    from edge_runtime.runtime.pipeline import Analyzer
    from training.dataset import analyze_entry, signal_core_files, signal_core_version

    labels = tmp_path / "labels.csv"
    labels.write_text(f"record,lvm_g,age_years,sex,height_cm,weight_kg\n{PTBXL_RECORD},150,28,M,177,76\n")
    entry = read_label_table(labels)[0]
    trained = analyze_entry(entry, PreprocessConfig(), include_full=True)
    record = read_record(PTBXL_RECORD).to_standard_12()
    device = Analyzer().analyze_12(record.signals_mv, record.fs, entry.patient).analysis
    assert device.baseline_corrected is not None
    np.testing.assert_array_equal(trained["beat"], device.beats[device.middle_beat])
    np.testing.assert_array_equal(trained["full"][:, :device.model_signal.shape[1]], device.model_signal)
    # a change anywhere in the signal core invalidates training's caches (the folder was once called signal/)
    hashed = {path.name for path in signal_core_files()}
    assert {"preprocess.py", "estimate.py", "baseline.py", "beats.py", "filters.py", "detect.py", "reversal.py"} <= hashed
    assert len(signal_core_version()) == 64
