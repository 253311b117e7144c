"""Config, patient validation, window assembly and estimate aggregation/status (no model needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.config import ClinicConfig, ConfigError, config_from_dict, load_config
from edge_runtime.record import EcgRecord, PatientContext, STANDARD_LEADS, derive_limb_leads
from edge_runtime.runtime import estimate as est
from edge_runtime.runtime.display import HeartRateMeter, LiveDisplay
from edge_runtime.flags import Flag
from edge_runtime.formats import read_record
from edge_runtime.runtime.estimate import ModelInfo
from edge_runtime.runtime.patient import PatientInputError, merge_patient, patient_from_operator
from edge_runtime.runtime.session import SessionSummary
from edge_runtime.runtime.sources import SerialSource, channels_from_record
from edge_runtime.runtime.window import WindowAssembler
from firmware_bridge.frames import ELECTRODES
from firmware_bridge.text_mode import TextLineDecoder
from training.conformal import conformal_halfwidth


# --- config -----------------------------------------------------------------------------------

def test_config_defaults_and_file(tmp_path):
    assert load_config(None) == ClinicConfig()
    path = tmp_path / "clinic.toml"
    path.write_text('mains_hz = 60\nlvh_threshold_female_g_m2 = 50\nbackend = "litert"\nbundle_path = ""\n')
    config = load_config(path)
    assert (config.mains_hz, config.lvh_threshold_female_g_m2, config.backend) == (60, 50.0, "litert")
    assert config.lvh_threshold_g_m2("M") == 72.0 and config.lvh_threshold_g_m2(None) is None


@pytest.mark.parametrize("values, words", [
    ({"mains_hz": 55}, "mains_hz"),
    ({"lvh_threshold_male_g_m2": -3}, "lvh_threshold_male_g_m2"),
    ({"backend": "tensorflow"}, "backend"),
    ({"precision": "int4"}, "precision"),
    ({"mainz_hz": 50}, "unknown key"),
    ({"mains_hz": "50"}, "integer"),
])
def test_config_refuses_bad_values(values, words):
    with pytest.raises(ConfigError, match=words):
        config_from_dict(values)


def test_config_missing_or_broken_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("mains_hz = = 5")
    with pytest.raises(ConfigError, match="TOML"):
        load_config(bad)


# --- patient ----------------------------------------------------------------------------------

def test_patient_accepts_plausible_values():
    patient = patient_from_operator(age="63", sex="female", height=162, weight="70.5", patient_id="P-0042")
    assert patient == PatientContext(63.0, "F", 162.0, 70.5, "P-0042")
    assert patient_from_operator() == PatientContext()


@pytest.mark.parametrize("kwargs, words", [
    ({"age": 230}, "age_years: 230"),
    ({"height": 17}, "height_cm: 17"),
    ({"weight": "heavy"}, "not a number"),
    ({"weight": float("nan")}, "weight_kg"),
    ({"sex": "x"}, "sex"),
    ({"patient_id": "John Smith"}, "pseudonymous"),
])
def test_patient_refuses_impossible_values(kwargs, words):
    with pytest.raises(PatientInputError, match=words):
        patient_from_operator(**kwargs)


def test_patient_lists_every_problem_and_merge_prefers_operator():
    with pytest.raises(PatientInputError) as error:
        patient_from_operator(age=-1, height=900)
    assert "age_years" in str(error.value) and "height_cm" in str(error.value)
    merged = merge_patient(PatientContext(age_years=50.0), PatientContext(age_years=77.0, sex="F"))
    assert merged.age_years == 50.0 and merged.sex == "F"


# --- window -----------------------------------------------------------------------------------

def _stream(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, size=(8, n)).astype(np.float32)


def test_windows_are_chunk_invariant_and_derive_limb_leads():
    data = _stream(12_345)
    whole = WindowAssembler(fs=500).push(data)
    pieces = WindowAssembler(fs=500)
    chunked = []
    for start in range(0, data.shape[1], 37):
        chunked += pieces.push(data[:, start:start + 37])
    assert len(whole) == len(chunked) == 2
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a.signals_mv, b.signals_mv)
    first = whole[0].signals_mv
    assert first.shape == (12, 5000) and whole[1].start_sample == 5000
    derived = derive_limb_leads(data[0, :5000], data[1, :5000])
    np.testing.assert_allclose(first[STANDARD_LEADS.index("aVF")], derived["aVF"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(first[6:], data[2:, :5000])


def test_no_window_across_a_gap_and_lead_off_is_flagged():
    assembler = WindowAssembler(fs=500)
    assert assembler.push(_stream(4000)) == []
    assert assembler.gap(n_missing=20) == 4000
    windows = assembler.push(_stream(5000, seed=1))
    assert len(windows) == 1 and windows[0].start_sample == 4020 and not windows[0].flags
    windows = assembler.push(_stream(5000, seed=2), lead_off={"V3"})
    assert [f.name for f in windows[0].flags] == ["lead_off"] and "V3" in windows[0].flags[0].reason
    assert not assembler.push(_stream(5000, seed=3))[0].flags  # recovery: next window is clean


# --- estimate ---------------------------------------------------------------------------------

class ConstantPlusAmplitude:
    """A transparent predictor: LVM grows with the beat's peak-to-peak amplitude."""

    def __init__(self):
        self.calls = []

    def predict(self, beats, demographics, parameters):
        self.calls.append((beats.shape, demographics.copy(), parameters.copy()))
        return 100.0 + 10.0 * np.ptp(beats, axis=(1, 2))


