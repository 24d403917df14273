"""``signage bench NAME``: benchmarks, one module per subject.

Each entry of ``BENCHMARKS`` names a module with ``register(subparsers)`` that adds one
sub-benchmark (``signage bench server``...) and sets ``handler=``. Adding a benchmark is a
one-line edit here; the module is imported when the parser is built, so keep its top-level
imports light and import heavy things inside the handler.
"""

from __future__ import annotations

import argparse
import importlib

# Modules that add ``signage bench`` sub-benchmarks, in the order --help lists them.
BENCHMARKS: list[str] = [
    "tools._bench_cache",
    "tools._bench_server",
    "tools._bench_update",
    "tools._bench_timing",
    "tools._bench_video",
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
