"""A minimal HTTP/1.1 keep-alive client for load generation.

httpx spends more CPU per request than the server under test; a load process that saturates
first measures itself. This one writes a prepared request and parses only the status line,
``Content-Length`` and the few headers asked for. Benchmarks only: no chunked request bodies;
TLS when the URL is ``https`` (a proxy in front of the servers), trusting ``ssl``'s context.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

FAILED = (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    return int(status_line.split()[1]), headers


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> Response:
        self.writer.write(request)
        status, headers = await _read_head(self.reader)
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        return Response(status, body, headers)

    def close(self) -> None:
        self.writer.close()


class RawPool:
    """Up to ``size`` persistent connections to ``url``'s host; requests wait for a free one."""

    def __init__(self, url: str, size: int, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = tls if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.tls else 80)
        # At most ``size`` requests at once, each on an idle connection or a new one.
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []

    def prepare(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        """A request to send (``send``/``request``) as many times as wanted."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token is not None:
            lines.append(f"Authorization: Bearer {token}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")

    def post_json(self, path: str, body: bytes, token: str) -> bytes:
        return self.prepare("POST", path, body, token)

    async def request(self, request: bytes) -> Response:
        """The response; status 0 when the connection failed (it is then dropped). A kept-alive
        connection the server closed while idle is retried once on a new one, as HTTP clients
        do."""
        async with self._slots:
            while True:
                reused = bool(self._idle)
                try:
                    if reused:
                        connection = self._idle.pop()
                    else:
                        reader, writer = await asyncio.open_connection(
                            self.host, self.port, ssl=self.tls
                        )
                        connection = _Connection(reader, writer)
                    response = await connection.exchange(request)
                except FAILED:
                    if reused:
                        connection.close()
                        self._drop_idle()
                        continue
                    return Response(0)
                if response.headers.get("connection", "").lower() == "close":
                    connection.close()
                else:
                    self._idle.append(connection)
                return response

    def _drop_idle(self) -> None:
        """The server closed one idle connection: the others are as old, open new ones."""
        self.close()

    async def send(self, request: bytes) -> int:
        """The response status; 0 when the connection failed."""
        return (await self.request(request)).status

    async def stream_lines(
        self, path: str, token: str, last_event_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """GET ``path`` on a connection of its own and yield the status line's code (as
        ``b"HTTP <status>"``), then the response headers ``name: value``, an empty line, and
        the body's lines (raw, chunked framing included: callers look for whole ``event:``,
        ``id:`` and ``data:`` lines, which it never splits)."""
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        try:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            writer.write(self.prepare("GET", path, token=token, headers=headers))
            status, head = await _read_head(reader)
            yield f"HTTP {status}".encode()
            for name, value in head.items():
                yield f"{name}: {value}".encode()
            yield b""
            while line := await reader.readline():
                yield line.rstrip(b"\r\n")
        finally:
            writer.close()

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
