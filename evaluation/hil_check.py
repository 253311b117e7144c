"""``elvmass hil-check``: a scripted conformance session against a front-end speaking protocol v1.

The session (every wait bounded, see :mod:`evaluation.hil_session`):

1. STOP (expects ACK), GET_INFO (INFO within 2 s, resent every 250 ms), PING (PONG echo),
   SET_RATE to the announced rate (INFO), a frame that is not a command (NAK reason 1);
2. TEST_SIGNAL 1 when the device offers it (ACK), a short capture of the internal test signal,
   checked against PROTOCOL.md section 8 (amplitude, frequency), TEST_SIGNAL 0;
3. START and a capture of ``seconds`` with PINGs riding on the stream, then STOP (ACK, and silence);
4. checks on that capture: sample rate against the host clock, frame-arrival jitter, gaps, CRC
   failures and resyncs per minute, lead-off bits, saturation, flat lines, the known input
   (``reference``) when given, end-to-end latency; an optional guided electrode removal.

Each check is one :class:`Check` (pass / fail / warn / skip, measured value, expectation, and what a
firmware engineer should look at). ``warn`` marks measurements that depend on the host's load
(arrival jitter) and never fail the run.
"""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from evaluation.hil_measures import best_lag, correlation_matrix, lower_envelope_rate, square_wave
from evaluation.hil_session import Capture, DeviceSession, SessionError
from firmware_bridge.faults import ELECTRODE_CHANNELS
from firmware_bridge.frames import (
    CHANNEL_LEADS, CODE_MAX, ELECTRODES, DeviceInfo, Frame, FrameError, FrameType, NakReason, decode_info_payload,
)
from firmware_bridge.internal_signal import TEST_SIGNAL_AMPLITUDE_MV, TEST_SIGNAL_FREQUENCY_HZ

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass(frozen=True)
class Check:
    """One line of the table."""

    name: str
    status: str
    measured: str
    expected: str
    advice: str = ""


@dataclass(frozen=True)
class HilOptions:
    """Session length and the limits each check holds the device to.

    ``speed`` is for emulators replaying faster than real time: device seconds per host second.
    Rates are divided by it and device-time durations multiplied, so a conforming emulator at 20x
    passes the same limits as a board at 1x. A real board runs at ``speed = 1``.
    """

    seconds: float = 10.0
    speed: float = 1.0
    reference: str | None = None
    test_signal_seconds: float = 2.5  # device seconds: ~5 periods of the 1.95 Hz square wave
    reply_timeout_s: float = 1.0
    stall_timeout_s: float = 2.0
    max_rate_error_ppm: float = 500.0
    max_jitter_ms: float = 20.0
    max_latency_ms: float = 100.0
    max_gaps_per_min: float = 0.0
    max_crc_errors_per_min: float = 0.0
    max_resyncs_per_min: float = 0.0
    test_amplitude_mv: float = TEST_SIGNAL_AMPLITUDE_MV
    test_frequency_hz: float = TEST_SIGNAL_FREQUENCY_HZ
    test_amplitude_tolerance: float = 0.10
    test_frequency_tolerance: float = 0.01
    min_reference_correlation: float = 0.9
    reference_amplitude_tolerance: float = 0.05
    guided_lead_off: bool = False  # interactive: ask the operator to remove an electrode
    electrode_to_remove: str = "LA"
    guided_wait_s: float = 30.0


@dataclass
class HilReport:
    port: str
    checks: list[Check] = field(default_factory=list)
    device: dict | None = None
    metrics: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not any(check.status == FAIL for check in self.checks)

    def add(self, name: str, status: str, measured: str, expected: str, advice: str = "") -> Check:
        check = Check(name, status, measured, expected, advice if status in (FAIL, WARN, SKIP) else "")
        self.checks.append(check)
        return check

    def status_of(self, name: str) -> str | None:
        return next((check.status for check in self.checks if check.name == name), None)

    def to_dict(self) -> dict:
        counts = {status: sum(check.status == status for check in self.checks) for status in (PASS, FAIL, WARN, SKIP)}
        return {"port": self.port, "passed": self.passed, "counts": counts, "device": self.device,
                "checks": [asdict(check) for check in self.checks], "metrics": self.metrics}

    def table(self) -> str:
        """The pass/fail table as text (advice on its own indented line under a failing check)."""
        rows = [("check", "result", "measured", "expected")]
        rows += [(c.name, c.status.upper(), c.measured, c.expected) for c in self.checks]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for index, row in enumerate(rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths))
            elif self.checks[index - 1].advice:
                lines.append(" " * (widths[0] + 2) + "-> " + self.checks[index - 1].advice)
        verdict = "PASS" if self.passed else "FAIL"
        counts = self.to_dict()["counts"]
        lines.append(f"\n{verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['warn']} warnings, "
                     f"{counts['skip']} skipped ({self.port})")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- the session
