"""Hardware-in-the-loop kit: ``elvmass hil-check`` against the Python emulator and the C reference device.

Both devices run as separate processes on real ptys, replaying the bundled record E07505 (looped) at
20x real time; ``hil-check``'s ``speed`` option scales its clock checks back to device time. Each fault
of issue 17 is injected into each device and must fail exactly the check a firmware engineer needs to
see, while a clean device passes everything. The C device is built with the compiler the tests find
(warnings are errors); the Cortex-M build runs when ``arm-none-eabi-gcc`` is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import numpy as np
import pytest

from conftest import REPO_ROOT, make_runtime_bundle, run_runtime
from edge_runtime.assets import CINC_LVH_RECORD
from edge_runtime.runtime.emulator_process import EmulatorProcess, build_emulator
from evaluation.c_device import FIRMWARE_DIR, CDeviceProcess, build_c_device, host_compiler
from evaluation.hil_check import FAIL, PASS, SKIP, WARN, HilOptions, HilReport, _guided_lead_off, run_hil_check
from evaluation.hil_measures import lower_envelope_rate, square_wave
from evaluation.hil_session import DeviceSession
from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.device_record import read_device_record, write_device_record
from firmware_bridge.emulator import DeviceEmulator
from firmware_bridge.events import Samples
from firmware_bridge.faults import FaultConfig, FaultInjector
from firmware_bridge.frames import DeviceInfo, FrameType, encode_frame
from firmware_bridge.internal_signal import TEST_SIGNAL_FREQUENCY_HZ, internal_test_signal_codes

SPEED = 20.0
SECONDS = 1.5  # host seconds of streaming: 30 s of device time at 20x
BACKLOG = "4194304"  # a busy test machine may read late; losses the speed-up causes are not the faults tested
SWAPPED_MAP = "II,I,V1,V2,V3,V4,V5,V6"
# fault -> (Python emulator flags, C device flags, the checks that must fail and no others)
FAULTS = {
    "wrong_rate_498hz": (["--clock-hz", "498"], ["--clock-hz", "498"], {"stream.sample_rate"}),
    "dropped_frames": (["--drop-frame-prob", "0.05"], ["--drop-frames", "0.05"], {"stream.gaps"}),
    "byte_slips": (["--slip-prob", "0.05"], ["--slip-bytes", "0.05"], {"stream.gaps", "stream.crc", "stream.resyncs"}),
    "stuck_lead_off": (["--stuck-lead-off", "V3"], ["--stuck-lead-off", "V3"], {"lead_off.attached"}),
    "channel_map_lies": (["--announce-map", SWAPPED_MAP], ["--announce-map", SWAPPED_MAP], {"signal.channel_map"}),
    "stops_answering": (["--silent-after", "20"], ["--silent-after", "20"], {"link.alive", "command.stop"}),
}


# ------------------------------------------------------------------------------------ devices
@pytest.fixture(scope="module")
def c_device(tmp_path_factory):
    if host_compiler() is None:
        pytest.skip("no C compiler (cc/gcc/clang) on PATH: the C reference device cannot be built here")
    return build_c_device(tmp_path_factory.mktemp("cdev"))


@pytest.fixture(scope="module")
def device_record(tmp_path_factory):
    """E07505 as the C device's sample file: the very codes the Python emulator sends."""
    emulator = build_emulator(CINC_LVH_RECORD)
    return write_device_record(tmp_path_factory.mktemp("rec") / "E07505.elvmrec", emulator.codes, emulator.info,
                               emulator.injector.status)


@pytest.fixture(params=["python", "c"])
def start_device(request):
    """``start_device(python_flags, c_flags, loop=True)``: a context manager giving the port of that device."""
    kind = request.param

    @contextmanager
    def start(python_flags=(), c_flags=(), loop=True, speed=SPEED):
        if kind == "python":
            with EmulatorProcess(CINC_LVH_RECORD, "--backlog-bytes", BACKLOG, *python_flags, speed=speed, loop=loop) as port:
                yield port
        else:
            binary = request.getfixturevalue("c_device")
            record = request.getfixturevalue("device_record")
            options = ["--record", str(record), "--backlog-bytes", BACKLOG, *(["--loop"] if loop else []), *c_flags]
            with CDeviceProcess(binary, *options, speed=speed) as port:
                yield port

    start.kind = kind
    return start


