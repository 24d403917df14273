"""The ``signage`` command: a thin argparse front over the packages.

Each subcommand lives in its own module with ``register(subparsers)``; the handlers import
what they need lazily, so ``signage --help`` stays fast on a Pi.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core import SignageError

# Modules that add subcommands, in the order --help lists them.
COMMAND_MODULES = [
    "tools.cli._version",
    "tools.cli._config",
    "tools.bench",
    "tools.cli._fleet",
    "tools.cli._sim",
    "tools.cli._server",
    "tools.cli._admin",
    "tools.cli._doctor",
    "tools.cli._cache",
    "tools.cli._play",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="signage",
        description="Signage player runtime for Raspberry Pi and Linux kiosks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except SignageError as exc:
        print(f"signage: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result