def run_hil_check(port: str, options: HilOptions = HilOptions(), *, baudrate: int = 921600,
                  say: Callable[[str], None] = lambda text: None,
                  open_port: Callable | None = None) -> HilReport:
    """Run the whole scripted session against ``port`` and return the report (never raises for the device).

    Parameters
    ----------
    port : str
        Serial port or pyserial URL.
    options : HilOptions
    baudrate : int
    say : callable
        Progress and operator prompts (the guided electrode removal speaks through it).
    open_port : callable, optional
        Port factory (``serial.serial_for_url`` by default).
    """
    report = HilReport(port)
    extra = {} if open_port is None else {"open_port": open_port}
    try:
        session = DeviceSession(port, baudrate=baudrate, reply_timeout_s=options.reply_timeout_s,
                                stall_timeout_s=options.stall_timeout_s, **extra)
    except SessionError as error:
        report.add("port.open", FAIL, str(error), "port opens", "check the path, permissions (dialout group), cable")
        return report
    try:
        with session:
            _session(session, options, report, say)
    except SessionError as error:
        report.add("port.io", FAIL, str(error), "reads and writes succeed", "the port vanished (USB reset, unplug?)")
    return report


def _session(session: DeviceSession, options: HilOptions, report: HilReport, say: Callable[[str], None]) -> None:
    say("handshake")
    ack, seconds = session.request(FrameType.STOP, b"", _ack_of(FrameType.STOP))
    report.add("command.stop_idle", PASS if ack else FAIL, _reply_text(ack, seconds), "ACK(11) within "
               f"{options.reply_timeout_s:g} s", "answer STOP with ACK even when idle")
    info = _check_info(session, report)
    if info is None:
        _skip_rest(report, "no usable INFO: the host cannot decode DATA without the LSB and a valid channel map")
        return
    nonce = os.urandom(8)
    pong, seconds = session.request(FrameType.PING, nonce, lambda f: f.type == FrameType.PONG)
    report.metrics["ping_rtt_idle_ms"] = round(seconds * 1e3, 2) if pong else None
    report.add("command.ping", PASS if pong and pong.payload == nonce else FAIL,
               "no PONG" if pong is None else ("echo ok" if pong.payload == nonce else f"echo {pong.payload.hex()}"),
               "PONG echoing the 8 payload bytes", "echo the PING payload unchanged in a PONG")
    rate_reply, seconds = session.request(FrameType.SET_RATE, struct.pack("<H", info.sample_rate_hz),
                                          lambda f: f.type in (FrameType.INFO, FrameType.NAK))
    rate_ok = rate_reply is not None and rate_reply.type == FrameType.INFO and _info_rate(rate_reply) == info.sample_rate_hz
    report.add("command.set_rate", PASS if rate_ok else FAIL,
               _reply_text(rate_reply, seconds), f"INFO with {info.sample_rate_hz} Hz (the announced rate)",
               "answer SET_RATE with INFO (new rate) or NAK(13, 3); the announced rate must be accepted")
    nak, seconds = session.request(FrameType.PONG, b"?", lambda f: f.type in (FrameType.NAK, FrameType.ACK))
    nak_ok = nak is not None and nak.type == FrameType.NAK and nak.payload == bytes([FrameType.PONG, NakReason.UNKNOWN_COMMAND])
    report.add("command.unknown_nak", PASS if nak_ok else FAIL, _reply_text(nak, seconds), "NAK(03, 1)",
               "answer frames that are not commands with NAK reason 1 (unknown command)")
    _test_signal(session, info, options, report, say)
    say(f"streaming {options.seconds:g} s")
    capture = session.capture(info, options.seconds)
    report.add("command.start", PASS if capture.start_ack_s is not None else FAIL,
               "no ACK" if capture.start_ack_s is None else f"ACK in {capture.start_ack_s * 1e3:.1f} ms",
               "ACK(10), then DATA from sample 0", "answer START with ACK before the first DATA frame")
    _check_stop(session, capture, report)
    _stream_checks(capture, info, options, report)
    _reference_check(capture, info, options, report)
    _guided_lead_off(session, info, options, report, say)


