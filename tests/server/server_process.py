"""``signage server`` in its own process on 127.0.0.1, as an installer runs it: for tests that
measure the server's memory or need it apart from the test's own process."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (``VmRSS``), or its peak so far (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak(pid: int) -> None:
    """Start ``VmHWM`` again from the current RSS (Linux: clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class ServerProcess:
    url: str
    port: int
    admin_token: str
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def server_process(data_dir: Path, **env: str) -> Iterator[ServerProcess]:
    """A real ``signage server`` (uvicorn, SQLite in ``data_dir``); stopped on exit."""
    with _server_process(data_dir, None, env) as server:
        yield server


@contextlib.contextmanager
def logged_server_process(data_dir: Path, log: Path, **env: str) -> Iterator[ServerProcess]:
    """The same, its standard error written to ``log`` (to read what it logged)."""
    with _server_process(data_dir, log, env) as server:
        yield server


@contextlib.contextmanager
def _server_process(
    data_dir: Path, log: Path | None, env: dict[str, str]
) -> Iterator[ServerProcess]:
    port = free_port()
    token = "process-admin-token-0123456789"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    environment |= {"SIGNAGE_ADMIN_TOKEN": token, **env}
    command = [sys.executable, "-m", "tools", "server", "--port", str(port)]
    sink = log.open("w") if log is not None else None
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=sink if sink is not None else subprocess.PIPE,
        text=True,
        env=environment,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.1)
        yield ServerProcess(url, port, token, process)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        if sink is not None:
            sink.close()
