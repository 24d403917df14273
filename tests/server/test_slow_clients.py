"""Slow clients against a real uvicorn on 127.0.0.1: slowloris headers, silent connections
and stalled bodies are closed on time; event streams and slow-but-moving uploads are not."""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import RunningServer, run_in_thread
from tests.server.conftest import make_settings

SOCKETS = 200
TIMEOUT_S = 1.0


@pytest.fixture(params=["httptools", "h11"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(header_timeout_s=TIMEOUT_S, body_timeout_s=TIMEOUT_S, sse_ping_s=0.5)
    with run_in_thread(settings, tmp_path / "srv", http=request.param) as running:
        yield running


def _connect(live: RunningServer) -> socket.socket:
    port = int(live.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def _wait_closed(socks: list[socket.socket], within_s: float, trickle: bool) -> float:
    """Seconds until the server closed every socket; trickling a header line to each open
    one every 0.25 s, as a slowloris does. Fails past ``within_s``."""
    started = time.monotonic()
    open_socks = set(socks)
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        next_trickle = started
        while open_socks:
            now = time.monotonic()
            assert now - started < within_s, f"{len(open_socks)} sockets still open"
            if trickle and now >= next_trickle:
                next_trickle = now + 0.25
                for sock in list(open_socks):
                    with contextlib.suppress(OSError):
                        sock.send(b"X-Slow: 1\r\n")
            for key, _ in selector.select(timeout=0.05):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                if _closed_by_peer(ready):
                    selector.unregister(ready)
                    open_socks.discard(ready)
    return time.monotonic() - started


def test_slowloris_sockets_are_closed_and_others_still_served(live: RunningServer) -> None:
    last_connected = time.monotonic()
    socks = []
    for _ in range(SOCKETS):
        socks.append(_connect(live))
        last_connected = time.monotonic()
    try:
        for sock in socks:
            sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        # While they trickle, a normal client is served at once.
        assert httpx.get(f"{live.url}/healthz", timeout=5).status_code == 200
        _wait_closed(socks, within_s=TIMEOUT_S + 5, trickle=True)
        # Closed by the header timeout (the last socket's deadline), not at once.
        assert time.monotonic() - last_connected >= TIMEOUT_S * 0.9
    finally:
        for sock in socks:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed(live: RunningServer) -> None:
    sock = _connect(live)
    try:
        _wait_closed([sock], within_s=TIMEOUT_S + 5, trickle=False)
    finally:
        sock.close()


def test_a_stalled_body_is_closed_but_a_slow_one_is_not(live: RunningServer) -> None:
    head = (
        b"POST /api/v1/pairings HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 64\r\n\r\n"
    )
    stalled = _connect(live)
    try:
        stalled.send(head + b'{"hardware_id": ')
        _wait_closed([stalled], within_s=TIMEOUT_S + 5, trickle=False)
    finally:
        stalled.close()
    body = b'{"hardware_id": "slow-but-steady"}'.ljust(64)
    moving = _connect(live)
    try:
        moving.send(head)
        for i in range(0, len(body), 8):  # 2 s in all, never silent for a whole timeout
            time.sleep(0.25)
            moving.send(body[i : i + 8])
        moving.setblocking(True)
        moving.settimeout(5)
        assert moving.recv(65536).startswith(b"HTTP/1.1 201")
    finally:
        moving.close()


def test_event_streams_outlive_the_timeouts(live: RunningServer) -> None:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    with httpx.Client(base_url=live.url, timeout=5) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": "hw-sse"}).json()
        client.post("/api/v1/admin/pairings/claim", json={"code": created["code"]}, headers=admin)
        token = client.get(
            f"/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        ).json()["device_token"]
        pings = 0
        started = time.monotonic()
        with client.stream(
            "GET", "/api/v1/device/events", headers={"Authorization": f"Bearer {token}"}
        ) as stream:
            for line in stream.iter_lines():
                pings += line.startswith(":")
                if time.monotonic() - started > 3 * TIMEOUT_S:
                    break
        assert pings >= 3
