"""``signage server`` processes for ``signage bench server``: one on SQLite (the zero-configuration
default), or N replicas on one scratch PostgreSQL and one scratch Redis. Each server is its own
process, as deployed, so its CPU time and memory can be read by pid."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tools.bench._engines import free_port, scratch_postgres, scratch_redis
from tools.bench._processes import stop

START_TIMEOUT_S = 60.0


@dataclass
class Servers:
    """The server processes of one run, and those of the engines behind them."""

    urls: list[str]
    pids: list[int]
    ports: list[int]
    engine_pids: dict[str, int] = field(default_factory=dict)  # "postgresql", "redis"


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"a server exited at start (status {process.returncode})")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server at {url} did not become healthy")
        time.sleep(0.1)


@contextlib.contextmanager
def _processes(
    count: int, data_dir: Path, environment: dict[str, str], engine_pids: dict[str, int]
) -> Iterator[Servers]:
    processes: list[subprocess.Popen[bytes]] = []
    servers = Servers([], [], [], engine_pids)
    try:
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "tools", "server", "--port", str(port)]
            process = subprocess.Popen(
                [*command, "--data-dir", str(data_dir)],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            servers.urls.append(f"http://127.0.0.1:{port}")
            servers.pids.append(process.pid)
            servers.ports.append(port)
            _wait_healthy(servers.urls[-1], process)
        yield servers
    finally:
        stop(*processes, timeout_s=30)


def _environment(server: dict[str, object], admin_token: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    environment |= {f"SIGNAGE_SERVER__{key.upper()}": str(value) for key, value in server.items()}
    return environment | {"SIGNAGE_ADMIN_TOKEN": admin_token, "SIGNAGE_LOGGING__LEVEL": "warning"}


@contextlib.contextmanager
def single(data_dir: Path, server: dict[str, object], admin_token: str) -> Iterator[Servers]:
    """One server process on SQLite in ``data_dir`` (no Redis): the default deployment."""
    with _processes(1, data_dir, _environment(server, admin_token), {}) as servers:
        yield servers


@contextlib.contextmanager
def replicas(
    count: int, data_dir: Path, server: dict[str, object], admin_token: str
) -> Iterator[Servers]:
    """``count`` server processes sharing ``data_dir``, a database and Redis."""
    with scratch_postgres(durable=True) as postgres, scratch_redis() as redis:
        environment = _environment(server, admin_token) | {
            "SIGNAGE_SERVER__DATABASE_URL": postgres.create_database("bench"),
            "SIGNAGE_SERVER__REDIS_URL": redis.url,
        }
        engines = {"postgresql": postgres.pid, "redis": redis.process.pid}
        with _processes(count, data_dir, environment, engines) as servers:
            yield servers
