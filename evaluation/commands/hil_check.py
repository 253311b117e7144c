"""``elvmass hil-check --port PORT``: conformance check of a front-end (pass/fail table, exit 1 on any failure)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", required=True, help="serial port or pyserial URL (/dev/ttyACM0, a pty, socket://...)")
    parser.add_argument("--baud", type=int, default=921600, help="UART bit rate (ignored by USB CDC; default 921600)")
    parser.add_argument("--seconds", type=float, default=10.0, help="host seconds of streaming to measure (default 10)")
    parser.add_argument("--reference", metavar="RECORD",
                        help="the known input the device plays (patient simulator / replayed record): checks channel map and gain")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object (for a firmware CI)")
    parser.add_argument("--no-prompt", action="store_true", help="never prompt (skip the guided electrode removal)")
    parser.add_argument("--remove-electrode", default="LA", help="electrode of the guided removal (default LA)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="device seconds per host second, for emulators replaying faster (default 1: a real board)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-rate-error-ppm", type=float, default=500.0, help="sample clock vs INFO (default 500)")
    limits.add_argument("--max-jitter-ms", type=float, default=20.0, help="p99 frame-arrival lateness, a warning (default 20)")
    limits.add_argument("--max-latency-ms", type=float, default=100.0, help="frame fill + link + decode (default 100)")
    limits.add_argument("--max-gaps-per-min", type=float, default=0.0, help="sample-counter gaps per minute (default 0)")
    limits.add_argument("--max-crc-per-min", type=float, default=0.0, help="CRC failures per minute (default 0)")
    limits.add_argument("--max-resyncs-per-min", type=float, default=0.0, help="resynchronizations per minute (default 0)")
    limits.add_argument("--test-amplitude-mv", type=float, help="test-signal amplitude when the board's differs from 1 mV")
    limits.add_argument("--test-frequency-hz", type=float, help="test-signal frequency when the board's differs from 1.953125 Hz")
    limits.add_argument("--reply-timeout", type=float, default=1.0, help="seconds to wait for a command's reply (default 1)")


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.frames import ELECTRODES
    from evaluation.hil_check import HilOptions, interactive_terminal, run_hil_check

    if not (args.seconds > 0 and args.speed > 0 and args.reply_timeout > 0):
        print("elvmass hil-check: --seconds, --speed and --reply-timeout must be > 0", file=sys.stderr)
        return 2
    if args.remove_electrode not in ELECTRODES:
        print(f"elvmass hil-check: --remove-electrode must be one of {', '.join(ELECTRODES)}", file=sys.stderr)
        return 2
    if args.reference and not Path(args.reference).is_file():
        print(f"elvmass hil-check: --reference {args.reference}: no such file", file=sys.stderr)
        return 2
    overrides = {key: value for key, value in (("test_amplitude_mv", args.test_amplitude_mv),
                                               ("test_frequency_hz", args.test_frequency_hz)) if value is not None}
    options = HilOptions(seconds=args.seconds, speed=args.speed, reference=args.reference,
                         reply_timeout_s=args.reply_timeout, max_rate_error_ppm=args.max_rate_error_ppm,
                         max_jitter_ms=args.max_jitter_ms, max_latency_ms=args.max_latency_ms,
                         max_gaps_per_min=args.max_gaps_per_min, max_crc_errors_per_min=args.max_crc_per_min,
                         max_resyncs_per_min=args.max_resyncs_per_min,
                         guided_lead_off=not args.no_prompt and not args.json and interactive_terminal(),
                         electrode_to_remove=args.remove_electrode, **overrides)

    def say(text: str) -> None:
        if not args.json:
            print(f"hil-check: {text}", file=sys.stderr, flush=True)

    report = run_hil_check(args.port, options, baudrate=args.baud, say=say)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.device:
            device = report.device
            print(f"device {device['device_id']!r} firmware {device['firmware_version']}, {device['sample_rate_hz']} Hz, "
                  f"{device['samples_per_frame']} samples/frame, LSB {device['lsb_nv']:.4g} nV\n")
        print(report.table())
    return 0 if report.passed else 1
