from __future__ import annotations

import argparse
import platform
from importlib import metadata


def version() -> str:
    try:
        return metadata.version("signage")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _run(args: argparse.Namespace) -> int:
    print(f"signage {version()} (Python {platform.python_version()})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "version", help="print the version", description="Print the version."
    )
    parser.set_defaults(handler=_run)
