"""``signage server`` as an installer runs it: a real process, a generated admin token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "tools", "server", "--port", str(port), "--data-dir", str(data_dir)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def _run_once(data_dir: Path) -> tuple[str, int]:
    port = _free_port()
    process = _start(data_dir, port)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    return stderr, process.returncode


def test_first_start_generates_the_admin_token_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "srv"
    first, code = _run_once(data_dir)
    # uvicorn shuts down cleanly, then re-raises SIGTERM (which systemd counts as a clean stop).
    assert code in (0, -15)
    assert "Traceback" not in first
    token_file = data_dir / "admin_token"
    token = token_file.read_text().strip()
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert token in first
    second, _ = _run_once(data_dir)
    assert token not in second and "admin token" not in second
    assert token_file.read_text().strip() == token