def check_device(port: str, **overrides) -> dict:
    options = HilOptions(seconds=SECONDS, speed=SPEED, reference=str(CINC_LVH_RECORD), **overrides)
    return run_hil_check(port, options).to_dict()


def statuses(report: dict) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def failed(report: dict) -> set[str]:
    return {name for name, status in statuses(report).items() if status == FAIL}


# ------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_conforming_device_passes_every_check(start_device):
    with start_device() as port:
        report = check_device(port)
    assert report["passed"] and failed(report) == set(), report
    status = statuses(report)
    for name in ("command.stop_idle", "command.ping", "command.set_rate", "command.unknown_nak", "command.start",
                 "command.stop", "command.stop_quiet", "test_signal", "stream.sample_rate", "stream.gaps", "stream.crc",
                 "stream.resyncs", "stream.sequence", "lead_off.attached", "signal.saturation", "signal.flat_line",
                 "signal.channel_map", "signal.amplitude", "latency.end_to_end", "link.alive"):
        assert status[name] == PASS, (name, report)
    assert status["stream.arrival_jitter"] in (PASS, WARN)  # host load: a warning at most
    assert status["lead_off.removal"] == SKIP  # not interactive; the reason is in the advice
    metrics = report["metrics"]
    assert abs(metrics["rate_error_ppm"]) < 500
    amplitudes = metrics["test_signal"]["amplitude_mv"].values()
    frequencies = metrics["test_signal"]["frequency_hz"].values()
    assert all(abs(a - 1.0) < 1e-3 for a in amplitudes)  # the exact codes of PROTOCOL.md section 8
    assert all(abs(f - TEST_SIGNAL_FREQUENCY_HZ) < 1e-4 for f in frequencies)  # rounded to 4 decimals in the JSON
    assert min(metrics["reference"]["correlation"].values()) > 0.999


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_each_fault_fails_exactly_its_check(start_device, fault):
    python_flags, c_flags, expected = FAULTS[fault]
    began = time.monotonic()
    with start_device(python_flags, c_flags) as port:
        report = check_device(port)
    elapsed = time.monotonic() - began
    assert not report["passed"] and failed(report) == expected, (fault, start_device.kind, report)
    by_name = {check["name"]: check for check in report["checks"]}
    if fault == "wrong_rate_498hz":
        assert report["metrics"]["rate_error_ppm"] == pytest.approx(-4000, abs=300)
    elif fault == "dropped_frames":  # lost frames with a clean wire: the firmware's fault, said so
        assert "clean bytes on the wire" in by_name["stream.gaps"]["advice"]
        assert report["metrics"]["crc_errors"] == 0 and report["metrics"]["gaps"] > 0
    elif fault == "byte_slips":
        assert report["metrics"]["resyncs"] > 0 and "corrupt bytes" in by_name["stream.gaps"]["advice"]
    elif fault == "stuck_lead_off":
        assert by_name["lead_off.attached"]["measured"] == "V3 100% (signal live: stuck bit?)"
    elif fault == "channel_map_lies":
        assert "I carries II" in by_name["signal.channel_map"]["measured"]
        assert "II carries I" in by_name["signal.channel_map"]["measured"]
    elif fault == "stops_answering":
        assert by_name["link.alive"]["measured"].startswith("silent after")
        assert elapsed < 20  # every wait is bounded: stall limit 2 s, replies 1 s


@pytest.mark.slow
def test_command_parser_resynchronizes_after_garbage_and_bad_crc(start_device):
    get_info = encode_frame(FrameType.GET_INFO, 7)
    corrupted = get_info[:-1] + bytes([get_info[-1] ^ 0xFF])
    noise = b"\xa5\x5a\x01\x12\x00\x00\xff\x00" + bytes(range(40)) + b"\xa5"  # a false sync claiming a 255-byte PING
    with start_device(loop=False) as port, DeviceSession(port) as session:
        session.port.write(noise + corrupted + get_info[:5])
        time.sleep(0.05)  # the rest of the frame in a later read, as a UART delivers it
        session.port.write(get_info[5:] + encode_frame(FrameType.PING, 8, b"ok"))
        replies = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and len(replies) < 2:
            replies += session.scanner.feed(session.port.read(256))
    assert [frame.type for frame in replies] == [FrameType.INFO, FrameType.PONG] and replies[1].payload == b"ok"