def _check_info(session: DeviceSession, report: HilReport) -> DeviceInfo | None:
    frame, seconds = session.request(FrameType.GET_INFO, b"", lambda f: f.type == FrameType.INFO, timeout_s=2.0,
                                     resend_every_s=0.25)
    if frame is None:
        report.add("info.reply", FAIL, "no INFO in 2 s", "INFO within 2 s of GET_INFO (resent every 250 ms)",
                   "answer GET_INFO (0x14) with an INFO frame; check baud rate and TX wiring")
        return None
    try:
        info = decode_info_payload(frame.payload)
    except FrameError as error:
        report.add("info.reply", FAIL, str(error), "36-byte INFO payload, 8 channels", "see PROTOCOL.md section 3")
        return None
    report.device = {"device_id": info.device_id, "firmware_version": ".".join(map(str, info.firmware_version)),
                     "sample_rate_hz": info.sample_rate_hz, "samples_per_frame": info.samples_per_frame,
                     "channel_map": list(info.channel_map), "lsb_nv": info.lsb_nv}
    report.add("info.reply", PASS, f"INFO in {seconds * 1e3:.1f} ms", "INFO within 2 s")
    printable = bool(info.device_id) and all(32 <= ord(ch) < 127 for ch in info.device_id)
    report.add("info.device_id", PASS if printable else FAIL, repr(info.device_id), "printable ASCII, not empty",
               "put a model/serial string in the 16-byte id (NUL-padded)")
    map_ok = sorted(info.channel_map) == sorted(CHANNEL_LEADS)
    report.add("info.channel_map", PASS if map_ok else FAIL, ",".join(info.channel_map), "a permutation of I,II,V1..V6",
               "the map names the lead each channel carries; III/aVR/aVL/aVF are derived by the host")
    rate_ok = 250 <= info.sample_rate_hz <= 32000
    report.add("info.sample_rate", PASS if rate_ok else FAIL, f"{info.sample_rate_hz} Hz", "250..32000 Hz",
               "QRS delineation needs at least 250 Hz; 500 Hz is the reference rate")
    spf_ok = 1 <= info.samples_per_frame <= 20
    report.add("info.samples_per_frame", PASS if spf_ok else FAIL, str(info.samples_per_frame), "1..20")
    lsb_ok = np.isfinite(info.lsb_nv) and 5e6 / 2**23 <= info.lsb_nv <= 1000.0
    report.add("info.lsb", PASS if lsb_ok else FAIL, f"{info.lsb_nv:.4g} nV", "0.6..1000 nV (full scale >= 5 mV, "
               "resolution <= 1 uV)", "LSB = Vref / gain / 2^23 in nV, as IEEE-754 float (ADS1298 gain 6: 47.68 nV)")
    return info if map_ok and rate_ok and spf_ok and lsb_ok else None


