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


@pytest.fixture
def gl() -> Iterator[None]:
    """For tests that open GL displays (SDL offscreen + EGL headless; Mesa llvmpipe here):
    a clean pygame display before, and whatever the test leaves open closed after, so later
    tests get the dummy driver again."""
    import pygame

    from zones import GLContext

    if pygame.display.get_init():
        pygame.display.quit()
    driver = os.environ.get("SDL_VIDEODRIVER")
    yield
    context = GLContext.current
    if context is not None:
        context.close()
    pygame.display.quit()
    if driver is None:
        os.environ.pop("SDL_VIDEODRIVER", None)
    else:
        os.environ["SDL_VIDEODRIVER"] = driver


# Switch lateness measured by tests (headless and in a real X11 window), printed at the end of
# the run: figures to read, not assertions (timing targets are the benchmarks' to check).
LATENESS_REPORT: list[str] = []


@pytest.fixture
def lateness_report() -> list[str]:
    return LATENESS_REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if LATENESS_REPORT:
        terminalreporter.section("switch lateness measured by the suite (machine load applies)")
        for line in LATENESS_REPORT:
            terminalreporter.write_line(line)