MODEL = ModelInfo("demo-test", "ab" * 32, interval_halfwidth_g=25.0, interval_coverage=0.9)
PARAMS = {"qrs_ms": 96.0, "p_axis": 50.0, "r_axis": 30.0, "t_axis": 40.0}


def _beats(n=8, seed=0, outlier=False):
    rng = np.random.default_rng(seed)
    t = np.linspace(-1, 1, 400)
    template = np.exp(-(t / 0.05) ** 2)[None, :] * np.linspace(0.5, 2.0, 12)[:, None]
    beats = np.stack([template * (1 + 0.02 * k) + rng.normal(0, 0.01, template.shape) for k in range(n)])
    if outlier:
        beats[3] = rng.normal(0, 1.0, template.shape)
    return beats.astype(np.float32)


def test_clean_beats_drops_the_odd_beat():
    assert est.clean_beats(_beats(outlier=True)).tolist() == [0, 1, 2, 4, 5, 6, 7]
    assert est.clean_beats(np.zeros((0, 12, 400))).size == 0


def test_estimate_ok_median_interval_and_lvh():
    predictor = ConstantPlusAmplitude()
    patient = PatientContext(60.0, "M", 180.0, 80.0)
    result = est.estimate_window(_beats(), PARAMS, [], patient, predictor, MODEL)
    per_beat = 100.0 + 10.0 * np.ptp(_beats(), axis=(1, 2))
    assert result.estimate_status == "ok" and result.n_beats == 8
    assert result.lvm_g == pytest.approx(np.median(per_beat))
    assert result.lvm_interval_g == pytest.approx((result.lvm_g - 25.0, result.lvm_g + 25.0))
    bsa = math.sqrt(180 * 80 / 3600)
    assert result.lvm_index_g_m2 == pytest.approx(result.lvm_g / bsa)
    assert result.lvh is (result.lvm_index_g_m2 > 72.0) and result.lvh_threshold_g_m2 == 72.0
    shape, demographics, parameters = predictor.calls[0]
    assert shape == (8, 12, 400) and demographics[0].tolist() == [60.0, 1.0, 180.0, 80.0]
    assert parameters[0].tolist() == [96.0, 50.0, 30.0, 40.0]


def test_estimate_female_threshold_and_lvh_verdict_flip():
    low = est.lvh_verdict(80.0, PatientContext(sex="F", height_cm=160, weight_kg=60), 72, 55)
    high = est.lvh_verdict(150.0, PatientContext(sex="F", height_cm=160, weight_kg=60), 72, 55)
    assert low[1] is False and high[1] is True and low[2] == 55


def test_missing_demographics_are_imputed_flagged_and_lvh_unknown():
    result = est.estimate_window(_beats(), {**PARAMS, "p_axis": math.nan}, [], PatientContext(age_years=50.0),
                                 ConstantPlusAmplitude(), MODEL)
    names = [f.name for f in result.flags]
    assert result.estimate_status == "ok" and result.lvm_g is not None
    assert {"imputed_height_cm", "imputed_weight_kg", "imputed_p_axis", "lvh_unknown"} <= set(names)
    assert result.lvh is None and result.lvm_index_g_m2 is None


@pytest.mark.parametrize("flag, status", [
    ("af_suspected", "outside_population"), ("wide_qrs", "outside_population"),
    ("pacing", "no_estimate"), ("lead_off", "no_estimate"), ("noise", "no_estimate"),
    ("saturation", "no_estimate"), ("needs_12_leads", "no_estimate"),
])
def test_rhythm_and_quality_flags_decide_the_status(flag, status):
    result = est.estimate_window(_beats(), PARAMS, [Flag(flag, "test")],
                                 PatientContext(60.0, "M", 180.0, 80.0), ConstantPlusAmplitude(), MODEL)
    assert result.estimate_status == status
    assert (result.lvm_g is None) == (status == "no_estimate")
    assert flag in [f.name for f in result.flags]


def test_unregistered_flag_is_refused_and_no_model_gives_no_estimate():
    with pytest.raises(KeyError, match="brand_new_problem"):
        Flag("brand_new_problem", "x")
    result = est.estimate_window(_beats(), PARAMS, [], PatientContext(), None, None)
    assert result.estimate_status == "no_estimate" and "no_model" in [f.name for f in result.flags]


