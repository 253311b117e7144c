"""The live runtime loop: source events -> windows -> analysis -> store -> report/display.

:class:`RuntimeSession` consumes one source's events. Samples feed the
:class:`~edge_runtime.runtime.window.WindowAssembler`; a gap, disconnect or device restart drops
the partial window (and is logged as an event), except a short gap of known length, which the window
bridges (:meth:`WindowAssembler.bridge`); every complete window is analyzed, stored (one
transaction) and reported. Windows lost to gaps again and again raise ``link_unstable``. The session ends when the source ends, after ``max_estimates``
windows with a number, or after ``duration_s`` of wall time.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.events import (
    Connected, Disconnected, Gap, InfoReceived, LeadOffChanged, Reconnecting, Samples, Stopped,
)
from firmware_bridge.frames import ELECTRODES
from edge_runtime.record import STANDARD_LEADS, PatientContext
from edge_runtime.flags import Flag
from edge_runtime.runtime.patient import PatientData, operator_only
from edge_runtime.runtime.pipeline import Analyzer, WindowResult, standard_window
from edge_runtime.runtime.report import add_patient_provenance
from edge_runtime.runtime.store import ResultStore, utc_now
from edge_runtime.runtime.window import Window, WindowAssembler

WHOLE_WINDOW_FLAT_MV = 0.01  # a lead this flat over the whole window is absent, not noisy
_LOG = logging.getLogger("elvmass.runtime")
UNSTABLE_AFTER_LOST = 3  # windows lost to the link in a row before the operator hears "check the cable"


@dataclass
class SessionEvent:
    """Something the operator should know that is not a window result (gap, lead-off, unplug)."""

    name: str
    reason: str  # developer detail (log, JSON)
    utc: str = field(default_factory=utc_now)
    operator_text: str = ""  # plain words for the screen; empty = nothing the operator needs to read

    def to_dict(self) -> dict[str, str]:
        out = {"name": self.name, "reason": self.reason, "utc": self.utc}
        if self.operator_text:
            out["operator_text"] = self.operator_text
        return out


@dataclass
class SessionSummary:
    """What a session did (printed as JSON at the end of ``elvmass run``).

    A device runs for days: only the last ``KEEP`` results and events stay in memory (the store
    has them all); the counters cover the whole session.
    """

    KEEP = 500
    results: deque = field(default_factory=lambda: deque(maxlen=SessionSummary.KEEP))  # reports + "result_id"
    events: deque = field(default_factory=lambda: deque(maxlen=SessionSummary.KEEP))
    windows: int = 0
    samples: int = 0
    n_estimates: int = 0  # windows with a number
    first_estimate_s: float | None = None  # seconds from the first clean samples to the first number
    gaps_bridged: int = 0  # short gaps filled inside windows
    windows_lost: int = 0  # partial windows discarded by long or unknown gaps
    link_unstable: bool = False  # windows kept being lost: the operator was told to check the cable

    def add(self, report: dict) -> None:
        self.windows += 1
        self.n_estimates += report["lvm_g"] is not None
        self.results.append(report)

    def to_dict(self) -> dict:
        return {"windows": self.windows, "samples": self.samples, "n_estimates": self.n_estimates,
                "first_estimate_s": self.first_estimate_s, "gaps_bridged": self.gaps_bridged,
                "windows_lost": self.windows_lost, "link_unstable": self.link_unstable,
                "events": [e.to_dict() for e in self.events], "results": list(self.results)}


_END = object()


def _pump(source: object, events: queue.Queue) -> None:
    """Reader thread: every source event into the queue, then ``_END`` (or the exception)."""
    try:
        for event in source.events():  # type: ignore[attr-defined]
            events.put(event)
    except Exception as error:  # handed to the consumer, which re-raises it in the main thread
        events.put(error)
    events.put(_END)


def absent_leads(signals_mv: np.ndarray) -> list[str]:
    """Leads flat over the whole window (electrode never attached, or a 2-lead source)."""
    spans = np.ptp(signals_mv, axis=1)
    return [STANDARD_LEADS[i] for i in np.flatnonzero(spans < WHOLE_WINDOW_FLAT_MV)]


def railed_leads(signals_mv: np.ndarray, fs: float, full_scale_mv: float | None) -> list[str]:
    """Leads that sit at the ADC's full scale for >= 16 ms: the amplifier saturated (or railed
    because an electrode is off). Only known when the device announced its LSB."""
    if not full_scale_mv:
        return []
    run = max(3, int(round(0.016 * fs)))
    at_rail = np.abs(signals_mv) >= 0.999 * full_scale_mv
    found = []
    for index, row in enumerate(at_rail):
        if row.any() and np.convolve(row.astype(np.int32), np.ones(run, dtype=np.int32), "valid").max() >= run:
            found.append(STANDARD_LEADS[index])
    return found


def _lead_off_of(event: Samples) -> np.ndarray | frozenset[str] | None:
    """What :meth:`WindowAssembler.push` needs: ``None`` when all electrodes are on (the common
    case, kept cheap), else the per-sample (n, 9) matrix, so that a window gets only the electrodes
    off within its own samples even when one block of samples straddles two windows."""
    off_columns = np.asarray(event.lead_off, dtype=bool)
    if not (off_columns.size and off_columns.any()):
        return None
    if off_columns.shape == (event.n_samples, len(ELECTRODES)):
        return off_columns
    return frozenset(ELECTRODES[i] for i in np.flatnonzero(off_columns.reshape(-1, len(ELECTRODES)).any(axis=0)))


def _electrode_order(name: str) -> int:
    return ELECTRODES.index(name) if name in ELECTRODES else len(ELECTRODES)


def device_text(info: object) -> str:
    """The device's INFO in the operator's words (the dataclass repr goes to the log)."""
    version = ".".join(str(part) for part in getattr(info, "firmware_version", ()))
    return (f"ECG front-end {getattr(info, 'device_id', '?')} (firmware {version or '?'}) ready, "
            f"{getattr(info, 'sample_rate_hz', '?')} samples/s.")


class RuntimeSession:
    """Run the runtime on one source.

    Parameters
    ----------
    analyzer : Analyzer
        Model and clinic config.
    patient : PatientContext
        The validated operator input.
    store : ResultStore, optional
        Where every window result is committed.
    on_result : callable, optional
        Called with each :class:`WindowResult` after it is stored (report printing, PNG).
    on_status : callable, optional
        Called with ``(session, event)`` for every event (the live display).
    max_estimates : int, optional
        Stop after this many results with a number.
    max_windows : int, optional
        Stop after this many analyzed windows (with or without a number).
    on_log : callable, optional
        Called with each :class:`SessionEvent` (gap, lead-off, disconnect ...) as it happens.
    duration_s : float, optional
        Stop after this much wall time.
    provenance : PatientData, optional
        Where each patient value came from (default: all entered by the operator).
    """

    def __init__(self, analyzer: Analyzer, patient: PatientContext, store: ResultStore | None = None,
                 on_result: Callable[[WindowResult], None] | None = None,
                 on_status: Callable[..., None] | None = None, max_estimates: int | None = None,
                 duration_s: float | None = None, max_windows: int | None = None,
                 on_log: Callable[[SessionEvent], None] | None = None,
                 provenance: PatientData | None = None) -> None:
        self.analyzer = analyzer
        self.patient = patient
        self.provenance = provenance or operator_only(patient)
        self.store = store
        self.on_result = on_result
        self.on_status = on_status
        self.max_estimates = max_estimates
        self.max_windows = max_windows
        self.on_log = on_log
        self.duration_s = duration_s
        self.summary = SessionSummary()
        self.assembler: WindowAssembler | None = None
        self.lead_off: frozenset[str] = frozenset()
        self.source_name = "?"
        self._clean_since: float | None = None
        self.full_scale_mv: float | None = None  # from the device's INFO (24-bit codes x LSB)
        self.leads_seen: set[str] = set()  # leads that carried signal in some window of this session
        self.streaming = False  # samples are arriving (False before the first and after a disconnect)
        self.lead_off_since: float | None = None  # monotonic time the current lead-off began
        self._lost_in_row = 0  # windows lost to the link (dropped, or emptied by gaps) since the last good one

    def _log(self, name: str, reason: str, operator_text: str = "", show: bool = True) -> None:
        """Record an event (the ``--json`` summary); ``show`` passes it to ``on_log`` (the screen)."""
        event = SessionEvent(name, reason, operator_text=operator_text)
        _LOG.info("%s: %s", name, reason)  # developer detail: the log, never the status line
        self.summary.events.append(event)
        if show and self.on_log:
            self.on_log(event)

    def _drop_partial(self, name: str, reason: str, n_missing: int | None = None,
                      operator_text: str = "") -> None:
        dropped = 0 if self.assembler is None else self.assembler.gap(n_missing or 0)
        self._log(name, f"{reason}; partial window of {dropped} samples discarded", operator_text)
        self._clean_since = None
        if dropped:
            self.summary.windows_lost += 1
            self._link_failure()

    def _link_failure(self) -> None:
        """A window lost to the link (dropped, or left without clean beats by gaps); in a row -> tell the operator."""
        self._lost_in_row += 1
        if self._lost_in_row == UNSTABLE_AFTER_LOST:
            flag = Flag("link_unstable", f"{self._lost_in_row} windows in a row lost to gaps or disconnects")
            self.summary.link_unstable = True
            self._log(flag.name, flag.reason, flag.operator_text)

    def done(self) -> bool:
        """True when ``max_estimates`` or ``max_windows`` is reached."""
        return ((self.max_estimates is not None and self.summary.n_estimates >= self.max_estimates)
                or (self.max_windows is not None and self.summary.windows >= self.max_windows))

    def run(self, source: object) -> SessionSummary:
        """Consume ``source.events()`` until it ends or a stop condition holds.

        The source is read in its own thread into a queue, so a window's analysis never stalls the
        serial reads (a front-end's FIFO would overflow and drop frames).
        """
        self.source_name = getattr(source, "describe", lambda: "source")()
        started = time.monotonic()
        events: queue.Queue = queue.Queue()
        reader = threading.Thread(target=_pump, args=(source, events), name="elvmass-source", daemon=True)
        reader.start()
        try:
            while True:
                timeout = None if self.duration_s is None else max(0.0, started + self.duration_s - time.monotonic())
                try:
                    event = events.get(timeout=timeout)
                except queue.Empty:
                    break
                if event is _END:
                    break
                if isinstance(event, BaseException):
                    raise event
                self.handle(event)
                if self.on_status:
                    self.on_status(self, event)
                if self.done() or (self.duration_s is not None and time.monotonic() - started >= self.duration_s):
                    break
        finally:
            getattr(source, "stop", lambda: None)()  # the transport sends STOP and closes the port
            reader.join(timeout=5.0)
        return self.summary

    def handle(self, event: object) -> list[WindowResult]:
        """Process one event; returns the window results it completed."""
        if isinstance(event, Samples):
            return self._samples(event)
        if isinstance(event, Gap):
            missing = "unknown" if event.missing_samples is None else str(event.missing_samples)
            if self.assembler is not None and self.assembler.bridge(event.missing_samples):
                # A few lost frames: the window goes on (developer detail only; the report counts them).
                self.summary.gaps_bridged += 1
                self._log("gap_bridged", f"gap of {missing} samples ({event.reason}) interpolated", show=False)
                return [self.analyze(window) for window in self.assembler.take_pending()]
            self._drop_partial("dropped_frames", f"gap of {missing} samples ({event.reason})", event.missing_samples,
                               "Signal lost for a moment; the 10 s recording starts again.")
        elif isinstance(event, LeadOffChanged):
            if event.newly_off:
                where = ", ".join(sorted(event.newly_off, key=_electrode_order))
                self._log("lead_off", f"electrode(s) off: {where}", Flag("lead_off", "", where=where).operator_text)
            if event.reattached:
                self._log("lead_on", f"electrode(s) reattached: {', '.join(sorted(event.reattached))}",
                          f"Electrode reattached: {', '.join(sorted(event.reattached, key=_electrode_order))}.")
        elif isinstance(event, Disconnected):
            self.streaming = False
            self._drop_partial("disconnected", f"link lost: {event.reason}",
                               operator_text="The ECG front-end is disconnected: check the cable.")
        elif isinstance(event, Reconnecting):
            self._log("reconnecting", f"attempt {event.attempt} in {event.delay_s:g} s ({event.reason})",
                      "Reconnecting to the ECG front-end ...")
        elif isinstance(event, Connected):
            self._log("connected", f"{event.url} (attempt {event.attempt})", "ECG front-end connected.")
        elif isinstance(event, InfoReceived):
            info = event.info
            self.full_scale_mv = float(info.lsb_nv) * (1 << 23) / 1e6  # 24-bit ADC, signed
            self._log("device_info", repr(info), device_text(info))
        elif isinstance(event, Stopped):
            self._log("stopped", f"{event.url}", "Recording stopped.")
        return []

    def _samples(self, event: Samples) -> list[WindowResult]:
        self.streaming = True
        if self.assembler is None or self.assembler.fs != float(event.fs):
            if self.assembler is not None:
                self._drop_partial("rate_changed", f"stream rate changed to {event.fs:g} Hz")
            self.assembler = WindowAssembler(fs=float(event.fs))
        off = _lead_off_of(event)
        if off is None:  # the common case, kept cheap: this runs for every block of samples
            self.lead_off = frozenset()
        else:  # the electrodes off at the block's last sample (the live display's state)
            self.lead_off = off if isinstance(off, frozenset) else frozenset(ELECTRODES[i] for i in np.flatnonzero(off[-1]))
        if self.lead_off:
            if self.lead_off_since is None:
                self.lead_off_since = time.monotonic()
        else:
            self.lead_off_since = None
        if off is not None:
            self._clean_since = None
        elif self._clean_since is None:
            self._clean_since = time.monotonic()
        self.summary.samples += event.n_samples
        return [self.analyze(window) for window in self.assembler.push(event.signals_mv, lead_off=off)]

    def analyze(self, window: Window) -> WindowResult:
        """Analyze, store and report one complete window."""
        recorded = utc_now()
        signals, flags = window.signals_mv, list(window.flags)
        # A railed channel with its electrode off is lead-off (already flagged); otherwise saturation.
        railed = [name for name in railed_leads(signals, window.fs, self.full_scale_mv) if name not in window.leads_off]
        if railed:
            flags.append(Flag("saturation", f"at the ADC full scale ({self.full_scale_mv:.0f} mV) in {', '.join(railed)}",
                              where=", ".join(railed)))
        absent = absent_leads(signals)
        self.leads_seen.update(name for name in STANDARD_LEADS if name not in absent)
        never = [name for name in absent if name not in self.leads_seen and name not in railed]
        if never:
            # Leads with no signal since the session started (a 2-lead source, electrodes never
            # attached): rhythm flags from the leads that exist, never a number.
            flags.append(Flag("needs_12_leads", f"the model needs 12 leads; no signal on {', '.join(never)}",
                              where=", ".join(never)))
            present = [name for name in STANDARD_LEADS if name not in absent]
            result = self.analyzer.analyze_leads(signals, window.fs, present, self.patient, flags,
                                                 source=self.source_name, recorded_utc=recorded)
        else:
            result = self.analyzer.analyze_12(signals, window.fs, self.patient, flags, source=self.source_name,
                                              recorded_utc=recorded, gap_mask=getattr(window, "gap_mask", None))
        add_patient_provenance(result.report, self.provenance)
        if result.report["lvm_g"] is None and result.report.get("n_beats_excluded_gap"):
            self._link_failure()  # the gaps took the beats this window needed
        else:
            self._lost_in_row = 0
        result.report["window_start_s"] = round(window.start_sample / window.fs, 3)
        if self.store is not None:
            result.report["result_id"] = self.store.add(result.report, signals, window.fs, window.lead_names,
                                                        recorded_utc=recorded)
        if result.report["lvm_g"] is not None and self.summary.first_estimate_s is None and self._clean_since:
            self.summary.first_estimate_s = round(time.monotonic() - self._clean_since, 3)
        self.summary.add(result.report)
        if self.on_result:
            self.on_result(result)
        return result
