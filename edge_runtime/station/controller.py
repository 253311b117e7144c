"""One acquisition at a time, on the same :class:`RuntimeSession` as ``elvmass run``, seen by every browser.

:class:`StationController` owns the acquisition thread. ``start(patient)`` opens the front-end (a fresh
:class:`~edge_runtime.runtime.sources.SerialSource`, so the device restarts its stream) and runs a
``RuntimeSession`` until the first window with a number (``max_estimates=1``); refused windows are
stored and their reasons shown, and the session keeps recording. The session's ``on_status`` /
``on_log`` / ``on_result`` hooks feed a state snapshot and decimated live samples to the
:class:`~edge_runtime.station.live.Broadcaster`; they only copy a few numbers and never wait for a browser.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from edge_runtime.flags import spec
from firmware_bridge.frames import ELECTRODES
from edge_runtime.record import INDEPENDENT_LEADS, STANDARD_LEADS, PatientContext
from edge_runtime.station.live import Broadcaster, sse

LOG = logging.getLogger("elvmass.station")
DISPLAY_DECIMATION = 2  # 500 Hz -> 250 Hz on screen: every QRS peak still within 2 ms
SAMPLES_FLUSH_S = 0.04  # at most 25 sample messages per second per browser
STATE_EVERY_S = 0.25
REPLAY_S = 4.0  # seconds of trace a newly connected (or reloaded) browser gets at once
NO_SIGNAL_AFTER_S = 1.5
ELECTRODE_NAMES = ("RA", "LA", "LL", "RL", "V1", "V2", "V3", "V4", "V5", "V6")
UNIT_MV = 0.01  # live samples travel as integers of 10 uV


def _leads_of_electrodes(off: frozenset[str]) -> frozenset[str]:
    """Leads an off electrode spoils (as :attr:`Window.leads_off`): a limb electrode all of them
    (limb leads directly, V leads through Wilson's terminal), a V electrode its own lead."""
    if off & {"RA", "LA", "LL"}:
        return frozenset(STANDARD_LEADS)
    return frozenset(name for name in off if name in STANDARD_LEADS)


def _blank_off_samples(twelve: np.ndarray, lead_off: np.ndarray) -> None:
    """NaN (no line drawn) where an electrode was off, sample by sample, in the leads it spoils."""
    off = np.asarray(lead_off, dtype=bool)
    if not off.size or not off.any() or off.shape != (twelve.shape[1], len(ELECTRODES)):
        return
    for column in np.flatnonzero(off.any(axis=0)):
        rows = [STANDARD_LEADS.index(lead) for lead in _leads_of_electrodes(frozenset({ELECTRODES[column]}))]
        twelve[np.ix_(rows, np.flatnonzero(off[:, column]))] = np.nan


class StationBusy(RuntimeError):
    """An acquisition is already running (one at a time)."""


def verdict_of(report: dict) -> str:
    """The LVH verdict: the report's three-state ``lvh_verdict`` (LVH / no LVH / borderline), else derived from
    ``lvh`` (rows stored before the three-state verdict existed)."""
    verdict = report.get("lvh_verdict")
    if isinstance(verdict, str) and verdict:
        return verdict
    return {True: "LVH", False: "no LVH"}.get(report.get("lvh"), "LVH unknown")


def operator_texts(report: dict, consequences: tuple[str, ...] = ("blocks",)) -> list[str]:
    """Operator words for the report's flags with these consequences, from the flag registry."""
    texts = []
    for flag in report.get("flags") or []:
        name = flag.get("name") if isinstance(flag, dict) else None
        try:
            entry = spec(str(name))
        except KeyError:
            continue
        if entry.consequence.value not in consequences:
            continue
        text = flag.get("operator_text") or entry.operator_text
        if text not in texts:
            texts.append(text)
    return texts


class StationController:
    """The acquisition state machine: ``ready`` -> ``acquiring`` -> ``result`` -> ``ready``.

    Parameters
    ----------
    analyzer : Analyzer
        The loaded model and clinic config (shared with every acquisition).
    store_path : Path
        The SQLite result database.
    source_factory : callable
        Returns a new source (``SerialSource``) for each acquisition.
    broadcaster : Broadcaster
        Where state and live samples go.
    source_label : str
        What the Device page calls the front-end (``/dev/elvmass-ecg``, ``emulator ...``).
    """

    def __init__(self, analyzer: Any, store_path: Any, source_factory: Callable[[], Any], broadcaster: Broadcaster,
                 source_label: str = "") -> None:
        from edge_runtime.runtime.display import HeartRateMeter

        self._meter_type = HeartRateMeter
        self.analyzer = analyzer
        self.store_path = store_path
        self.source_factory = source_factory
        self.broadcaster = broadcaster
        self.source_label = source_label
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._source: Any = None
        self._session: Any = None
        self.events: deque[dict] = deque(maxlen=200)  # link and session events across acquisitions
        self._replay: deque[str] = deque()
        self._reset(phase="ready")
        self._seq = 0
        self._last_state = 0.0
        self.acquisition = 0  # numbers the acquisitions, so a browser knows when a new trace starts

    # --- state ------------------------------------------------------------------------------------
    def _reset(self, phase: str) -> None:
        self.phase = phase
        self.patient: PatientContext | None = None
        self.link = "idle"
        self.electrodes_off: frozenset[str] = frozenset()
        self.streaming = False
        self.last_samples_at = 0.0
        self.heart_rate: float | None = None
        self.progress = 0.0
        self.windows = 0
        self.refusal: dict | None = None
        self.result_id: int | None = None
        self.message = ""
        self.live_saturation = False
        self.last_window_flags: set[str] = set()
        self._meter = None
        self._pending: list[np.ndarray] = []
        self._pending_first = 0
        self._pending_t = 0.0
        self._last_flush = 0.0
        self._display_index = 0
        self._raw_index = 0
        self._display_fs = 250.0
        self._replay.clear()

    def snapshot(self) -> dict:
        """Everything a screen shows, JSON-ready (the same for every browser)."""
        with self._lock:
            now = time.monotonic()
            no_signal = self.phase == "acquiring" and (not self.streaming or now - self.last_samples_at > NO_SIGNAL_AFTER_S)
            electrodes = {}
            for name in ELECTRODE_NAMES:
                if self.phase != "acquiring" or no_signal:
                    electrodes[name] = "unknown"
                elif name == "RL":  # the driven reference: no lead-off bit; limb lead-off sensing needs it
                    electrodes[name] = "off" if {"RA", "LA", "LL"} <= self.electrodes_off else "on"
                else:
                    electrodes[name] = "off" if name in self.electrodes_off else "on"
            patient = None
            if self.patient is not None:
                patient = {key: value for key, value in asdict(self.patient).items()}
            return {
                "seq": self._seq,
                "phase": self.phase,
                "patient": patient,
                "link": "no signal" if no_signal and self.link == "streaming" else self.link,
                "electrodes": electrodes,
                "heart_rate_bpm": None if self.heart_rate is None or no_signal else round(self.heart_rate),
                "progress": round(self.progress, 3),
                "indicators": {
                    "noise": "noise" in self.last_window_flags,
                    "saturation": self.live_saturation or "saturation" in self.last_window_flags,
                    "no_signal": bool(no_signal),
                },
                "refusal": self.refusal,
                "windows": self.windows,
                "result_id": self.result_id,
                "message": self.message,
                "events": list(self.events)[-8:],
            }

    def publish_state(self, force: bool = True) -> None:
        now = time.monotonic()
        if not force and now - self._last_state < STATE_EVERY_S:
            return
        with self._lock:  # called from the acquisition thread and the server's ticker
            self._last_state = now
            self._seq += 1
            message = sse("state", json.dumps(self.snapshot(), separators=(",", ":")))
        self.broadcaster.publish(message)

    def replay_messages(self) -> list[str]:
        """What a browser that just connected gets first: the state and the last seconds of trace."""
        with self._lock:
            return [sse("state", json.dumps(self.snapshot(), separators=(",", ":"))), *self._replay]

    def tick(self) -> None:
        """Called about twice a second by the server: keeps 'no signal' honest when nothing arrives."""
        if self.phase == "acquiring":
            self.publish_state(force=False)

    # --- commands ---------------------------------------------------------------------------------
    def start(self, patient: PatientContext) -> None:
        """Begin an acquisition for ``patient``; :class:`StationBusy` when one is running."""
        with self._lock:
            if self.phase == "acquiring":
                raise StationBusy("an acquisition is already running: finish or cancel it first")
            self._reset(phase="acquiring")
            self.acquisition += 1
            self.patient = patient
            self.link = "connecting"
            self._log("acquire", "acquisition started")
            self._thread = threading.Thread(target=self._run, args=(patient,), name="elvmass-acquisition", daemon=True)
            self._thread.start()
        self.publish_state()

    def cancel(self) -> None:
        """Stop the running acquisition (its stored windows stay stored)."""
        with self._lock:
            source = self._source
            if self.phase != "acquiring":
                return
            self.message = "acquisition cancelled"
        if source is not None:
            source.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10.0)

    def next_patient(self) -> None:
        """Back to the patient form (only when no acquisition is running)."""
        with self._lock:
            if self.phase == "acquiring":
                raise StationBusy("an acquisition is running: cancel it first")
            self._reset(phase="ready")
        self.publish_state()

    def close(self) -> None:
        self.cancel()

    # --- the acquisition thread -------------------------------------------------------------------
    def _run(self, patient: PatientContext) -> None:
        from edge_runtime.runtime.session import RuntimeSession
        from edge_runtime.runtime.store import ResultStore

        try:
            source = self.source_factory()
            with ResultStore(self.store_path) as store:  # SQLite: opened in the thread that writes
                session = RuntimeSession(self.analyzer, patient, store, on_result=self._on_result,
                                         on_status=self._on_status, on_log=self._on_log, max_estimates=1)
                with self._lock:
                    self._source, self._session = source, session
                session.run(source)
        except Exception as error:  # the server stays up and says why the acquisition ended
            LOG.exception("acquisition ended with an error")
            with self._lock:
                self.message = f"the acquisition stopped: {type(error).__name__}: {error}"
                self._log("error", self.message)
        finally:
            with self._lock:
                self._source = self._session = None
                if self.result_id is not None and self.phase == "acquiring":
                    self.phase = "result"
                elif self.phase == "acquiring":
                    self.phase = "ready"
                    self.message = self.message or "the acquisition ended without a result"
                self.link = "idle"
                self.streaming = False
            self.publish_state()

    def _log(self, name: str, reason: str, utc: str | None = None) -> None:
        from edge_runtime.runtime.store import utc_now

        self.events.append({"name": name, "reason": reason, "utc": utc or utc_now()})
        LOG.info("%s: %s", name, reason)  # link and session events only: never patient data

    def _on_log(self, event: Any) -> None:
        with self._lock:
            self._log(event.name, event.reason, event.utc)
            if event.name == "disconnected":
                self.link, self.streaming, self._meter = "disconnected", False, None
                self._break_trace(None)
            elif event.name == "reconnecting":
                self.link = "reconnecting"
            elif event.name == "connected":
                self.link = "connected"
        self.publish_state()

    def _on_status(self, session: Any, event: Any) -> None:
        from firmware_bridge.events import Gap, Samples

        if isinstance(event, Samples):
            self._samples(session, event)
            self.publish_state(force=False)
        elif isinstance(event, Gap):
            with self._lock:
                self._meter = None
                self.progress = 0.0
                self._break_trace(event.missing_samples)

    def _break_trace(self, missing_samples: int | None) -> None:
        """A discontinuity: browsers leave a break in the line (never join samples across a gap)."""
        if self._pending:
            self._flush(time.monotonic())
        skipped = 1 if not missing_samples else max(1, min(int(missing_samples), 5000) // DISPLAY_DECIMATION)
        self._display_index += skipped

    def _samples(self, session: Any, event: Any) -> None:
        from edge_runtime.runtime.window import twelve_from_independent

        now = time.monotonic()
        stamp = time.time() * 1000.0  # when this block reached the runtime (the latency budget's start)
        with self._lock:
            self.streaming = True
            self.link = "streaming"
            self.last_samples_at = now
            # Read the session defensively: the runtime's window assembly may change under us.
            self.electrodes_off = frozenset(getattr(session, "lead_off", ()) or ())
            self.progress = float(getattr(getattr(session, "assembler", None), "progress", 0.0) or 0.0)
            if self._meter is None or self._meter.fs != float(event.fs):
                self._meter = self._meter_type(float(event.fs), self.analyzer.config.mains_hz)
            self.heart_rate = self._meter.process(event.signals_mv[1])
            off_leads = _leads_of_electrodes(self.electrodes_off)
            full_scale = getattr(session, "full_scale_mv", None)
            signals = np.asarray(event.signals_mv, dtype=np.float32)
            if full_scale:  # a channel railed by its own off electrode is lead-off, not saturation
                railed = np.any(np.abs(signals) >= 0.999 * full_scale, axis=1)
                self.live_saturation = any(flag and lead not in off_leads
                                           for flag, lead in zip(railed, INDEPENDENT_LEADS))
            twelve = twelve_from_independent(signals)
            _blank_off_samples(twelve, event.lead_off)
            if not self._pending:
                self._pending_first, self._pending_t = self._display_index, stamp
            offset = (-self._raw_index) % DISPLAY_DECIMATION  # keep every D-th sample across block boundaries
            decimated = twelve[:, offset::DISPLAY_DECIMATION]
            self._raw_index += twelve.shape[1]
            self._pending.append(decimated)
            self._display_index += decimated.shape[1]
            self._display_fs = float(event.fs) / DISPLAY_DECIMATION
            if now - self._last_flush >= SAMPLES_FLUSH_S:
                self._flush(now)

    def _flush(self, now: float) -> None:
        block = np.concatenate(self._pending, axis=1)
        self._pending = []
        self._last_flush = now
        codes = np.clip(np.rint(np.nan_to_num(block, nan=0.0) / UNIT_MV), -99999, 99999).astype(np.int32).tolist()
        missing = np.isnan(block)
        if missing.any():  # JSON null where an electrode was off
            for row, column in zip(*np.nonzero(missing)):
                codes[row][column] = None
        payload = {"acq": self.acquisition, "i": self._pending_first, "fs": self._display_fs, "unit_mv": UNIT_MV,
                   "t": round(self._pending_t, 1), "leads": list(STANDARD_LEADS), "d": codes}
        message = sse("samples", json.dumps(payload, separators=(",", ":")))
        self._replay.append(message)
        while len(self._replay) > max(1, int(REPLAY_S / SAMPLES_FLUSH_S)):
            self._replay.popleft()
        self.broadcaster.publish(message)

    def _on_result(self, result: Any) -> None:
        report = result.report
        with self._lock:
            self.windows += 1
            self.last_window_flags = {str(flag.get("name")) for flag in report.get("flags") or []}
            if report.get("lvm_g") is not None:
                self.result_id = report.get("result_id")
                self.refusal = None
                self._log("result", f"window {self.windows}: result {self.result_id} stored")
            else:
                texts = operator_texts(report) or ["This recording could not be used. " + spec("analysis_error").operator_text]
                self.refusal = {"texts": texts, "flags": sorted(self.last_window_flags), "window": self.windows,
                                "result_id": report.get("result_id")}
                self._log("refused", f"window {self.windows}: no estimate ({', '.join(sorted(self.last_window_flags))})")
        self.publish_state()