def _test_signal(session: DeviceSession, info: DeviceInfo, options: HilOptions, report: HilReport,
                 say: Callable[[str], None]) -> None:
    reply, seconds = session.request(FrameType.TEST_SIGNAL, b"\x01", lambda f: f.type in (FrameType.ACK, FrameType.NAK))
    if reply is None or reply.type == FrameType.NAK:
        why = "no reply to TEST_SIGNAL" if reply is None else "device answers TEST_SIGNAL with NAK"
        report.add("test_signal", SKIP, why, "optional (PROTOCOL.md section 8)",
                   "offer TEST_SIGNAL (0x15) to get the amplitude/frequency check; or give --reference with a "
                   "patient simulator's record")
        return
    say("internal test signal")
    # Read until the wanted device seconds are in, waiting up to twice as long (a slow start is not a fault here).
    wanted = int(options.test_signal_seconds * info.sample_rate_hz)
    received = [0]

    def enough(block) -> bool:
        received[0] += block.n_samples
        return received[0] >= wanted

    capture = session.capture(info, max(1.0, 2 * options.test_signal_seconds / options.speed), ping_every_s=None,
                              until=enough)
    session.request(FrameType.STOP, b"", _ack_of(FrameType.STOP))
    off, _ = session.request(FrameType.TEST_SIGNAL, b"\x00", lambda f: f.type in (FrameType.ACK, FrameType.NAK))
    index, signals = capture.indexed_samples()
    fs = float(info.sample_rate_hz)
    measured = [square_wave(index, channel, fs) for channel in signals]
    expected_text = (f"{options.test_amplitude_mv:g} mV +-{options.test_amplitude_tolerance:.0%}, "
                     f"{options.test_frequency_hz:.4g} Hz +-{options.test_frequency_tolerance:.0%}")
    if signals.shape[1] < 2 * fs / options.test_frequency_hz or any(m is None for m in measured):
        report.add("test_signal", FAIL, f"{signals.shape[1]} samples, no square wave found",
                   expected_text, "route the internal test source to every channel (ADS1298: CONFIG2 = 0x15, CHnSET MUX = 101)")
        return
    amplitudes = np.array([m[0] for m in measured])
    frequencies = np.array([m[1] for m in measured])
    amp_bad = np.abs(amplitudes / options.test_amplitude_mv - 1) > options.test_amplitude_tolerance
    freq_bad = np.abs(frequencies / options.test_frequency_hz - 1) > options.test_frequency_tolerance
    report.metrics["test_signal"] = {"amplitude_mv": dict(zip(CHANNEL_LEADS, np.round(amplitudes, 4).tolist())),
                                     "frequency_hz": dict(zip(CHANNEL_LEADS, np.round(frequencies, 4).tolist()))}
    bad = [lead for lead, a, f in zip(CHANNEL_LEADS, amp_bad, freq_bad) if a or f]
    report.add("test_signal", FAIL if bad else PASS,
               f"{np.median(amplitudes):.3f} mV, {np.median(frequencies):.4f} Hz" + (f"; off in {','.join(bad)}" if bad else ""),
               expected_text, "a wrong amplitude means a wrong LSB in INFO (gain/reference); a wrong frequency a "
               "wrong sample clock")
    if off is None or off.type != FrameType.ACK:
        report.add("command.test_signal_off", FAIL, "no ACK", "ACK(15) to TEST_SIGNAL 0", "switch the inputs back")


def _check_stop(session: DeviceSession, capture: Capture, report: HilReport) -> None:
    ack, seconds = session.request(FrameType.STOP, b"", _ack_of(FrameType.STOP))
    report.add("command.stop", PASS if ack else FAIL, _reply_text(ack, seconds), "ACK(11) while streaming",
               "answer STOP with ACK (after the DATA already queued)" + ("; the device had gone silent" if
                                                                        capture.silent_after_s is not None else ""))
    if ack is not None:
        late = session.drain(0.3)
        report.add("command.stop_quiet", PASS if late == 0 else FAIL, f"{late} DATA frames after the ACK",
                   "no DATA after ACK(11)", "stop the ADC/DMA before sending the ACK")


