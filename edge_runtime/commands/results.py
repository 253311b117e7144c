"""``elvmass results``: list or export stored results (CSV or JSON), never the raw windows."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLite result database (default: config's storage_path)")
    parser.add_argument("--config", help="clinic config TOML (for storage_path)")
    parser.add_argument("--format", choices=("table", "csv", "json", "fhir"), default="table",
                        help="output format (fhir: an R4 transaction Bundle; needs the fhir extra)")
    parser.add_argument("--out", help="write to this file (created owner-only) instead of stdout")
    parser.add_argument("--limit", type=int, help="at most this many results")


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV; flags as ``name;name``."""
    from edge_runtime.runtime.store import EXPORT_COLUMNS

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(EXPORT_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "flags": ";".join(flag["name"] for flag in row["flags"] or []),
                         "lvh": "" if row["lvh"] is None else str(row["lvh"]).lower(),
                         "patient_sources": "" if row.get("patient_sources") is None else json.dumps(row["patient_sources"]),
                         "patient_conflicts": "" if not row.get("patient_conflicts") else json.dumps(row["patient_conflicts"])})
    return buffer.getvalue()


def to_table(rows: list[dict]) -> str:
    """A compact human-readable listing."""
    lines = [f"{'id':>4}  {'recorded (UTC)':<23}  {'patient':<10}  {'status':<18}  {'LVM g':>6}  {'interval':>11}  "
             f"{'g/m2':>5}  {'verdict':<10}  flags"]
    for row in rows:
        interval = "" if row["lvm_low_g"] is None else f"{row['lvm_low_g']:.0f}-{row['lvm_high_g']:.0f}"
        lvm = "" if row["lvm_g"] is None else f"{row['lvm_g']:.0f}"
        index = "" if row["lvm_index_g_m2"] is None else f"{row['lvm_index_g_m2']:.0f}"
        # rows stored before schema 2 have no three-state verdict: show the boolean they kept
        verdict = row.get("lvh_verdict") or {True: "LVH", False: "no LVH", None: "-"}[row["lvh"]]
        flags = ",".join(flag["name"] for flag in row["flags"] or [])
        if row.get("patient_conflicts"):
            flags = "PATIENT DATA CONFLICT" + ("," + flags if flags else "")
        lines.append(f"{row['id']:>4}  {row['recorded_utc'][:23]:<23}  {str(row['patient_id'] or '-'):<10}  "
                     f"{row['estimate_status']:<18}  {lvm:>6}  {interval:>11}  {index:>5}  {verdict:<10}  {flags}")
    return "\n".join(lines) + "\n"


def to_fhir(rows: list[dict], store, patient_id_system: str) -> str:
    """Rows as a FHIR R4 transaction Bundle (JSON); raises ``FhirUnavailable`` without the fhir extra."""
    from edge_runtime.interop.fhir_results import build_transaction_bundle

    reports = {row["id"]: store.report(row["id"]) for row in rows}
    return build_transaction_bundle(rows, reports, patient_id_system=patient_id_system).model_dump_json(indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    from edge_runtime.config import ConfigError, load_config
    from edge_runtime.runtime.store import ResultStore, StoreError

    try:
        config = load_config(args.config)
        path = Path(args.db) if args.db else config.storage_file
    except ConfigError as error:
        print(f"elvmass results: {error}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"elvmass results: no result database at {path}", file=sys.stderr)
        return 1
    try:
        with ResultStore(path) as store:
            rows = store.results(limit=args.limit)
            if args.format == "fhir":
                from edge_runtime.interop.fhir_results import FhirUnavailable

                try:
                    text = to_fhir(rows, store, config.fhir_patient_id_system)
                except FhirUnavailable as error:
                    print(f"elvmass results: {error}", file=sys.stderr)
                    return 2
    except StoreError as error:
        print(f"elvmass results: {error}", file=sys.stderr)
        return 1
    if args.format != "fhir":
        text = {"csv": to_csv, "json": lambda r: json.dumps(r, indent=2) + "\n", "table": to_table}[args.format](rows)
    if args.out:
        # Exports hold health data too: owner-only, like the database.
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"wrote {len(rows)} result(s) to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
