"""Several ``signage server`` processes on one scratch PostgreSQL and one scratch Redis, for
``signage bench server --replicas N``: each replica is its own process, as deployed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tools.bench._engines import free_port, scratch_postgres, scratch_redis

START_TIMEOUT_S = 60.0


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"a replica exited at start (status {process.returncode})")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica at {url} did not become healthy")
        time.sleep(0.1)


@contextlib.contextmanager
def replicas(
    count: int, data_dir: Path, server: dict[str, object], admin_token: str
) -> Iterator[list[str]]:
    """``count`` server processes sharing ``data_dir``, a database and Redis; their URLs."""
    with scratch_postgres(durable=True) as postgres, scratch_redis() as redis:
        database = postgres.create_database("bench")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
        environment |= {
            f"SIGNAGE_SERVER__{key.upper()}": str(value) for key, value in server.items()
        }
        environment |= {
            "SIGNAGE_ADMIN_TOKEN": admin_token,
            "SIGNAGE_SERVER__DATABASE_URL": database,
            "SIGNAGE_SERVER__REDIS_URL": redis.url,
            "SIGNAGE_LOGGING__LEVEL": "warning",
        }
        processes: list[subprocess.Popen[bytes]] = []
        urls = []
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
                urls.append(f"http://127.0.0.1:{port}")
                _wait_healthy(urls[-1], process)
            yield urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
