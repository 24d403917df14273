"""Suite-wide settings: headless SDL, no real configuration or state leaking in from the host."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.media import MediaMaker

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SIGNAGE_* variable or state directory from the developer's machine reaches a test."""
    for name in list(os.environ):
        if name.startswith("SIGNAGE_") or name == "STATE_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    yield


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaMaker:
    """Hostile and odd media files (``tests.media``), made on first use, once per session."""
    return MediaMaker(tmp_path_factory.mktemp("media"))
