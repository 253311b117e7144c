"""``elvmass fuzz-decoder``: corrupted-frame counts and decode throughput of the stream decoder."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=100_000, help="corrupted frames to feed (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--samples-per-frame", type=int, default=5, help="samples per DATA frame (default 5)")
    parser.add_argument("--throughput-seconds", type=float, default=60.0,
                        help="seconds of clean 500 Hz stream to time (default 60)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from evaluation.fuzz_decoder import measure_throughput, run_fuzz

    if args.frames < 1 or not 1 <= args.samples_per_frame <= 20:
        print("elvmass fuzz-decoder: --frames must be >= 1 and --samples-per-frame 1..20")
        return 2
    report = run_fuzz(args.frames, seed=args.seed, samples_per_frame=args.samples_per_frame)
    throughput = measure_throughput(args.throughput_seconds, samples_per_frame=args.samples_per_frame)
    if args.json:
        print(json.dumps({"fuzz": report.as_dict(), "throughput": throughput}, indent=2))
    else:
        kinds = ", ".join(f"{kind} {count}" for kind, count in report.by_corruption.items())
        print(f"corrupted frames fed      {report.corrupted_frames} ({kinds})")
        print(f"intact frames between     {report.intact_frames}")
        print(f"exceptions escaped        {report.exceptions}")
        print(f"corrupted frames accepted {report.corrupted_accepted}  (decoded to values other than those sent)")
        print(f"corrupted but recovered   {report.corrupted_recovered}  (every checked byte survived; decoded exactly as sent)")
        print(f"intact frames lost        {report.intact_lost}  (0 = resynchronized within one frame every time)")
        print(f"intact frames altered     {report.intact_altered}")
        print(f"gaps reported / expected  {report.gaps_reported} / {report.gaps_expected}")
        print(f"CRC failures              {report.crc_errors}  (header rejects {report.header_rejects}, "
              f"malformed payloads {report.malformed_payloads})")
        print(f"fuzz stream               {report.stream_bytes} bytes decoded in {report.decode_cpu_s:.2f} CPU s")
        print(f"throughput                {throughput['cpu_s_per_stream_s'] * 1000:.2f} ms CPU per second of "
              f"500 Hz stream ({throughput['samples_per_frame']} samples/frame, "
              f"{throughput['stream_seconds']:g} s timed, one core)")
    failed = report.exceptions or report.corrupted_accepted or report.intact_lost or report.intact_altered
    return 1 if failed else 0
