"""Benchmarks (``signage bench NAME``), one module per subject.

Each entry of ``BENCHMARKS`` names a module with ``register(subparsers)`` that adds one
sub-benchmark (``signage bench server``...) and sets ``handler=``. Adding a benchmark is a
one-line edit here; the command line calls this package's ``register``, which imports every
module when the parser is built, so keep their top-level imports light and import heavy
things inside the handler.
"""

from __future__ import annotations

import argparse
import importlib

# Modules that add ``signage bench`` sub-benchmarks, in the order --help lists them.
BENCHMARKS: list[str] = [
    "tools.bench._cache",
    "tools.bench._server",
    "tools.bench._update",
    "tools.bench._timing",
    "tools.bench._video",
]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark",
        description="Measure a component; figures are ratios, rates or frame counts.",
    )
    benches = parser.add_subparsers(
        dest="benchmark", metavar="BENCHMARK", parser_class=type(parser)
    )
    benches.required = True
    for name in BENCHMARKS:
        importlib.import_module(name).register(benches)


__all__ = ["BENCHMARKS", "register"]