def _stream_checks(capture: Capture, info: DeviceInfo, options: HilOptions, report: HilReport) -> None:
    host_s = capture.ended_at - capture.started_at
    silent = capture.silent_after_s
    report.add("link.alive", PASS if silent is None else FAIL,
               f"bytes for {host_s:.1f} s" if silent is None else f"silent after {silent:.2f} s of streaming",
               f"no silence over {options.stall_timeout_s:g} s", "the device stopped sending and answering mid-session: "
               "watchdog, hard fault or a blocked TX path")
    n = capture.n_samples
    fs = float(info.sample_rate_hz)
    device_minutes = max(n, 1) / fs / 60.0
    if n < 10 * info.samples_per_frame:
        _skip_rest(report, f"only {n} samples decoded while streaming", start_at="stream.")
        return
    _rate_checks(capture, info, options, report)
    stats = capture.stats
    counter_gaps = [gap for gap in capture.gaps if gap.missing_samples is not None]
    restarts = len(capture.gaps) - len(counter_gaps)
    missing = sum(gap.missing_samples for gap in counter_gaps)
    per_min = {"gaps": len(counter_gaps) / device_minutes, "crc": stats.crc_errors / device_minutes,
               "resyncs": stats.resyncs / device_minutes}
    report.metrics.update({"samples": n, "device_seconds": round(n / fs, 3), "host_seconds": round(host_s, 3),
                           "gaps": len(counter_gaps), "missing_samples": missing, "counter_restarts": restarts,
                           "crc_errors": stats.crc_errors, "resyncs": stats.resyncs,
                           "header_rejects": stats.header_rejects, "frames_missed_by_seq": stats.frames_missed,
                           "bytes_discarded": stats.bytes_discarded,
                           "per_minute": {key: round(value, 2) for key, value in per_min.items()}})
    wire_clean = stats.crc_errors == 0 and stats.resyncs == 0
    report.add("stream.gaps", PASS if per_min["gaps"] <= options.max_gaps_per_min and restarts == 0 else FAIL,
               f"{per_min['gaps']:.1f}/min ({len(counter_gaps)} gaps, {missing} samples lost"
               + (f", {restarts} counter restarts" if restarts else "") + ")",
               f"<= {options.max_gaps_per_min:g}/min",
               ("sample counter jumps with clean bytes on the wire: the firmware drops frames (TX FIFO overrun, "
                "missed DRDY); a counter restart means a reset mid-stream") if wire_clean else
               "frames lost to corrupt bytes (see stream.crc / stream.resyncs)")
    wire_advice = ("corrupt or slipped bytes on the wire: check the baud rate (>= 230400 at 500 Hz), UART "
                   "overruns (DMA, FIFO), ground and cable length")
    report.add("stream.crc", PASS if per_min["crc"] <= options.max_crc_errors_per_min else FAIL,
               f"{per_min['crc']:.1f}/min ({stats.crc_errors})", f"<= {options.max_crc_errors_per_min:g}/min", wire_advice)
    report.add("stream.resyncs", PASS if per_min["resyncs"] <= options.max_resyncs_per_min else FAIL,
               f"{per_min['resyncs']:.1f}/min ({stats.resyncs}; {stats.bytes_discarded} bytes skipped)",
               f"<= {options.max_resyncs_per_min:g}/min", wire_advice)
    # Each lost frame skips one seq value, and a lost DATA frame also at least one sample: more seq
    # skips than that means the device does not number its frames +1 each.
    possible = missing + stats.crc_errors + stats.header_rejects + (1 << 16) * restarts
    report.add("stream.sequence", PASS if stats.frames_missed <= possible else FAIL,
               f"{stats.frames_missed} seq values skipped", f"<= {possible} (frames that can have been lost)",
               "the header seq must grow by 1 for every frame the device sends (DATA and replies), wrapping at 65536")
    signals, lead_off = capture.all_samples()
    _lead_off_check(signals, lead_off, info, report)
    full_scale = CODE_MAX * info.lsb_nv * 1e-6 * 0.999
    saturated = np.mean(np.abs(signals) >= full_scale, axis=1)
    bad = [f"{lead} {fraction:.0%}" for lead, fraction in zip(CHANNEL_LEADS, saturated) if fraction > 0.001]
    report.add("signal.saturation", FAIL if bad else PASS, ", ".join(bad) or "none", "<= 0.1 % of samples at full scale",
               "amplifier at the rail: electrode off, DC offset beyond range, or gain too high")
    span = np.ptp(signals, axis=1)
    flat = [lead for lead, p2p in zip(CHANNEL_LEADS, span) if p2p < 0.005]
    report.add("signal.flat_line", FAIL if flat else PASS, ", ".join(flat) or "none", "every channel moves >= 5 uV",
               "a flat channel: input shorted or powered down (CHnSET), wrong mux, or the buffer not refreshed")
    _latency_check(capture, info, options, report)


