"""`elvmass emulate` glue: record -> 500 Hz -> the 8 independent leads; flags -> FaultConfig."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from conftest import shared_path
from edge_runtime.commands import emulate
from edge_runtime.formats import read_record
from edge_runtime.record import STANDARD_LEADS, EcgRecord, RecordError


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    emulate.add_arguments(parser)
    return parser.parse_args(["record.hea", *argv])


def test_independent_leads_in_order_and_resampled_to_500_hz():
    n = 2500
    twelve = np.stack([np.full(n, k, dtype=np.float32) for k in range(12)])
    record = EcgRecord(twelve, 250.0, STANDARD_LEADS)
    leads = emulate.independent_leads_mv(record)
    assert leads.shape == (8, 2 * n)
    np.testing.assert_allclose(leads[:, 100:-100].mean(axis=1), [0, 1, 6, 7, 8, 9, 10, 11], atol=1e-3)


def test_record_without_precordial_leads_is_refused():
    record = EcgRecord(np.zeros((2, 500), dtype=np.float32), 500.0, ("MLII", "V1"))
    with pytest.raises(RecordError, match="missing leads"):
        emulate.independent_leads_mv(record)


def test_fault_flags_map_to_config():
    config = emulate.fault_config(parse("--garbage-bursts", "5:16", "--lead-off", "v1,LA", "--lead-off", "RA",
                                        "--saturate", "V5", "--bit-errors", "1e-6", "--drop-frames", "0.01",
                                        "--noise-uv", "15", "--unplug-at", "3", "--unplug-for", "0.5"))
    assert (config.garbage_bursts_per_s, config.garbage_max_bytes) == (5.0, 16)
    assert config.lead_off == ("V1", "LA", "RA") and config.saturate == ("V5",)
    assert (config.bit_error_rate, config.drop_frame_prob, config.noise_uv) == (1e-6, 0.01, 15.0)
    assert (config.unplug_at_s, config.unplug_for_s) == (3.0, 0.5)
    assert config.problems() == []


def test_hil_fault_flags_map_to_config():
    config = emulate.fault_config(parse("--slip-bytes", "0.05", "--clock-hz", "498", "--stuck-lead-off", "v3",
                                        "--announce-map", "II,I,V1,V2,V3,V4,V5,V6", "--silent-after", "10"))
    assert (config.slip_prob, config.clock_hz, config.stuck_lead_off) == (0.05, 498.0, ("V3",))
    assert config.announced_map == ("II", "I", "V1", "V2", "V3", "V4", "V5", "V6") and config.silent_after_s == 10.0
    assert config.problems() == []


def test_unreadable_record_and_bad_flags_exit_1(tmp_path, capsys):
    args = parse("--lead-off", "XX")
    args.record = str(tmp_path / "missing.hea")
    assert emulate.run(args) == 1
    assert "missing.hea" in capsys.readouterr().err


@pytest.mark.shared
def test_ptbdb_1000_hz_record_is_resampled_for_replay():
    record = read_record(shared_path("ptbdb", "s0010_re.hea"))
    leads = emulate.independent_leads_mv(record)
    assert leads.shape == (8, round(record.n_samples * 500 / record.fs))
    assert np.isfinite(leads).all()
