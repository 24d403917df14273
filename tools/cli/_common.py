"""Options several subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core import Settings, default_config_path, load_settings, state_dir


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration (default: /etc/signage/player.toml when it exists)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="state directory (default: $STATE_DIRECTORY, else the XDG data dir)",
    )


def load_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from --config (or the default file) with --data-dir applied on top."""
    path = args.config if args.config is not None else default_config_path()
    extra: dict[str, Any] = dict(overrides)
    if getattr(args, "data_dir", None) is not None:
        extra["data_dir"] = str(args.data_dir)
    return load_settings(path, overrides=extra)


def data_dir_of(settings: Settings) -> Path:
    return state_dir(settings.data_dir)