def _rate_checks(capture: Capture, info: DeviceInfo, options: HilOptions, report: HilReport) -> None:
    arrivals = np.array(capture.frame_arrivals, dtype=np.float64)
    times = arrivals[:, 0]
    samples = np.unwrap(arrivals[:, 1], period=2.0**32) + arrivals[:, 2]  # counter at each frame's last sample
    keep = np.concatenate([[True], np.diff(samples) > 0])  # a restart breaks the clock: keep the first stretch
    stop = np.flatnonzero(~keep)
    if stop.size:
        times, samples = times[:stop[0]], samples[:stop[0]]
    fs = float(info.sample_rate_hz)
    span_s = times[-1] - times[0]
    if samples.size < 20 or span_s < 0.5:
        report.add("stream.sample_rate", SKIP, f"{samples.size} frames over {span_s:.2f} s", ">= 0.5 s of frames",
                   "stream longer (--seconds)")
        return
    rate, lateness = lower_envelope_rate(samples, times)
    rate /= options.speed
    ppm = (rate / fs - 1.0) * 1e6
    report.metrics.update({"measured_rate_hz": round(rate, 3), "rate_error_ppm": round(ppm, 1)})
    report.add("stream.sample_rate", PASS if abs(ppm) <= options.max_rate_error_ppm else FAIL,
               f"{rate:.2f} Hz ({ppm:+.0f} ppm)", f"{fs:g} Hz +-{options.max_rate_error_ppm:g} ppm",
               "the sample clock differs from INFO: check the ADC clock (2.048 MHz crystal vs internal oscillator) "
               "and the data-rate setting (CONFIG1 DR)")
    p99 = float(np.percentile(lateness, 99)) * 1e3
    report.metrics["arrival_jitter_ms"] = {"median": round(float(np.median(lateness)) * 1e3, 3), "p99": round(p99, 3)}
    report.add("stream.arrival_jitter", PASS if p99 <= options.max_jitter_ms else WARN, f"p99 {p99:.1f} ms",
               f"<= {options.max_jitter_ms:g} ms (warning only: host load counts too)",
               "frames arrive in bursts: send each frame when it fills; check USB polling or TX buffering")


def _lead_off_check(signals: np.ndarray, lead_off: np.ndarray, info: DeviceInfo, report: HilReport) -> None:
    fractions = lead_off.mean(axis=0) if lead_off.size else np.zeros(len(ELECTRODES))
    off = [(electrode, fraction) for electrode, fraction in zip(ELECTRODES, fractions) if fraction > 0]
    if not off:
        report.add("lead_off.attached", PASS, "no electrode reported off", "all lead-off bits clear while streaming")
        return
    full_scale = CODE_MAX * info.lsb_nv * 1e-6 * 0.999
    notes = []
    for electrode, fraction in off:
        rows = [CHANNEL_LEADS.index(lead) for lead in ELECTRODE_CHANNELS[electrode]]
        live = all(np.ptp(signals[row]) >= 0.005 and np.mean(np.abs(signals[row]) >= full_scale) < 0.5 for row in rows)
        notes.append(f"{electrode} {fraction:.0%}" + (" (signal live: stuck bit?)" if live else ""))
    stuck = any("stuck" in note for note in notes)
    report.add("lead_off.attached", FAIL, ", ".join(notes), "all lead-off bits clear while streaming",
               "a lead-off bit set while its channel carries a live signal: check the LOFF_STATP/STATN bit mapping and "
               "the comparator threshold (LOFF register)" if stuck else "attach the electrode(s) reported off")