@pytest.mark.slow
def test_cli_prints_machine_readable_json_and_exit_status(c_device, device_record):
    command = [sys.executable, "-m", "elvmass", "hil-check", "--seconds", str(SECONDS), "--speed", str(SPEED), "--json"]
    with CDeviceProcess(c_device, "--record", str(device_record), "--loop", "--backlog-bytes", BACKLOG, speed=SPEED) as port:
        clean = subprocess.run([*command, "--port", port], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    with CDeviceProcess(c_device, "--record", str(device_record), "--loop", "--clock-hz", "498", speed=SPEED) as port:
        wrong = subprocess.run([*command, "--port", port], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert report["passed"] and report["counts"]["fail"] == 0 and report["device"]["device_id"] == "elvmass-cdev"
    assert {"name", "status", "measured", "expected", "advice"} <= set(report["checks"][0])
    assert wrong.returncode == 1 and not json.loads(wrong.stdout)["passed"]
    missing = subprocess.run([*command, "--port", str(REPO_ROOT / "no-such-port")], capture_output=True, text=True,
                             cwd=REPO_ROOT, timeout=60)
    assert missing.returncode == 1 and json.loads(missing.stdout)["checks"][0]["name"] == "port.open"


@pytest.mark.slow
def test_c_device_streams_the_same_samples_as_the_python_emulator(c_device, device_record):
    decoded = {}
    for kind in ("python", "c"):
        context = (EmulatorProcess(CINC_LVH_RECORD, speed=SPEED) if kind == "python"
                   else CDeviceProcess(c_device, "--record", str(device_record), speed=SPEED))
        with context as port, DeviceSession(port) as session:
            capture = session.capture(DeviceInfo(), 0.4, ping_every_s=None)
        index, signals = capture.indexed_samples()
        decoded[kind] = dict(zip(index.tolist(), signals.T.tolist()))
    common = sorted(set(decoded["python"]) & set(decoded["c"]))
    assert len(common) > 2000 and common[0] == 0
    assert all(decoded["python"][k] == decoded["c"][k] for k in common)


@pytest.mark.slow
def test_guided_electrode_removal_follows_the_lead_off_bit():
    # The emulator takes LA off from 3 to 6 s of stream (0.15-0.3 s at 20x): the operator's removal.
    options = HilOptions(speed=SPEED, guided_lead_off=True, guided_wait_s=2.0)
    prompts = []
    with EmulatorProcess(CINC_LVH_RECORD, "--lead-off", "LA", "--fault-from", "3", "--fault-to", "6", speed=SPEED,
                         loop=True) as port, DeviceSession(port) as session:
        report = HilReport(port)
        _guided_lead_off(session, DeviceInfo(), options, report, prompts.append)
        never = HilReport(port)  # the bit never moves within the wait: fails, after the wait, not later
        began = time.monotonic()
        _guided_lead_off(session, DeviceInfo(), HilOptions(speed=SPEED, guided_lead_off=True, guided_wait_s=0.1,
                                                           electrode_to_remove="V6"), never, lambda text: None)
        waited = time.monotonic() - began
    check = report.checks[0]
    assert check.status == PASS and check.measured.startswith("off after"), check
    assert prompts[0].startswith("REMOVE the LA electrode") and "REATTACH" in prompts[1]
    assert never.checks[0].status == FAIL and never.checks[0].measured == "no change seen" and waited < 2.0


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_runtime_bundle(tmp_path_factory.mktemp("hil_bundle"))


@pytest.mark.slow
def test_elvmass_run_on_the_c_device_gives_the_python_emulators_estimate(c_device, device_record, bundle_dir, tmp_path):
    options = ("--max-estimates", "1", "--duration", "60")
    with CDeviceProcess(c_device, "--record", str(device_record), "--backlog-bytes", BACKLOG, speed=10) as port:
        from_c = run_runtime(port, bundle_dir, tmp_path / "c.sqlite", *options)
    with EmulatorProcess(CINC_LVH_RECORD, "--backlog-bytes", BACKLOG, speed=10) as port:
        from_python = run_runtime(port, bundle_dir, tmp_path / "py.sqlite", *options)
    c_result, python_result = from_c["results"][0], from_python["results"][0]
    assert c_result["estimate_status"] == python_result["estimate_status"] == "ok"
    assert c_result["lvm_g"] == python_result["lvm_g"] and c_result["n_beats"] == python_result["n_beats"]
    assert c_result["lvh"] == python_result["lvh"]


# ------------------------------------------------------------------------------ Cortex-M build
def test_encoder_and_parser_build_warning_free_for_cortex_m(tmp_path):
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("arm-none-eabi-size") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: apt-get install gcc-arm-none-eabi)")
    sizes = {}
    for cpu in ("cortex-m0", "cortex-m4"):
        objects = []
        for source in ("elvmass_frame.c", "elvmass_command.c"):
            obj = tmp_path / f"{source}.{cpu}.o"
            build = subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-Os", f"-mcpu={cpu}", "-mthumb", "-ffreestanding",
                                    "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-c", str(FIRMWARE_DIR / source),
                                    "-o", str(obj)], capture_output=True, text=True)
            assert build.returncode == 0 and not build.stderr, build.stderr
            objects.append(str(obj))
        size = subprocess.run(["arm-none-eabi-size", *objects], capture_output=True, text=True, check=True).stdout
        print(f"\n{cpu}:\n{size}")  # the code size, shown with pytest -s (and by `make -C firmware_bridge/firmware cortex-m`)
        sizes[cpu] = sum(int(line.split()[0]) + int(line.split()[1]) for line in size.splitlines()[1:])
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", *objects], capture_output=True, text=True, check=True).stdout
        external = {line.split()[-1] for line in undefined.splitlines() if line.strip().startswith("U ")}
        # From libc only what a freestanding build may still call; the rest is the encoder's own CRC.
        assert external <= {"memcpy", "memmove", "memset", "elvm_crc32_update"}, external
    assert all(0 < total < 2048 for total in sizes.values()), sizes  # docs/hil.md quotes the sizes


