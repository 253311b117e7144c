"""``elvmass outbox send|status``: send stored results to the clinic's FHIR server (off unless configured)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("send", "status"), help="send pending results, or list the outbox")
    parser.add_argument("--config", help="clinic config TOML (fhir_endpoint, fhir_token, storage_path)")
    parser.add_argument("--db", help="SQLite result database (default: config's storage_path)")
    parser.add_argument("--limit", type=int, help="send at most this many results")


def run(args: argparse.Namespace) -> int:
    from edge_runtime.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"elvmass outbox: {error}", file=sys.stderr)
        return 2
    try:
        from edge_runtime.interop.outbox import Outbox, OutboxError
    except ModuleNotFoundError as error:  # fhir.resources / pydantic missing
        print(f"elvmass outbox: needs module {error.name!r}: pip install 'elvmass[fhir]'", file=sys.stderr)
        return 2
    from edge_runtime.interop.fhir_results import FhirUnavailable

    try:
        outbox = Outbox.from_config(config, db_path=args.db)
    except OutboxError as error:
        print(f"elvmass outbox: {error}", file=sys.stderr)
        return 2
    with outbox:
        if args.action == "status":
            pending = outbox.pending_ids()
            print(f"endpoint  {outbox.endpoint}")
            print(f"pending   {len(pending)} result(s)" + (f": {', '.join(map(str, pending[:20]))}" if pending else ""))
            for row in outbox.state():
                state = f"sent {row['sent_utc']}" if row["sent_utc"] else f"not sent: {row['last_error']}"
                print(f"result {row['result_id']:>5}  attempts {row['attempts']}  {state}")
            return 0
        try:
            report = outbox.send(limit=args.limit)
        except FhirUnavailable as error:
            print(f"elvmass outbox: {error}", file=sys.stderr)
            return 2
    print(f"sent {len(report.sent)} result(s) to {outbox.endpoint}; {report.pending} still pending")
    for result_id, reason in report.failed.items():
        print(f"result {result_id}: not sent: {reason}", file=sys.stderr)
    if report.stopped:
        print(f"elvmass outbox: {report.stopped}", file=sys.stderr)
    return 0 if report.pending == 0 else 1
