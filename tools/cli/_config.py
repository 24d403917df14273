from __future__ import annotations

import argparse
import sys

from core import ConfigError, load_settings, settings_to_toml, state_dir
from tools.cli._common import add_config_options, load_from_args


def _show(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    print(f"# state directory: {state_dir(settings.data_dir)}")
    sys.stdout.write(settings_to_toml(settings))
    return 0


def _check(args: argparse.Namespace) -> int:
    try:
        load_settings(args.file)
    except ConfigError as exc:
        print(f"{args.file}: invalid", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{args.file}: ok")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="show or check configuration",
        description="Show the effective configuration or check a configuration file.",
    )
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub.add_parser(
        "show",
        help="print the effective configuration, secrets masked",
        description="Print the effective configuration (file, then SIGNAGE_SECTION__KEY "
        "environment overrides) as TOML, with secrets masked.",
    )
    add_config_options(show)
    show.set_defaults(handler=_show)
    check = sub.add_parser(
        "check",
        help="validate a configuration file",
        description="Validate FILE with the environment overrides applied; exit 0 when valid, "
        "1 listing every problem when not.",
    )
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_check)