# ----------------------------------------------------------------------- parts, without I/O
def test_emulator_answers_test_signal_and_sends_protocol_codes():
    emulator = DeviceEmulator(np.zeros((8, 10)))
    decoder = StreamDecoder()
    replies = decoder.feed(emulator.handle_bytes(
        encode_frame(FrameType.GET_INFO, 0) + encode_frame(FrameType.TEST_SIGNAL, 1, b"\x01")
        + encode_frame(FrameType.TEST_SIGNAL, 2, b"\x07") + encode_frame(FrameType.START, 3)))
    assert [getattr(e, "payload", None) for e in replies[1:]] == [b"\x15", b"\x15\x02", b"\x10"]
    stream = b"".join(emulator.next_frame() for _ in range(60))  # 300 samples: past the end of the 10-sample record
    values = np.concatenate([e.signals_mv for e in decoder.feed(stream) if isinstance(e, Samples)], axis=1)
    assert values.shape == (8, 300) and not emulator.finished
    expected = internal_test_signal_codes(0, 300, 500, DeviceInfo().lsb_nv).T * DeviceInfo().lsb_nv * 1e-6
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert np.all(values[:, :128] > 0.99) and np.all(values[:, 128:256] < -0.99) and np.all(values[:, 256:] > 0.99)


def test_whole_session_faults_of_the_python_emulator():
    emulator = DeviceEmulator(np.zeros((8, 100)), faults=FaultConfig(
        announced_map=tuple(SWAPPED_MAP.split(",")), clock_hz=498.0, silent_after_s=0.05))
    decoder = StreamDecoder()
    info = decoder.feed(emulator.handle_bytes(encode_frame(FrameType.GET_INFO, 0) + encode_frame(FrameType.START, 1)))
    assert info[0].info.channel_map[:2] == ("II", "I") and emulator.clock_hz == 498.0
    frames = [emulator.next_frame() for _ in range(10)]
    assert all(frames[:5]) and not any(frames[5:])  # 25 samples = 0.05 s, then nothing
    assert emulator.handle_bytes(encode_frame(FrameType.PING, 2, b"x")) == b""  # and deaf to commands
    with pytest.raises(ValueError):
        FaultInjector(FaultConfig(announced_map=("I",)))
    with pytest.raises(ValueError):
        FaultInjector(FaultConfig(stuck_lead_off=("V9",)))


