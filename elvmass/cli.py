"""The single ``elvmass`` command line.

Each subcommand lives in its own small module that exposes ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so ``elvmass --help``
and the device commands never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module implementing it, one-line help). Keep modules light at import time.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("edge_runtime.commands.info", "summarize an ECG record (format, rate, leads, demographics)"),
}


def _print_overview() -> None:
    print("usage: elvmass <command> [options]\n")
    print("Left-ventricular mass from the 12-lead ECG (research software, not clinically validated).\n")
    print("commands:")
    width = max(len(name) for name in COMMANDS)
    for name, (_, help_text) in COMMANDS.items():
        print(f"  {name.ljust(width)}  {help_text}")
    print("\nRun 'elvmass <command> --help' for the options of one command.")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``elvmass <command> ...``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        _print_overview()
        return 0
    if argv[0] in ("-V", "--version"):
        from elvmass import __version__

        print(f"elvmass {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"elvmass: unknown command {name!r}; see 'elvmass --help'", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"elvmass {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130
