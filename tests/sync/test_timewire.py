"""The clock exchange at the socket: a plain HTTP/1.1 GET, read to the end whatever its
framing, a kept connection reused (and replaced when the server dropped it), failures named."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sync._timewire import ExchangeFailed, TimeWire

Handler = Callable[[socket.socket, bytes], bool]  # answers one request; False: close after


class TinyServer:
    """A loopback server answering each request with ``handler``, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if b"\r\n\r\n" not in data:
                        break
                    request, _, data = data.partition(b"\r\n\r\n")
                    self.requests.append(request)
                    if not self.handler(conn, request):
                        break

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def wires() -> Iterator[Callable[..., TimeWire]]:
    made: list[TimeWire] = []

    def make(url: str, **options: float) -> TimeWire:
        made.append(TimeWire(url, **options))
        return made[-1]

    yield make
    for wire in made:
        wire.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], TinyServer]]:
    made: list[TinyServer] = []

    def start(handler: Handler) -> TinyServer:
        made.append(TinyServer(handler))
        return made[-1]

    yield start
    for server in made:
        server.close()


BODY = b'{"received_at":"2026-11-21T10:00:00Z","sent_at":"2026-11-21T10:00:00Z"}'


def _plain(conn: socket.socket, _request: bytes) -> bool:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )
    return True


def test_an_exchange_is_stamped_round_the_answer_and_the_connection_kept(
    serve: Callable[[Handler], TinyServer], wires: Callable[..., TimeWire]
) -> None:
    server = serve(_plain)
    wire = wires(f"http://127.0.0.1:{server.port}/base/")
    for _ in range(3):
        t1, response, t4 = wire.exchange("/api/v1/device/time", "tok", time.monotonic_ns)
        assert response.status_code == 200 and response.content == BODY
        assert t1 <= t4
    assert server.connections == 1
    first = server.requests[0].decode()
    assert first.startswith("GET /base/api/v1/device/time HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in first and "Authorization: Bearer tok" in first


def test_a_dropped_kept_connection_is_replaced_once(
    serve: Callable[[Handler], TinyServer], wires: Callable[..., TimeWire]
) -> None:
    answered = 0

    def once_then_close(conn: socket.socket, request: bytes) -> bool:
        nonlocal answered
        answered += 1
        _plain(conn, request)
        return False  # the server closes a kept connection after each answer

    server = serve(once_then_close)
    wire = wires(f"http://127.0.0.1:{server.port}")
    for _ in range(3):
        assert wire.exchange("/t", "tok", time.monotonic_ns)[1].status_code == 200
    assert answered == 3 and server.connections == 3


def test_a_chunked_or_closing_answer_is_read_whole(
    serve: Callable[[Handler], TinyServer], wires: Callable[..., TimeWire]
) -> None:
    def chunked(conn: socket.socket, _request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n")
        conn.sendall(b"Transfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n")
        return True

    server = serve(chunked)
    response = wires(f"http://127.0.0.1:{server.port}").exchange("/t", "k", time.monotonic_ns)[1]
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    assert response.content == b"hello world"

    def until_close(conn: socket.socket, _request: bytes) -> bool:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        return False

    server = serve(until_close)
    response = wires(f"http://127.0.0.1:{server.port}").exchange("/t", "k", time.monotonic_ns)[1]
    assert response.content == b"all of it"


def test_failures_are_named(
    serve: Callable[[Handler], TinyServer], wires: Callable[..., TimeWire]
) -> None:
    def garbage(conn: socket.socket, _request: bytes) -> bool:
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        return True

    server = serve(garbage)
    with pytest.raises(ExchangeFailed, match="not an HTTP answer"):
        wires(f"http://127.0.0.1:{server.port}").exchange("/t", "k", time.monotonic_ns)

    def silent(conn: socket.socket, _request: bytes) -> bool:
        return False  # closes without a word

    server = serve(silent)
    with pytest.raises(ExchangeFailed, match="closed the connection without answering"):
        wires(f"http://127.0.0.1:{server.port}").exchange("/t", "k", time.monotonic_ns)

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(ExchangeFailed, match="ConnectionRefusedError"):
        wires(f"http://127.0.0.1:{port}", timeout_s=2).exchange("/t", "k", time.monotonic_ns)
    with pytest.raises(ValueError, match="not an http"):
        TimeWire("ftp://example.org")
