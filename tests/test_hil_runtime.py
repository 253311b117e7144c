"""Hardware-in-the-loop: the emulator in a separate process on a real pty, `elvmass run` reading it.

The emulator replays a bundled real record (looped) at 10x real time; the clean-replay test runs the
`elvmass run --port` command, the others run the same session loop in the test process; faults are injected only
during stream seconds [10, 20) so each test sees a clean window, the faulty window, and recovery.
At 10x the emulator gets a 4 MiB FIFO (``BACKLOG``): on this shared CI machine a busy runtime may
read late, and frames the *test's* speed-up would lose are not what these tests are about (the
dropped-frames test injects its own losses).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_runtime_bundle, run_runtime, shared_path
from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.config import ClinicConfig
from edge_runtime.formats import read_record
from edge_runtime.record import PatientContext
from edge_runtime.runtime.emulator_process import EmulatorProcess, device_channels
from edge_runtime.runtime.pipeline import Analyzer, analyze_file_record
from edge_runtime.runtime.session import RuntimeSession
from edge_runtime.runtime.sources import SerialSource
from edge_runtime.runtime.store import ResultStore

pytestmark = pytest.mark.slow
SPEED = 10.0
BACKLOG = ("--backlog-bytes", str(4 << 20))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_runtime_bundle(tmp_path_factory.mktemp("hil_bundle"))


@pytest.fixture(scope="module")
def analyzer(bundle_dir):
    return Analyzer(ClinicConfig(), bundle_path=bundle_dir, backend="onnxruntime", precision="fp32")


def run_session(port: str, analyzer, db, max_estimates: int | None = None, max_windows: int | None = None) -> dict:
    """The runtime loop in this process (the emulator is the separate process), as `elvmass run` runs it."""
    with ResultStore(db) as store:
        session = RuntimeSession(analyzer, PatientContext(77.0, "F", 160.0, 70.0, "HIL-1"), store,
                                 max_estimates=max_estimates, max_windows=max_windows, duration_s=90.0)
        return session.run(SerialSource(port)).to_dict()


def flag_names(report: dict) -> set[str]:
    return {flag["name"] for flag in report["flags"]}


def offline_lvm(bundle) -> dict:
    analyzer = Analyzer(ClinicConfig(), bundle_path=bundle, backend="onnxruntime", precision="fp32")
    best, _ = analyze_file_record(analyzer, read_record(CINC_LVH_RECORD), PatientContext(77.0, "F", 160.0, 70.0))
    return best.report


def test_clean_replay_gives_one_estimate_equal_to_offline_analysis(bundle_dir, tmp_path):
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, speed=SPEED) as port:
        summary = run_runtime(port, bundle_dir, tmp_path / "r.sqlite", "--max-estimates", "1", "--duration", "90")
    assert summary["n_estimates"] == 1 and summary["windows"] == 1
    streamed = summary["results"][0]
    offline = offline_lvm(bundle_dir)
    assert streamed["estimate_status"] == offline["estimate_status"] == "ok"
    # 24-bit ADC codes (47.7 nV) are the only difference between the stream and the file.
    assert streamed["lvm_g"] == pytest.approx(offline["lvm_g"], abs=0.1)
    assert streamed["n_beats"] == offline["n_beats"] and streamed["lvh"] == offline["lvh"]

    with ResultStore(tmp_path / "r.sqlite") as store:
        rows = store.results()
        window = store.window(rows[0]["id"])
    assert len(rows) == 1 and rows[0]["patient_id"] == "HIL-1" and rows[0]["lvm_g"] == streamed["lvm_g"]
    signals, _ = device_channels(CINC_LVH_RECORD)
    np.testing.assert_allclose(window.signals_mv[[0, 1, 6, 7, 8, 9, 10, 11]], signals, atol=0.0006)


@pytest.mark.parametrize("fault, expected_flag", [
    (["--lead-off", "V3"], "lead_off"),
    (["--saturate", "V2"], "saturation"),
    (["--noise-uv", "1500"], "noise"),
])
def test_signal_fault_gives_flagged_no_estimate_then_recovery(analyzer, tmp_path, fault, expected_flag):
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, "--fault-from", "10", "--fault-to", "20", *fault,
                         speed=SPEED, loop=True) as port:
        summary = run_session(port, analyzer, tmp_path / "r.sqlite", max_windows=3)
    statuses = [r["estimate_status"] for r in summary["results"]]
    assert statuses == ["ok", "no_estimate", "ok"], [sorted(flag_names(r)) for r in summary["results"]]
    faulty = summary["results"][1]
    assert expected_flag in flag_names(faulty) and faulty["lvm_g"] is None
    assert summary["results"][2]["lvm_g"] == pytest.approx(summary["results"][0]["lvm_g"], abs=0.1)


def _contiguous_in_loop(window_lead: np.ndarray, record_lead: np.ndarray, spans=()) -> bool:
    """The stored window is one unbroken stretch of the looped record (no splice across a gap): every
    measured sample sits where it belongs; the bridged short gaps (``spans``, interpolated) are skipped."""
    looped = np.concatenate([record_lead, record_lead, record_lead])
    n = window_lead.size
    measured = np.ones(n, dtype=bool)
    for start, stop in spans:
        measured[start:stop] = False
    first = int(np.argmax(measured))
    for offset in range(record_lead.size):
        if abs(looped[offset + first] - window_lead[first]) < 0.002 and np.max(
                np.abs(looped[offset:offset + n] - window_lead)[measured]) < 0.002:
            return True
    return False


def test_dropped_and_corrupted_frames_never_splice_a_window_and_recover(analyzer, tmp_path):
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, "--fault-from", "10", "--fault-to", "13", "--drop-frame-prob", "0.05",
                         "--bit-error-rate", "1e-4", "--garbage-bursts-per-s", "20", speed=SPEED, loop=True) as port:
        summary = run_session(port, analyzer, tmp_path / "r.sqlite", max_estimates=2)
    events = [event["name"] for event in summary["events"]]
    assert {"dropped_frames", "gap_bridged"} & set(events)
    assert summary["n_estimates"] == 2
    signals, _ = device_channels(CINC_LVH_RECORD)
    with ResultStore(tmp_path / "r.sqlite") as store:
        for row in store.results():
            spans = store.report(row["id"]).get("gap_spans", [])
            assert _contiguous_in_loop(store.window(row["id"]).signals_mv[1], signals[1], spans)


def test_unplug_replug_reconnects_and_recovers(analyzer, tmp_path):
    with EmulatorProcess(CINC_LVH_RECORD, *BACKLOG, "--unplug-at", "12", "--unplug-for", "0.5", speed=SPEED, loop=True) as port:
        summary = run_session(port, analyzer, tmp_path / "r.sqlite", max_estimates=2)
    events = [event["name"] for event in summary["events"]]
    assert "disconnected" in events and events.count("connected") >= 2
    assert summary["n_estimates"] == 2 and all(r["estimate_status"] == "ok" for r in summary["results"])


def test_two_lead_af_record_shows_af_and_needs_12_leads(analyzer, tmp_path):
    record = shared_path("cpsc2021", "data_84_1.hea")  # persistent AF, leads I and II only
    with EmulatorProcess(record, *BACKLOG, speed=SPEED) as port:
        summary = run_session(port, analyzer, tmp_path / "r.sqlite", max_windows=1)
    result = summary["results"][0]
    assert result["estimate_status"] == "no_estimate" and result["lvm_g"] is None
    assert {"needs_12_leads", "af_suspected"} <= flag_names(result)


def test_paced_record_is_flagged_outside_population(analyzer, tmp_path):
    record = shared_path("mitdb", "102.hea")  # paced rhythm; leads V5 and V2 only
    with EmulatorProcess(record, *BACKLOG, speed=SPEED) as port:
        summary = run_session(port, analyzer, tmp_path / "r.sqlite", max_windows=1)
    result = summary["results"][0]
    assert result["estimate_status"] == "no_estimate" and result["lvm_g"] is None
    assert "needs_12_leads" in flag_names(result)
    # Paced beats: a pacing-spike flag, or the wide QRS a ventricular-paced beat has.
    assert flag_names(result) & {"pacing", "wide_qrs"}, sorted(flag_names(result))
