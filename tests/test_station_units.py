"""Station parts without a server: the bounded live fan-out, result reading, form errors, PIN hashing, limits."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edge_runtime.station.controller import operator_texts, verdict_of
from edge_runtime.station.live import Broadcaster
from edge_runtime.station.present import result_context
from edge_runtime.station.security import LoginLimiter, PinError, SessionStore, hash_pin, parse_pin_hash

pytest.importorskip("starlette", reason="needs the station extra: pip install 'elvmass[station]'")


def test_a_slow_client_loses_old_messages_and_the_publisher_never_waits():
    async def scenario():
        broadcaster = Broadcaster(client_queue_max=8)
        broadcaster.attach(asyncio.get_running_loop())
        slow = broadcaster.subscribe()  # never reads
        fast = broadcaster.subscribe()
        received = []

        async def reader():
            while len(received) < 50:
                received.append(await fast.get())

        task = asyncio.create_task(reader())
        started = time.perf_counter()

        def acquisition_thread():
            for index in range(5000):
                broadcaster.publish(f"m{index}")
                if index % 100 == 0:
                    time.sleep(0.001)

        thread = threading.Thread(target=acquisition_thread)
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.05)
        task.cancel()
        return broadcaster, slow, elapsed, received

    broadcaster, slow, elapsed, received = asyncio.run(scenario())
    assert slow.qsize() == 8  # bounded: the newest 8 messages, the rest dropped
    assert slow.get_nowait() != "m0" and broadcaster.dropped >= 5000 - 8
    assert len(received) >= 8 and elapsed < 5.0


def test_verdict_is_read_from_the_report_or_derived_from_lvh():
    assert verdict_of({"lvh_verdict": "borderline", "lvh": True}) == "borderline"
    assert verdict_of({"lvh": True}) == "LVH" and verdict_of({"lvh": False}) == "no LVH"
    assert verdict_of({}) == "LVH unknown"


def test_result_context_reads_reports_defensively():
    minimal = result_context({"estimate_status": "no_estimate", "lvm_g": None, "flags": [{"name": "lead_off", "where": "V4",
                                                                                     "operator_text": "Electrode off or loose: V4."}]})
    assert minimal["lvm"] is None and minimal["verdict"] is None
    assert minimal["reasons"] == [("Why there is no number", ["Electrode off or loose: V4."])]
    newer = result_context({"estimate_status": "ok", "lvm_g": 151.26, "lvm_interval_g": [130.0, 172.5],
                            "lvm_interval_coverage": 0.9, "lvm_index_g_m2": 80.4, "lvm_index_interval_g_m2": [70, 91],
                            "lvh_verdict": "borderline", "lvh": True, "patient": {"patient_id": "P-1", "sources": {"age": "operator"}},
                            "flags": [{"name": "unknown_future_flag"}], "model": None, "extra_key": {"x": 1}})
    assert (newer["lvm"], newer["lvm_exact"], newer["interval"]) == ("151", "151.3", "130\u2013172")
    assert newer["verdict"] == "borderline" and newer["verdict_class"] == "borderline"
    assert newer["index_interval"] == "70\u201391" and newer["coverage"] == "90%"
    assert newer["model_id"] == "unknown" and newer["patient"]["patient_id"] == "P-1"


def test_operator_texts_come_from_the_flag_registry():
    report = {"flags": [{"name": "noise"}, {"name": "imputed_qrs_ms"}, {"name": "af_suspected"}]}
    blocking = operator_texts(report)
    assert len(blocking) == 1 and "lie still" in blocking[0]
    assert "atrial fibrillation" in operator_texts(report, ("outside_population",))[0]


def test_patient_form_errors_use_the_cli_validation():
    from edge_runtime.station.app import patient_field_errors

    errors = patient_field_errors({"patient_id": "", "age": "200", "sex": "", "height": "170", "weight": "heavy"})
    assert set(errors) == {"patient_id", "age", "sex", "weight"}
    assert "18-110 years" in errors["age"] and "not a number" in errors["weight"]
    assert patient_field_errors({"patient_id": "P-1", "age": "", "sex": "M", "height": "", "weight": ""}) == {}


def test_pin_hash_refuses_short_pins_and_damaged_hashes():
    with pytest.raises(PinError):
        hash_pin("12")
    with pytest.raises(PinError):
        parse_pin_hash("plaintext-pin")
    n, r, p, salt, digest = parse_pin_hash(hash_pin("123456"))
    assert (n, r, p, len(salt), len(digest)) == (16384, 8, 1, 16, 32)


def test_login_limiter_and_sessions_stay_bounded():
    limiter = LoginLimiter(max_failures=3, window_s=60.0)
    for _ in range(3):
        assert limiter.wait_s("10.0.0.2") == 0
        limiter.failed("10.0.0.2")
    assert limiter.wait_s("10.0.0.2") > 0 and limiter.wait_s("10.0.0.3") == 0
    sessions = SessionStore(max_sessions=4)
    keys = [sessions.new()[0] for _ in range(10)]
    assert sessions.get(keys[0]) is None and sessions.get(keys[-1]) is not None


def test_patient_values_with_provenance_are_read_for_screen_and_print():
    from edge_runtime.station.printing import stored_patient

    report = {"estimate_status": "ok", "lvm_g": 120.0,
              "patient": {"patient_id": "P-2", "age_years": {"value": 64, "source": "operator"}, "sex": "M",
                          "height_cm": 180.0, "weight_kg": {"value": 82.5, "source": "file"}, "sources": {"sex": "file"}}}
    shown = result_context(report)["patient"]
    assert (shown["age"], shown["weight"], shown["sex"]) == ("64", "82", "M")
    patient = stored_patient(report)
    assert (patient.age_years, patient.weight_kg, patient.patient_id) == (64, 82.5, "P-2")


def test_live_samples_blank_off_electrodes_per_sample_and_break_at_gaps():
    import json

    import numpy as np

    from edge_runtime.config import ClinicConfig
    from edge_runtime.record import PatientContext
    from edge_runtime.runtime.pipeline import Analyzer
    from edge_runtime.runtime.session import RuntimeSession
    from edge_runtime.station.controller import DISPLAY_DECIMATION, StationController
    from firmware_bridge.events import Gap, Samples
    from firmware_bridge.frames import ELECTRODES

    analyzer = Analyzer(ClinicConfig())
    controller = StationController(analyzer, "/nonexistent.sqlite", lambda: None, Broadcaster())
    session = RuntimeSession(analyzer, PatientContext(), None)
    n = 200
    signals = np.tile(np.sin(np.linspace(0, 6, n, dtype=np.float32)), (8, 1))
    off = np.zeros((n, len(ELECTRODES)), dtype=bool)
    off[n // 2:, ELECTRODES.index("V4")] = True  # V4 comes off half-way through the block
    for event in (Samples(0, signals, off, 500.0), Gap(n, n + 100, 100, "test"),
                  Samples(n + 100, signals, np.zeros_like(off), 500.0)):
        session.handle(event)
        controller._on_status(session, event)
        controller._last_flush = 0.0  # flush every block (the 40 ms pacing is wall-clock)
    blocks = [json.loads(message.split("data: ", 1)[1]) for message in controller._replay]
    first, second = blocks[0], blocks[-1]
    rows = {name: row for name, row in zip(first["leads"], first["d"])}
    half = n // 2 // DISPLAY_DECIMATION
    assert all(value is None for value in rows["V4"][half:]) and None not in rows["V4"][:half]
    assert None not in rows["V3"] and None not in rows["II"]
    assert second["i"] == first["i"] + len(first["d"][0]) + 100 // DISPLAY_DECIMATION  # the gap leaves a break
    assert controller.snapshot()["electrodes"]["V4"] == "unknown"  # not acquiring: nothing claimed
