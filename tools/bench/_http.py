"""A minimal HTTP/1.1 keep-alive client for load generation.

httpx spends more CPU per request than the server under test; a load process that saturates
first measures itself. This one writes a prepared request and parses only the status line and
``Content-Length``, which is all a heartbeat needs. Benchmarks only: no TLS, no chunked bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


class RawPool:
    """Up to ``size`` persistent connections to ``url``'s host; requests wait for a free one."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.size = size
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self._opened = 0

    def post_json(self, path: str, body: bytes, token: str) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def _acquire(self) -> _Connection:
        if self._idle.empty() and self._opened < self.size:
            self._opened += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                self._opened -= 1
                raise
            return _Connection(reader, writer)
        return await self._idle.get()

    async def send(self, request: bytes) -> int:
        """The response status; 0 when the connection failed (it is then dropped)."""
        connection = await self._acquire()
        try:
            status = await connection.exchange(request)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            connection.close()
            self._opened -= 1
            return 0
        self._idle.put_nowait(connection)
        return status

    async def stream_lines(self, path: str, token: str) -> AsyncIterator[bytes]:
        """GET ``path`` on a connection of its own and yield the body's lines (raw, chunked
        framing included: callers look for whole ``event:`` lines, which it never splits)."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            while line := await reader.readline():
                yield line.rstrip(b"\r\n")
        finally:
            writer.close()

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
