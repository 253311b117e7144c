"""EcgRecord and PatientContext: validation, lead derivation, standard order, normalization flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_runtime.formats.limits import amplitudes_look_normalized, note_normalized_amplitudes
from edge_runtime.record import (
    NORMALIZED_AMPLITUDE_NOTE,
    STANDARD_LEADS,
    EcgRecord,
    PatientContext,
    RecordError,
    canonical_lead_name,
    derive_limb_leads,
    normalize_sex,
)


def test_canonical_lead_names():
    assert [canonical_lead_name(n) for n in ("avr", " V1 ", "Lead II", "D3", "MLII")] == ["aVR", "V1", "II", "III", "MLII"]


def test_derived_limb_leads_follow_einthoven_and_goldberger():
    lead_i, lead_ii = np.array([1.0, -0.2]), np.array([0.4, 0.6])
    derived = derive_limb_leads(lead_i, lead_ii)
    np.testing.assert_allclose(derived["III"], lead_ii - lead_i)
    np.testing.assert_allclose(derived["aVR"] + derived["aVL"] + derived["aVF"], 0.0, atol=1e-12)
    np.testing.assert_allclose(derived["aVL"], (lead_i - derived["III"]) / 2)


def test_to_standard_12_orders_derives_and_drops_extras():
    rng = np.random.default_rng(3)
    names = ("V6", "V5", "V4", "V3", "V2", "V1", "II", "I", "vx")
    record = EcgRecord(rng.standard_normal((9, 20)), 500.0, names)
    standard = record.to_standard_12()
    assert standard.lead_names == STANDARD_LEADS
    np.testing.assert_array_equal(standard.lead("V6"), record.lead("V6"))
    np.testing.assert_allclose(standard.lead("III"), record.lead("II") - record.lead("I"), atol=1e-6)
    with pytest.raises(RecordError, match="missing leads"):
        EcgRecord(rng.standard_normal((2, 20)), 500.0, ("I", "V1")).to_standard_12()


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"signals_mv": np.zeros(5)}, "2-D"),
        ({"lead_names": ("I",)}, "2 signal rows but 1 lead names"),
        ({"lead_names": ("I", "i")}, "duplicate"),
        ({"fs": 0.0}, "positive"),
        ({"fs": math.nan}, "positive"),
        ({"signals_mv": np.zeros((2, 0))}, "no samples"),
        ({"signals_mv": np.array([[0.0, np.nan], [0.0, 0.0]])}, "non-finite"),
    ],
)
def test_record_validation(kwargs, problem):
    arguments = {"signals_mv": np.zeros((2, 5)), "fs": 500.0, "lead_names": ("I", "II"), "source": "x.hea"}
    arguments.update(kwargs)
    with pytest.raises(RecordError, match=problem):
        EcgRecord(**arguments)


def test_patient_context_problems_and_bsa():
    assert PatientContext(60, "M", 180, 80).problems() == []
    assert PatientContext(60, "M", 180, 80).bsa_m2 == pytest.approx(math.sqrt(180 * 80 / 3600))
    problems = PatientContext(age_years=150, sex="X", height_cm=math.inf).problems()
    assert len(problems) == 3
    with pytest.raises(ValueError, match="impossible"):
        PatientContext(weight_kg=1.0).validated()
    assert [normalize_sex(v) for v in ("Male", "f", "unknown", None)] == ["M", "F", None, None]


def test_normalized_amplitudes_are_flagged_only_when_every_lead_spans_the_same():
    t = np.linspace(0, 1, 500)
    scaled = np.stack([np.sin(2 * np.pi * 3 * t) * 0.5 * k for k in (1, 2, 3)])  # real-looking: different spans
    record = EcgRecord(scaled, 500.0, ("I", "II", "V1"))
    assert not note_normalized_amplitudes(record).amplitudes_normalized
    normalized = scaled / np.ptp(scaled, axis=1, keepdims=True)  # LUDB-style: each lead spans exactly 1 mV
    record = note_normalized_amplitudes(EcgRecord(normalized, 500.0, ("I", "II", "V1")))
    assert record.amplitudes_normalized and record.notes == [NORMALIZED_AMPLITUDE_NOTE]
    assert note_normalized_amplitudes(record).notes == [NORMALIZED_AMPLITUDE_NOTE]  # added once
    assert not amplitudes_look_normalized(normalized[:2])  # two leads could match by chance: not flagged
    assert not amplitudes_look_normalized(np.zeros((3, 10)))  # flat leads are a lead-off problem, not this one