def test_byte_slip_changes_a_frame_by_one_byte_and_costs_a_resync():
    injector = FaultInjector(FaultConfig(slip_prob=1.0), seed=5)
    emulator = DeviceEmulator(np.zeros((8, 50)))
    emulator.handle_bytes(encode_frame(FrameType.START, 0))
    clean = [emulator.next_frame() for _ in range(4)]
    slipped = injector.apply_to_frame(clean[1], 0.01)
    assert abs(len(slipped) - len(clean[1])) == 1 and injector.counters.byte_slips == 1
    decoder = StreamDecoder(DeviceInfo())
    decoder.feed(clean[0] + slipped + clean[2] + clean[3])
    stats = decoder.stats
    assert stats.crc_errors + stats.header_rejects >= 1 and stats.resyncs == 1 and stats.gaps == 1 and stats.samples == 15


def test_stuck_lead_off_sets_the_bit_but_leaves_the_signal_live():
    injector = FaultInjector(FaultConfig(stuck_lead_off=("V3",)))
    codes, status = injector.apply_to_codes(np.full((3, 8), 1000))
    assert np.all(codes == 1000) and np.all(status == injector.status) and injector.status & (1 << (4 + 12))


def test_device_record_round_trip(tmp_path):
    codes = np.arange(-40, 40).reshape(10, 8) * 1000
    info = DeviceInfo(channel_map=("V1", "I", "II", "V2", "V3", "V4", "V5", "V6"))
    record = read_device_record(write_device_record(tmp_path / "r.elvmrec", codes, info, 0xC00030))
    assert np.array_equal(record.codes, codes) and record.channel_map == info.channel_map
    assert record.status == 0x30 and record.sample_rate_hz == 500 and record.lsb_nv == pytest.approx(info.lsb_nv)
    (tmp_path / "bad").write_bytes(b"ELVMREC1" + b"\0" * 30)
    with pytest.raises(ValueError):
        read_device_record(tmp_path / "bad")


def test_square_wave_measure_survives_gaps():
    index = np.arange(2000)
    wave = np.where((index * 125) // 16000 % 2 == 0, 1.0, -1.0)
    keep = (index % 300) < 200  # a third of the samples lost, edges among them
    amplitude, frequency = square_wave(index[keep], wave[keep], 500.0)
    assert amplitude == pytest.approx(1.0) and frequency == pytest.approx(TEST_SIGNAL_FREQUENCY_HZ)


def test_rate_from_late_arrivals_uses_the_earliest_frames():
    rng = np.random.default_rng(0)
    samples = np.arange(1, 1001) * 5.0
    times = samples / 498.0 + rng.exponential(0.02, samples.size)  # reads late by 20 ms on average
    rate, lateness = lower_envelope_rate(samples, times)
    assert rate == pytest.approx(498.0, rel=2e-4) and lateness.min() >= 0


@pytest.mark.slow
def test_a_port_where_nothing_answers_fails_fast_and_says_why():
    master, slave = os.openpty()  # a terminal with nobody behind it
    try:
        began = time.monotonic()
        report = run_hil_check(os.ttyname(slave), HilOptions(seconds=1.0))
        elapsed = time.monotonic() - began
    finally:
        os.close(master)
        os.close(slave)
    status = {c.name: c.status for c in report.checks}
    assert status["command.stop_idle"] == FAIL and status["info.reply"] == FAIL and status["stream.gaps"] == SKIP
    assert not report.passed and elapsed < 5  # 1 s for the STOP's ACK + 2 s of GET_INFO retries


def test_unreachable_port_is_one_failed_check(tmp_path):
    report = run_hil_check(str(tmp_path / "ttyNONE"), HilOptions(seconds=0.1))
    assert not report.passed and [c.name for c in report.checks] == ["port.open"]
    assert "FAIL" in report.table()
