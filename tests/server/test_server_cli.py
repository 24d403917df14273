"""``signage server`` as an installer runs it: a real process, a generated admin token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from server import AdminClient
from tests.media import padded_mp4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(data_dir: Path, port: int, **extra_env: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")} | extra_env
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


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_server_memory_stays_flat_during_a_large_upload(tmp_path: Path) -> None:
    """256 MiB through the chunked path: the server's peak RSS barely moves."""
    token = "memory-test-admin-token"
    port = _free_port()
    process = _start(tmp_path / "srv", port, SIGNAGE_ADMIN_TOKEN=token)
    url = f"http://127.0.0.1:{port}"
    chunk = 8 * 1024 * 1024
    # Real clips (the server decodes what it stores), padded with a ``free`` box.
    big = tmp_path / "big.mp4"
    clip = padded_mp4(0)
    with open(big, "wb") as handle:
        handle.write(clip[:-8])
        handle.write((32 * chunk + 8).to_bytes(4, "big") + b"free")
        block = os.urandom(chunk)
        for _ in range(32):
            handle.write(block)
    small = tmp_path / "small.mp4"
    small.write_bytes(padded_mp4(2 * chunk))
    try:
        _wait_healthy(url)
        with AdminClient(url, token, timeout=120) as client:
            client.upload(small, chunk_size=chunk)  # warm every code path up first
            before = _peak_rss_mib(process.pid)
            client.upload(big, chunk_size=chunk)
            after = _peak_rss_mib(process.pid)
    finally:
        process.terminate()
        process.communicate(timeout=30)
    # A body buffered whole would add 256 MiB; a few chunks in flight is all we allow.
    assert after - before < 40, f"peak RSS grew from {before} to {after} MiB"


def test_systemd_is_told_when_the_server_serves(tmp_path: Path) -> None:
    """signage-server.service is Type=notify: READY=1 once uvicorn accepts connections."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(60)
        port = _free_port()
        process = _start(tmp_path / "srv", port, NOTIFY_SOCKET=path)
        try:
            message = systemd.recv(4096).decode()
            assert message == f"READY=1\nSTATUS=serving on 127.0.0.1:{port}"
            # Sent once it listens: the first request is answered at once.
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        finally:
            process.terminate()
            process.communicate(timeout=30)