def _latency_check(capture: Capture, info: DeviceInfo, options: HilOptions, report: HilReport) -> None:
    if not capture.ping_rtts_s or not capture.decode_s_per_frame:
        report.add("latency.end_to_end", SKIP, f"{len(capture.ping_rtts_s)} of {capture.pings_sent} PINGs answered",
                   f"<= {options.max_latency_ms:g} ms", "answer PING while streaming so the link delay can be measured")
        return
    fill_ms = info.samples_per_frame / info.sample_rate_hz / options.speed * 1e3
    link_ms = float(np.median(capture.ping_rtts_s)) / 2 * 1e3
    decode_ms = float(np.median(capture.decode_s_per_frame)) * 1e3
    total = fill_ms + link_ms + decode_ms
    report.metrics["latency_ms"] = {"frame_fill": round(fill_ms, 3), "link_one_way": round(link_ms, 3),
                                    "decode": round(decode_ms, 4), "total": round(total, 3),
                                    "pings": f"{len(capture.ping_rtts_s)}/{capture.pings_sent}"}
    report.add("latency.end_to_end", PASS if total <= options.max_latency_ms else FAIL,
               f"{total:.1f} ms (fill {fill_ms:.1f} + link {link_ms:.1f} + decode {decode_ms:.2f})",
               f"<= {options.max_latency_ms:g} ms", "fewer samples per frame, or a TX path that queues less "
               "(PING round trip behind the DATA is the link delay)")


def _reference_check(capture: Capture, info: DeviceInfo, options: HilOptions, report: HilReport) -> None:
    if options.reference is None:
        report.add("signal.channel_map", SKIP, "no known input", "decoded leads match a known input",
                   "give --reference RECORD (what a patient simulator or replay plays) to check the channel map and gain")
        return
    try:
        reference = _reference_channels(options.reference, info.sample_rate_hz)
    except (OSError, ValueError) as error:
        report.add("signal.channel_map", FAIL, f"cannot read the reference: {error}", "a readable record")
        return
    _, decoded, _ = capture.longest_run()
    length = min(decoded.shape[1], reference.shape[1])
    if length < 2 * info.sample_rate_hz:
        for name in ("signal.channel_map", "signal.amplitude"):
            report.add(name, SKIP, f"longest gap-free stretch {decoded.shape[1]} samples", ">= 2 s gap-free",
                       "fix stream.gaps first, or stream longer (--seconds)")
        return
    segment = decoded[:, :length].astype(np.float64)
    lag = best_lag(segment, reference)
    aligned = np.roll(reference, -lag, axis=1)[:, :length]
    corr = correlation_matrix(segment, aligned)
    best = corr.argmax(axis=1)
    wrong = [f"{CHANNEL_LEADS[i]} carries {CHANNEL_LEADS[j]} (r={corr[i, j]:.2f})" for i, j in enumerate(best)
             if j != i or corr[i, i] < options.min_reference_correlation]
    report.metrics["reference"] = {"lag_samples": int(lag),
                                   "correlation": dict(zip(CHANNEL_LEADS, np.round(np.diag(corr), 4).tolist()))}
    report.add("signal.channel_map", FAIL if wrong else PASS, "; ".join(wrong) or "every channel matches its lead",
               f"r >= {options.min_reference_correlation:g} with the same lead of the reference",
               "the data order disagrees with the INFO channel map: fix the map or the channel wiring")
    if wrong:
        report.add("signal.amplitude", SKIP, "channel map wrong", "1 +-5% of the reference", "fix signal.channel_map first")
        return
    ratio = np.std(segment, axis=1) / np.maximum(np.std(aligned, axis=1), 1e-9)
    off = [f"{lead} x{r:.3f}" for lead, r in zip(CHANNEL_LEADS, ratio) if abs(r - 1) > options.reference_amplitude_tolerance]
    report.metrics["reference"]["amplitude_ratio"] = dict(zip(CHANNEL_LEADS, np.round(ratio, 4).tolist()))
    report.add("signal.amplitude", FAIL if off else PASS, ", ".join(off) or f"ratio {np.median(ratio):.3f}",
               f"1 +-{options.reference_amplitude_tolerance:.0%} of the reference",
               "amplitude off: the INFO LSB does not match the PGA gain / reference voltage")


def _reference_channels(path: str, rate_hz: int) -> np.ndarray:
    """The reference record's 8 measured leads at the device's rate, (8, n) mV."""
    from edge_runtime.formats import RecordError, read_record
    from edge_runtime.runtime.sources import channels_from_record

    try:
        record = read_record(path)
    except RecordError as error:
        raise ValueError(str(error)) from error
    if record.fs != rate_hz:  # imported only when needed: scipy.signal is slow to import
        from edge_runtime.resample import resample_record

        record = resample_record(record, float(rate_hz))
    signals, _ = channels_from_record(record)
    return signals.astype(np.float64)


