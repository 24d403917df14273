"""One clock exchange on the wire, stamped where the bytes leave and arrive.

An exchange's offset is off by half the difference between the time its request took to
reach the server and the time the answer took to come back, and that includes the device's own
time in between: an answer that waits for the event loop (busy composing a frame) is stamped
late, and a request built through an HTTP client's layers of Python on a thread that loses the
interpreter to the frame loop leaves late. Both were measured: four loaded screens disagreed by
about 9 ms through the event loop, and a screen starting up was 5 to 10 ms off through a
thread with httpx. So the exchange is made here with almost no Python between the stamps and
the sockets: a plain HTTP/1.1 request, written in one ``sendall`` just after t1; t4 taken as
soon as the first bytes of the answer arrive; everything else (reading the rest, parsing)
after. The connection (TLS for https) is kept for the next exchange. It goes straight to the
server: an HTTP proxy is not used for it.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from collections.abc import Callable

import httpx

NS_PER_S = 1_000_000_000
_MAX_ANSWER = 64 * 1024  # a time answer is under 200 bytes; anything this large is not one


class ExchangeFailed(Exception):
    """The connection failed or answered something that is not HTTP."""


class TimeWire:
    """A kept connection to the server for clock exchanges. Blocking: use it on a thread."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            context = ssl.create_default_context()
            return context.wrap_socket(sock, server_hostname=self.host)
        return sock

    def exchange(
        self, path: str, token: str, now_ns: Callable[[], int]
    ) -> tuple[int, httpx.Response, int]:
        """(t1, the answer, t4) of a GET of ``path``; t1 and t4 on ``now_ns``'s clock."""
        request = (
            f"GET {self.prefix}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
            "User-Agent: signage-timesync\r\n\r\n"
        ).encode("latin-1")
        for attempt in (1, 2):
            fresh = self._sock is None
            try:
                sock = self._sock or self._connect()
                self._sock = sock
                t1 = now_ns()
                sock.sendall(request)
                first = sock.recv(_MAX_ANSWER)
                t4 = now_ns()
            except OSError as exc:
                self.close()
                if attempt == 1 and not fresh:
                    continue  # the kept connection went stale: once more on a new one
                raise ExchangeFailed(f"{type(exc).__name__}: {exc}") from exc
            if not first:  # the server closed the kept connection meanwhile
                self.close()
                if attempt == 1 and not fresh:
                    continue
                raise ExchangeFailed("the server closed the connection without answering")
            return t1, self._answer(first), t4
        raise AssertionError("unreachable")

    def _answer(self, received: bytes) -> httpx.Response:
        """The whole answer, read on from its first bytes (status line, headers, body)."""
        sock = self._sock
        assert sock is not None
        data = received
        while b"\r\n\r\n" not in data:
            data += self._more(sock, data)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            _version, status_text, *_ = lines[0].split(" ", 2)
            status = int(status_text)
        except ValueError as exc:
            self.close()
            raise ExchangeFailed(f"not an HTTP answer: {lines[0][:80]!r}") from exc
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        fields = {name.strip().lower(): value.strip() for name, value in headers}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            body = self._chunked(sock, body)
        elif "content-length" in fields:
            length = int(fields["content-length"])
            while len(body) < length:
                body += self._more(sock, body)
            body = body[:length]
        else:  # read to the end: the server closes
            while chunk := sock.recv(_MAX_ANSWER):
                body += chunk
                if len(body) > _MAX_ANSWER:
                    break
            self.close()
        if fields.get("connection", "").lower() == "close":
            self.close()
        return httpx.Response(
            status, headers=[(n.strip(), v.strip()) for n, v in headers], content=body
        )

    def _more(self, sock: socket.socket, so_far: bytes) -> bytes:
        chunk = sock.recv(_MAX_ANSWER)
        if not chunk or len(so_far) + len(chunk) > _MAX_ANSWER:
            self.close()
            raise ExchangeFailed("the answer was cut short, or far too long")
        return chunk

    def _chunked(self, sock: socket.socket, data: bytes) -> bytes:
        body = b""
        while True:
            while b"\r\n" not in data:
                data += self._more(sock, data)
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                data += self._more(sock, data)
            if size == 0:
                return body
            body, data = body + data[:size], data[size + 2 :]

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
