"""Where state lives: systemd's StateDirectory, else the XDG data directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_CONFIG_PATH = Path("/etc/signage/player.toml")


def state_dir(override: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> Path:
    """The state directory, in order: ``override``, ``$STATE_DIRECTORY``, XDG data dir.

    systemd may pass several colon-separated directories; the first is ours.
    """
    if override is not None:
        return Path(override).expanduser()
    env = os.environ if env is None else env
    systemd_dirs = env.get("STATE_DIRECTORY", "")
    if systemd_dirs:
        return Path(systemd_dirs.split(":")[0])
    xdg = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local/share")
    return Path(xdg) / "signage"


def default_config_path() -> Path | None:
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
