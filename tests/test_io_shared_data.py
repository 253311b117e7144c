"""Every record in ../shared/data loads through the readers (skipped with a reason when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_path
from edge_runtime.formats import read_record
from edge_runtime.record import STANDARD_LEADS
from edge_runtime.resample import resample_record

pytestmark = pytest.mark.shared

# (folder, glob, expected record count in this subset)
TWELVE_LEAD_SETS = [("cinc2021", "*.hea", 50), ("ptbdb", "*.hea", 1), ("ludb/data", "*.hea", 67)]


def _headers(folder: str, pattern: str) -> list:
    headers = sorted(shared_path(*folder.split("/")).glob(pattern))
    if not headers:
        pytest.skip(f"no {pattern} under {folder}")
    return headers


@pytest.mark.parametrize("folder, pattern, expected", TWELVE_LEAD_SETS, ids=[s[0] for s in TWELVE_LEAD_SETS])
def test_twelve_lead_records_load_standardize_and_resample(folder, pattern, expected):
    headers = _headers(folder, pattern)
    assert len(headers) == expected
    for header in headers:
        record = read_record(header)
        assert record.format == "wfdb" and record.has_standard_12(), header
        standard = resample_record(record.to_standard_12(), 500.0)
        assert standard.lead_names == STANDARD_LEADS and standard.fs == 500.0
        assert standard.n_samples == round(record.duration_s * 500), header
        assert standard.patient.age_years is not None and standard.patient.sex in ("M", "F"), header
        spans = np.ptp(standard.signals_mv, axis=1)
        # Millivolts, not ADC counts or volts: a resting ECG lead spans a few tenths to a few mV.
        assert 0.2 < np.median(spans) < 10.0 and spans.max() < 30.0, (header, spans)
        # LUDB 1.0.1 scales every lead to exactly 1 mV peak-to-peak; real databases never look like that.
        assert standard.amplitudes_normalized == folder.startswith("ludb"), header


def test_ptb_frank_leads_are_dropped_by_to_standard_12():
    (header,) = _headers("ptbdb", "*.hea")
    record = read_record(header)
    assert record.fs == 1000.0 and record.lead_names[12:] == ("vx", "vy", "vz")
    assert (record.patient.age_years, record.patient.sex) == (81.0, "F")
    assert record.to_standard_12().signals_mv.shape == (12, record.n_samples)


@pytest.mark.slow
def test_mitdb_two_lead_records():
    headers = _headers("mitdb", "*.hea")
    assert len(headers) == 24
    for header in headers:
        record = read_record(header)
        assert record.fs == 360.0 and record.n_samples == 650000 and len(record.lead_names) == 2, header
        # modified limb lead II plus one precordial lead (102/104 lack MLII: surgical dressings; 114 swaps the order)
        assert set(record.lead_names) <= {"MLII", "V1", "V2", "V4", "V5"}, header
        assert not record.has_standard_12() and not record.amplitudes_normalized
        assert np.all((0.3 < np.ptp(record.signals_mv, axis=1)) & (np.ptp(record.signals_mv, axis=1) < 20.0)), header


def test_cpsc2021_two_lead_records():
    headers = _headers("cpsc2021", "*.hea")
    assert len(headers) == 9
    for header in headers:
        record = read_record(header)
        assert record.fs == 200.0 and record.lead_names == ("I", "II"), header
        assert record.duration_s > 40.0
