"""The ``signage`` command line: one module per subcommand, each with ``register(subparsers)``."""

from tools.cli._main import COMMAND_MODULES, build_parser, main

__all__ = ["COMMAND_MODULES", "build_parser", "main"]
