"""Benchmarks (``signage bench NAME``), one module per subject.

Every benchmark checks its figures against their targets through ``tools.bench._verdict``:
each target is printed next to its figure, and the exit status is 0 when all are met, 1 when
one is missed, 2 when the benchmark cannot run. Each has ``--quick``, a short smoke run that
the test suite runs.

Each entry of ``BENCHMARKS`` names a module with ``register(subparsers)`` that adds one
sub-benchmark (``signage bench server``...) and sets ``handler=``. Adding a benchmark is a
one-line edit here; the command line calls this package's ``register``, which imports every
module when the parser is built, so keep their top-level imports light and import heavy
things inside the handler.
"""

from __future__ import annotations

import argparse
import importlib

from tools.bench._engines import (
    EngineUnavailable,
    ScratchPostgres,
    ScratchRedis,
    scratch_postgres,
    scratch_redis,
)
from tools.bench._nginx import Proxy, documented_site, nginx

# Modules that add ``signage bench`` sub-benchmarks, in the order --help lists them.
BENCHMARKS: list[str] = [
    "tools.bench._cache",
    "tools.bench._server",
    "tools.bench._update",
    "tools.bench._timing",
    "tools.bench._video",
    "tools.bench._sync",
]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark",
        description=(
            "Measure a component; figures are ratios, rates or frame counts, each printed with "
            "its target. Exit status: 0 every target met, 1 a target missed, 2 could not run. "
            "--quick: a short smoke run."
        ),
    )
    benches = parser.add_subparsers(
        dest="benchmark", metavar="BENCHMARK", parser_class=type(parser)
    )
    benches.required = True
    for name in BENCHMARKS:
        importlib.import_module(name).register(benches)


__all__ = [
    "BENCHMARKS",
    "EngineUnavailable",
    "Proxy",
    "ScratchPostgres",
    "ScratchRedis",
    "documented_site",
    "nginx",
    "register",
    "scratch_postgres",
    "scratch_redis",
]
