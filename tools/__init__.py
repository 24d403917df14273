"""The ``signage`` command line (``cli``), the simulators (``sim``), the benchmarks (``bench``)."""

from tools.cli import build_parser, main

__all__ = ["build_parser", "main"]
