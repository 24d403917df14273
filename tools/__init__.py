"""The ``signage`` command line, simulators and benchmarks."""

from tools._cli import build_parser, main

__all__ = ["build_parser", "main"]