def _guided_lead_off(session: DeviceSession, info: DeviceInfo, options: HilOptions, report: HilReport,
                     say: Callable[[str], None]) -> None:
    electrode = options.electrode_to_remove
    if not options.guided_lead_off:
        report.add("lead_off.removal", SKIP, "not interactive", f"{electrode} bit follows its removal",
                   "the protocol cannot remove an electrode; run interactively (a terminal, no --no-prompt) to be "
                   "guided through it")
        return
    if report.status_of("link.alive") == FAIL:
        report.add("lead_off.removal", SKIP, "device silent", f"{electrode} bit follows its removal", "fix link.alive first")
        return
    column = ELECTRODES.index(electrode)
    say(f"REMOVE the {electrode} electrode now (waiting up to {options.guided_wait_s:g} s)")
    removed = session.capture(info, options.guided_wait_s, ping_every_s=None,
                              until=lambda block: bool(block.lead_off[:, column].any()))
    went_off = _first_block_time(removed, lambda block: bool(block.lead_off[:, column].any()))
    came_back = None
    if went_off is not None:
        say(f"{electrode} reported off after {went_off:.1f} s. REATTACH it now (waiting up to {options.guided_wait_s:g} s)")
        attached = session.capture(info, options.guided_wait_s, ping_every_s=None, send_start=False,
                                   until=lambda block: not block.lead_off[-1, column])
        came_back = _first_block_time(attached, lambda block: not block.lead_off[-1, column])
    session.request(FrameType.STOP, b"", _ack_of(FrameType.STOP))
    ok = went_off is not None and came_back is not None
    report.add("lead_off.removal", PASS if ok else FAIL,
               "no change seen" if went_off is None else (f"off after {went_off:.1f} s" + (
                   f", back after {came_back:.1f} s" if came_back is not None else ", never cleared")),
               f"{electrode} bit set on removal, cleared on reattach, within {options.guided_wait_s:g} s each",
               "enable lead-off detection (LOFF, LOFF_SENSP/N) and map the comparator bits as PROTOCOL.md section 2")


def _first_block_time(capture: Capture, wanted: Callable) -> float | None:
    """Host seconds from the capture's start to the arrival of the first block ``wanted`` accepts."""
    for (arrival, _, _), block in zip(capture.frame_arrivals, capture.blocks):
        if wanted(block):
            return arrival - capture.started_at
    return None


# ----------------------------------------------------------------------------------- helpers
def _ack_of(command: int) -> Callable[[Frame], bool]:
    return lambda frame: frame.type == FrameType.ACK and frame.payload == bytes([command])


def _info_rate(frame: Frame) -> int | None:
    try:
        return decode_info_payload(frame.payload).sample_rate_hz
    except FrameError:
        return None


def _reply_text(frame: Frame | None, seconds: float) -> str:
    if frame is None:
        return f"no reply in {seconds:.1f} s"
    name = FrameType(frame.type).name if frame.type in FrameType._value2member_map_ else f"0x{frame.type:02x}"
    shown = f"{_info_rate(frame)} Hz" if frame.type == FrameType.INFO else frame.payload.hex()
    return f"{name}({shown}) in {seconds * 1e3:.1f} ms"


def _skip_rest(report: HilReport, reason: str, start_at: str = "") -> None:
    names = ["stream.sample_rate", "stream.gaps", "stream.crc", "stream.resyncs", "stream.sequence", "lead_off.attached",
             "signal.saturation", "signal.flat_line", "latency.end_to_end"]
    if not start_at:
        names = ["command.ping", "command.set_rate", "test_signal", "command.start", "command.stop", *names]
    for name in names:
        report.add(name, SKIP, "not run", "-", reason)


def interactive_terminal() -> bool:
    """Whether an operator can follow prompts (stdin and stdout are terminals)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


__all__ = ["Check", "HilOptions", "HilReport", "run_hil_check", "interactive_terminal", "PASS", "FAIL", "WARN", "SKIP"]
