"""Hardware-in-the-loop rig: `elvmass emulate` in its own process on a real pty -> transport.

Replays the bundled PTB-XL record faster than real time; decoded samples must equal the record
within quantization, an unplug mid-stream must be reported as a gap and recovered from, and the
fault flags must show up as the events a front-end would cause.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from conftest import start_emulator, stop_emulator
from edge_runtime.assets import PTBXL_RECORD
from edge_runtime.commands.emulate import independent_leads_mv
from edge_runtime.formats import read_record
from firmware_bridge.events import Connected, Disconnected, Gap, LeadOffChanged, Samples
from firmware_bridge.frames import CHANNEL_LEADS, DeviceInfo
from firmware_bridge.transport import SerialTransport

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty emulation needs Linux")
LSB_MV = DeviceInfo().lsb_nv * 1e-6


@pytest.fixture(scope="module")
def record_mv() -> np.ndarray:
    return independent_leads_mv(read_record(PTBXL_RECORD))


def run_transport(address: str, done, timeout_s: float = 40.0) -> tuple[list, SerialTransport]:
    transport = SerialTransport(address, backoff_initial_s=0.05, backoff_max_s=0.2)
    events, started = [], time.monotonic()
    for event in transport.events():
        events.append(event)
        if done(events) or time.monotonic() - started > timeout_s:
            transport.stop()
    return events, transport


def replayed_columns(block: Samples, n: int) -> np.ndarray:
    return (block.first_sample + np.arange(block.n_samples)) % n


def test_pty_replay_equals_record_and_unplug_recovers_with_gap(tmp_path, record_mv):
    process, address = start_emulator(tmp_path, PTBXL_RECORD, "--speed", "10", "--loop", "--unplug-at", "4", "--unplug-for", "0.5")
    try:
        def done(events):
            reconnected = sum(isinstance(e, Connected) for e in events) >= 2
            after = [e for e in events[next((i for i, e in enumerate(events) if isinstance(e, Disconnected)), len(events)):]
                     if isinstance(e, Samples)]
            return reconnected and sum(b.n_samples for b in after) >= 1500
        events, transport = run_transport(address, done)
    finally:
        stderr = stop_emulator(process)
    kinds = [type(e).__name__ for e in events]
    assert "Disconnected" in kinds, stderr
    lost = kinds.index("Disconnected")
    assert kinds[lost - 1] == "Gap" and "link lost" in events[lost - 1].reason
    assert kinds.count("Connected") >= 2, kinds
    blocks = [e for e in events if isinstance(e, Samples)]
    before = [e for e in events[:lost] if isinstance(e, Samples)]
    after = [e for e in events[lost:] if isinstance(e, Samples)]
    assert sum(b.n_samples for b in before) >= 1000 and sum(b.n_samples for b in after) >= 1500
    assert after[0].first_sample == 0  # power-cycled device: counter restarted, gap reported above
    n = record_mv.shape[1]
    for block in blocks:
        np.testing.assert_allclose(block.signals_mv, record_mv[:, replayed_columns(block, n)], atol=LSB_MV * 0.51, rtol=0)
    assert transport.decoder.stats.crc_errors == 0
    assert "unplugged at sample" in stderr and "plugged back in" in stderr


def test_pty_fault_flags_surface_as_events(tmp_path, record_mv):
    process, address = start_emulator(tmp_path, PTBXL_RECORD, "--speed", "10", "--loop", "--lead-off", "V2", "--drop-frames", "0.05",
                                      "--bit-errors", "2e-5", "--garbage-bursts", "20:40", "--seed", "3")
    try:
        events, transport = run_transport(address, lambda ev: sum(e.n_samples for e in ev if isinstance(e, Samples)) >= 4000)
    finally:
        stop_emulator(process)
    stats = transport.decoder.stats
    gaps = [e for e in events if isinstance(e, Gap)]
    assert gaps and all(g.missing_samples and g.missing_samples % 5 == 0 for g in gaps)
    assert stats.crc_errors > 0 and stats.bytes_discarded > 0
    lead_off = [e for e in events if isinstance(e, LeadOffChanged)]
    assert lead_off[0].electrodes == {"V2"}
    v2 = CHANNEL_LEADS.index("V2")
    others = [k for k in range(8) if k != v2]
    n = record_mv.shape[1]
    blocks = [e for e in events if isinstance(e, Samples)]
    for block in blocks:  # every delivered sample is right; V2 sits at the rail while its electrode is off
        columns = replayed_columns(block, n)
        np.testing.assert_allclose(block.signals_mv[others], record_mv[others][:, columns], atol=LSB_MV * 0.51, rtol=0)
        assert block.lead_off[:, 4].all() and np.allclose(block.signals_mv[v2], (2**23 - 1) * LSB_MV)
