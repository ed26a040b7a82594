"""The `tableau-steward` command: each subsystem registers its own subcommands here."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules exposing `register(subparsers)`; each subcommand sets `handler=fn(args) -> int`.
SUBCOMMAND_MODULES = (
    "server.serve_cli",
    "emulator.cli",
    "server.governance.cli",
    "server.sync_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tableau-steward",
        description="A governed MCP server for Tableau, and the Tableau REST API emulator it is tested on.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
