"""A small real HTTP server of assets for the fetcher's tests, with faults on demand.

It speaks the reference server's ``GET /api/v1/assets/{sha256}``: ETag = the quoted sha256,
``Range: bytes=N-`` honoured (206) unless ``If-Range`` names another entity, 416 past the end.
Faults: cut the connection after some bytes, send wrong bytes, answer 429/503 with
Retry-After, hold a response until released, send slowly. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class Seen:
    sha: str
    range: str | None
    if_range: str | None
    at: float


@dataclass
class Faults:
    cut_after: int | None = None  # bytes of body sent before the connection is cut...
    cuts: int = 0  # ...on this many responses
    corrupt: bool = False  # flip one byte of every body
    statuses: list[tuple[int, str | None]] = field(default_factory=list)  # answered first
    ignore_range: bool = False
    gate: threading.Event | None = None  # responses wait for it
    chunk: int = 64 * 1024
    chunk_delay_s: float = 0.0
    hold_after: int | None = None  # bytes of body sent before the response stalls...
    holds: int = 0  # ...on this many responses, until ``release`` is set
    release: threading.Event = field(default_factory=threading.Event)


class AssetServer:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.faults = Faults()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def add(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs[sha] = data
        return sha

    def requests_for(self, sha: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.sha == sha]

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @contextmanager
    def running(self) -> Iterator[AssetServer]:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield self
        finally:
            if self.faults.gate is not None:
                self.faults.gate.set()
            self.faults.release.set()
            self._httpd.shutdown()
            self._httpd.server_close()
            thread.join(timeout=10)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)


def _make_handler(server: AssetServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            faults = server.faults
            sha = self.path.rsplit("/", 1)[-1]
            server._record(
                Seen(sha, self.headers.get("Range"), self.headers.get("If-Range"), time.time())
            )
            if faults.gate is not None:
                faults.gate.wait(timeout=30)
            if faults.statuses:
                status, retry_after = faults.statuses.pop(0)
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = server.blobs.get(sha)
            if data is None or not self.path.startswith("/api/v1/assets/"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if faults.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._send(sha, data, faults)

        def _send(self, sha: str, data: bytes, faults: Faults) -> None:
            etag = f'"{sha}"'
            start = 0
            match = _RANGE.match(self.headers.get("Range") or "")
            if_range = self.headers.get("If-Range")
            if match and not faults.ignore_range and (if_range is None or if_range == etag):
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            limit = len(body)
            if faults.cuts > 0 and faults.cut_after is not None:
                faults.cuts -= 1
                limit = min(limit, faults.cut_after)
            hold_at = None
            if faults.holds > 0 and faults.hold_after is not None:
                faults.holds -= 1
                hold_at = faults.hold_after
            sent = 0
            while sent < limit:
                if hold_at is not None and sent >= hold_at:
                    faults.release.wait(timeout=30)
                    hold_at = None
                piece = body[sent : min(limit, sent + faults.chunk)]
                self.wfile.write(piece)
                self.wfile.flush()
                sent += len(piece)
                if faults.chunk_delay_s:
                    time.sleep(faults.chunk_delay_s)
            if limit < len(body):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler
