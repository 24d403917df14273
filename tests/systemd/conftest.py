"""Running systemd/install.sh against a staging root, with every system command booby-trapped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
INSTALL_SH = SYSTEMD_DIR / "install.sh"
# Commands a staged run must only print: each one here records its call if it ever runs.
TRAPPED = [
    "apt",
    "apt-get",
    "chown",
    "groupadd",
    "pip",
    "python3",
    "setterm",
    "systemctl",
    "systemd-sysusers",
    "useradd",
    "userdel",
    "usermod",
]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def commands(self) -> list[str]:
        prefix = "would run: "
        return [line[len(prefix) :] for line in self.stdout.splitlines() if line.startswith(prefix)]

    @property
    def written(self) -> list[str]:
        return [
            line[len("wrote: ") :]
            for line in self.stdout.splitlines()
            if line.startswith("wrote: ")
        ]


Installer = Callable[..., Run]


@pytest.fixture
def trap_log(tmp_path: Path) -> Path:
    return tmp_path / "trapped-calls.log"


@pytest.fixture
def trap_bin(tmp_path: Path, trap_log: Path) -> Path:
    directory = tmp_path / "trap-bin"
    directory.mkdir()
    for name in TRAPPED:
        script = directory / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{trap_log}"\nexit 0\n')
        script.chmod(0o755)
    return directory


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def install(stage: Path, trap_bin: Path, trap_log: Path) -> Installer:
    """Run install.sh with ``--root stage``; asserts that no trapped command really ran."""

    def run(
        *args: str, root: Path | None = stage, stdin: str = "", extra_path: Path | None = None
    ) -> Run:
        argv = [str(INSTALL_SH), *(["--root", str(root)] if root is not None else []), *args]
        path = f"{trap_bin}:{os.environ['PATH']}"
        if extra_path is not None:
            path = f"{extra_path}:{path}"
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": path},
            timeout=120,
            check=False,
        )
        assert not trap_log.exists(), f"a staged run executed: {trap_log.read_text()}"
        return Run(done.returncode, done.stdout, done.stderr)

    return run
