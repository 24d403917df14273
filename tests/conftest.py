"""Suite-wide settings: headless SDL, no real configuration or state leaking in from the host."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.media import MediaMaker
from tools.bench import ScratchPostgres, ScratchRedis, scratch_postgres, scratch_redis

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


# The loggers ``core.configure_logging`` reconfigures (the root, and those it re-routes to it).
_CONFIGURED_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx")


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """A command run in-process (``main(["bench", ...])``, ``signage server``) configures
    logging for its process; the next test gets the levels and handlers from before, so
    what ``caplog`` sees never depends on the order tests run in."""
    import logging

    loggers = [logging.getLogger(name) for name in _CONFIGURED_LOGGERS]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


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


# --- the server's storage backends -------------------------------------------------------------
# Tests that take the ``backend`` fixture (the server's ``ctx`` among them) run once per backend:
# "sqlite", the zero-configuration default (SQLite, state in the process), and "postgresql",
# the scaled-out one (PostgreSQL, state shared through Redis). Both start on loopback, from
# temporary directories, once per session. ``--backends sqlite`` runs one (quicker, locally).
BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=",".join(BACKENDS),
        help=f"server backends the database tests run on (default: {','.join(BACKENDS)})",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = [b for b in metafunc.config.getoption("backends").split(",") if b]
        unknown = sorted(set(chosen) - set(BACKENDS))
        if unknown:
            raise pytest.UsageError(f"--backends: unknown {unknown}; known: {BACKENDS}")
        metafunc.parametrize("backend", chosen, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ScratchPostgres]:
    with scratch_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ScratchRedis]:
    with scratch_redis() as server:
        yield server


_databases = itertools.count(1)


@dataclass(frozen=True)
class Backend:
    """Where a test's server keeps its state: ``server`` settings, and the engines behind."""

    name: str
    database_url: str | None  # None: SQLite in the data dir
    redis_url: str | None
    postgres: ScratchPostgres | None = None
    redis: ScratchRedis | None = None

    def settings(self) -> dict[str, Any]:
        return {
            key: value
            for key, value in (("database_url", self.database_url), ("redis_url", self.redis_url))
            if value is not None
        }

    def new_database(self) -> str | None:
        """Another empty database on the same engine (None: SQLite, make a new data dir)."""
        if self.postgres is None:
            return None
        return self.postgres.create_database(f"extra_{next(_databases)}")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield Backend("sqlite", None, None)
        return
    postgres: ScratchPostgres = request.getfixturevalue("postgres_server")
    redis: ScratchRedis = request.getfixturevalue("redis_server")
    name = f"test_{next(_databases)}"
    url = postgres.create_database(name)
    redis.command("FLUSHALL")
    try:
        yield Backend("postgresql", url, redis.url, postgres, redis)
    finally:
        postgres.drop_database(name)
        redis.command("FLUSHALL")
