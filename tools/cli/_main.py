"""The ``signage`` command: a thin argparse front over the packages.

Each subcommand lives in its own module with ``register(subparsers)``; the handlers import
what they need lazily, so ``signage --help`` stays fast on a Pi.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from tools.cli._errors import EXIT_CODES, ExitCodesFormatter, report

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
        epilog=EXIT_CODES,
        formatter_class=ExitCodesFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. Whatever goes wrong is reported by
    ``tools.cli._errors.report`` as a readable line, never as a traceback."""
    try:
        args = build_parser().parse_args(argv)
        result: int = args.handler(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at interpreter exit
    except SystemExit:
        raise  # argparse's usage errors (2) and --help (0)
    except BrokenPipeError:
        # The reader went away (`signage admin devices | head -1`): nothing left to say.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except BaseException as exc:  # the one place where errors become lines
        return report(exc)
    return result