def test_too_few_clean_beats_and_bad_model_output():
    result = est.estimate_window(_beats(n=2), PARAMS, [], PatientContext(), ConstantPlusAmplitude(), MODEL)
    assert result.estimate_status == "no_estimate" and "no_clean_beats" in [f.name for f in result.flags]

    class NanModel:
        def predict(self, beats, demographics, parameters):
            return np.full(len(beats), np.nan)

    result = est.estimate_window(_beats(), PARAMS, [], PatientContext(), NanModel(), MODEL)
    assert result.estimate_status == "no_estimate" and result.lvm_g is None


def test_backend_refusal_becomes_a_named_no_estimate():
    class NeedsSex:
        def predict(self, beats, demographics, parameters):
            if np.isnan(demographics[:, 1]).any():
                raise ValueError("sex is unknown: the model needs it (1 = male, 0 = female)")
            return np.full(len(beats), 150.0)

    result = est.estimate_window(_beats(), PARAMS, [], PatientContext(age_years=50.0), NeedsSex(), MODEL)
    assert result.estimate_status == "no_estimate" and result.lvm_g is None
    assert [f.name for f in result.flags] == ["sex_unknown"] and "sex" in result.flags[0].reason


# --- sources and display ----------------------------------------------------------------------

def test_channels_from_a_two_lead_record_report_the_missing_electrodes_off():
    data = np.random.default_rng(0).normal(0, 0.2, (2, 1000)).astype(np.float32)
    signals, off = channels_from_record(EcgRecord(data, 200.0, ("I", "II")))
    assert signals.shape == (8, 1000) and np.array_equal(signals[:2], data) and not signals[2:].any()
    assert [e for e, o in zip(ELECTRODES, off) if o] == ["V1", "V2", "V3", "V4", "V5", "V6"]


def test_heart_rate_meter_and_status_line_on_a_real_record():
    record = read_record(PTBXL_RECORD)
    lead_ii = record.lead("II")
    meter = HeartRateMeter(record.fs)
    for start in range(0, lead_ii.size, 50):
        meter.process(lead_ii[start:start + 50])
    assert 60 <= meter.bpm <= 80  # analyze_window measures 71 bpm on this ECG

    class Session:  # what the display reads from a RuntimeSession
        assembler = WindowAssembler(fs=500)
        lead_off = frozenset({"V3"})
        summary = SessionSummary()

    Session.assembler.push(_stream(2500))
    display = LiveDisplay()
    display._meter = meter
    line = display.line(Session())
    assert "electrode off: V3" in line and f"HR {meter.bpm:.0f} bpm" in line and " 5.0/10 s" in line


# --- interval calibration ---------------------------------------------------------------------

def test_conformal_halfwidth_rank_and_coverage():
    residuals = np.arange(1, 20, dtype=float)  # n = 19 -> rank ceil(20 * 0.9) = 18
    assert conformal_halfwidth(residuals, 0.9) == 18.0
    assert conformal_halfwidth(-residuals, 0.5) == 10.0  # absolute values
    with pytest.raises(ValueError, match="too few"):
        conformal_halfwidth(np.ones(5), 0.9)
    # On fresh draws from the same distribution the conformal half-width covers >= 90 %.
    rng = np.random.default_rng(0)
    q = conformal_halfwidth(rng.laplace(0, 10, 400), 0.9)
    assert np.mean(np.abs(rng.laplace(0, 10, 20000)) <= q) >= 0.88


def test_per_sample_lead_off_is_attributed_to_the_window_that_contains_it():
    assembler = WindowAssembler(fs=100.0, window_s=1.0)  # 100-sample windows
    lead_off = np.zeros((150, 9), dtype=bool)
    lead_off[120, 4] = True  # V2 off at sample 120: the second window only
    windows = assembler.push(np.zeros((8, 150), dtype=np.float32), lead_off=lead_off)
    windows += assembler.push(np.zeros((8, 60), dtype=np.float32), lead_off=np.zeros((60, 9), dtype=bool))
    assert len(windows) == 2
    assert windows[0].lead_off == frozenset() and not windows[0].flags
    assert windows[1].lead_off == {"V2"} and windows[1].flags[0].name == "lead_off"
    with pytest.raises(ValueError):
        assembler.push(np.zeros((8, 5), dtype=np.float32), lead_off=np.zeros((4, 9), dtype=bool))


def test_serial_source_asks_the_binary_decoder_for_coalesced_blocks():
    assert SerialSource("loop://", reconnect=False).transport.decoder.coalesce is True
    assert isinstance(SerialSource("loop://", reconnect=False, text_mode=True).transport.decoder, TextLineDecoder)
