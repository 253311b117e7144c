"""``elvmass emulate RECORD``: an acquisition front-end on a pseudo-terminal or a TCP socket.

Reads any record the readers load, resamples it to 500 Hz, takes the 8 independent leads
(I, II, V1..V6) and hands them to :mod:`firmware_bridge.emulator`. The first stdout line is the
address a host opens (the pty's stable symlink path, or ``socket://HOST:PORT``); it is flushed
at once so another process can connect. This module lives on the edge side because reading
records is the edge runtime's job and firmware_bridge imports nothing of ours.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

FS_HZ = 500.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("record", help="ECG file (WFDB .hea, MUSE/HL7 .xml, .csv, .npy) with leads I, II, V1-V6")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (default)")
    where.add_argument("--socket", metavar="HOST:PORT", help="serve on TCP (hosts open socket://HOST:PORT); port 0 = any")
    parser.add_argument("--link", metavar="PATH", help="stable symlink path for the pty (default: a new temp dir)")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed, 1 = real time (default 1)")
    parser.add_argument("--loop", action="store_true", help="restart the record at its end")
    parser.add_argument("--text", action="store_true", help="text line mode (microvolt CSV lines) instead of frames")
    parser.add_argument("--fs", type=float, help="sampling rate of a CSV/NumPy record that does not state it")
    parser.add_argument("--samples-per-frame", type=int, default=5, help="samples per DATA frame, 1..20 (default 5)")
    parser.add_argument("--device-id", default="elvmass-emu", help="device id announced in INFO")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault injector")
    parser.add_argument("--write-device-record", metavar="PATH",
                        help="write the ADC codes as the C reference device's sample file (ELVMREC1) and exit")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--bit-errors", type=float, default=0.0, metavar="P", help="probability each sent bit flips")
    faults.add_argument("--drop-frames", type=float, default=0.0, metavar="P", help="probability a DATA frame is lost")
    faults.add_argument("--garbage-bursts", default=None, metavar="RATE[:MAXLEN]",
                        help="random-byte bursts per second of stream, each 1..MAXLEN bytes (default 64)")
    faults.add_argument("--lead-off", action="append", default=[], metavar="ELECTRODE",
                        help="electrode reported off (RA, LA, LL, V1..V6); repeat or comma-separate")
    faults.add_argument("--saturate", action="append", default=[], metavar="LEAD",
                        help="lead pinned at positive full scale (I, II, V1..V6); repeat or comma-separate")
    faults.add_argument("--noise-uv", type=float, default=0.0, help="white noise SD added to every lead, microvolts")
    faults.add_argument("--unplug-at", type=float, default=None, metavar="S", help="unplug after S seconds of stream")
    faults.add_argument("--unplug-for", type=float, default=1.0, metavar="S", help="stay unplugged S wall-clock seconds")
    faults.add_argument("--slip-bytes", type=float, default=0.0, metavar="P",
                        help="probability a DATA frame loses or gains one byte (UART overrun)")
    faults.add_argument("--clock-hz", type=float, default=None, metavar="F",
                        help="real sample clock while INFO announces 500 Hz (e.g. 498)")
    faults.add_argument("--stuck-lead-off", action="append", default=[], metavar="ELECTRODE",
                        help="electrode whose lead-off bit is stuck on while its signal stays live")
    faults.add_argument("--announce-map", default=None, metavar="L,L,...",
                        help="channel map INFO announces while the data keep I,II,V1..V6")
    faults.add_argument("--silent-after", type=float, default=None, metavar="S",
                        help="stop sending and answering after S seconds of stream (port stays open)")


def _names(values: list[str]) -> tuple[str, ...]:
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def fault_config(args: argparse.Namespace):
    """The :class:`firmware_bridge.faults.FaultConfig` the flags ask for."""
    from firmware_bridge.faults import FaultConfig

    rate, max_bytes = 0.0, 64
    if args.garbage_bursts:
        rate_text, _, max_text = args.garbage_bursts.partition(":")
        rate, max_bytes = float(rate_text), int(max_text) if max_text else 64
    return FaultConfig(bit_error_rate=args.bit_errors, drop_frame_prob=args.drop_frames, garbage_bursts_per_s=rate,
                       garbage_max_bytes=max_bytes, lead_off=tuple(n.upper() for n in _names(args.lead_off)),
                       saturate=_names(args.saturate), noise_uv=args.noise_uv, unplug_at_s=args.unplug_at,
                       unplug_for_s=args.unplug_for, slip_prob=args.slip_bytes, clock_hz=args.clock_hz,
                       stuck_lead_off=tuple(n.upper() for n in _names(args.stuck_lead_off)),
                       announced_map=_names([args.announce_map]) if args.announce_map else None,
                       silent_after_s=args.silent_after)


def independent_leads_mv(record) -> "np.ndarray":  # noqa: F821 - numpy imported lazily
    """``(8, n)`` millivolts at 500 Hz in I, II, V1..V6 order (the leads a front-end measures)."""
    import numpy as np

    from edge_runtime.record import INDEPENDENT_LEADS

    if record.fs != FS_HZ:  # scipy is slow to import; records already at 500 Hz skip it
        from edge_runtime.resample import resample_record

        record = resample_record(record, FS_HZ)
    standard = record.to_standard_12()
    return np.stack([standard.lead(name) for name in INDEPENDENT_LEADS])


def run(args: argparse.Namespace) -> int:
    from edge_runtime.formats import RecordError, read_record
    from firmware_bridge.emulator import DeviceEmulator, PtyLink, SocketLink, counters_dict, serve
    from firmware_bridge.frames import DeviceInfo

    try:
        signals = independent_leads_mv(read_record(args.record, fs=args.fs))
        faults = fault_config(args)
        info = DeviceInfo(device_id=args.device_id, sample_rate_hz=int(FS_HZ), samples_per_frame=args.samples_per_frame)
        emulator = DeviceEmulator(signals, info=info, loop=args.loop, faults=faults, seed=args.seed, text_mode=args.text)
    except (RecordError, ValueError) as error:
        print(f"elvmass emulate: {error}", file=sys.stderr)
        return 1
    if args.write_device_record:
        from firmware_bridge.device_record import write_device_record

        path = write_device_record(args.write_device_record, emulator.codes, emulator.info, emulator.injector.status)
        print(f"elvmass emulate: {emulator.n_samples} samples at {FS_HZ:g} Hz written to {path} "
              "(replay: firmware_bridge/firmware/elvmass_device --record PATH)", file=sys.stderr)
        return 0
    if not args.speed > 0:
        print("elvmass emulate: --speed must be > 0", file=sys.stderr)
        return 1
    if args.socket:
        host, _, port = args.socket.rpartition(":")
        try:
            link = SocketLink(host or "127.0.0.1", int(port))
        except ValueError:
            print(f"elvmass emulate: --socket needs HOST:PORT, got {args.socket!r}", file=sys.stderr)
            return 1
    else:
        link = PtyLink(args.link)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def ready(address: str) -> None:
        print(address, flush=True)
        print(f"elvmass emulate: {args.record} ({signals.shape[1] / FS_HZ:g} s, 8 leads) at {address}, "
              f"speed {args.speed:g}x{', looping' if args.loop else ''}", file=sys.stderr, flush=True)

    def event(text: str) -> None:
        print(f"elvmass emulate: {text}", file=sys.stderr, flush=True)

    try:
        serve(emulator, link, speed=args.speed, stop=stop, on_ready=ready, on_event=event)
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(f"elvmass emulate: {error}", file=sys.stderr)
        return 1
    print("elvmass emulate: " + json.dumps(counters_dict(emulator)), file=sys.stderr, flush=True)
    return 0
