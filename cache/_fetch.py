"""One download attempt of an asset into its part file, resuming from the bytes on disk.

``GET /api/v1/assets/{sha256}`` with ``Range: bytes=N-`` and ``If-Range: "<sha256>"`` when N
bytes are already there (they are rehashed first, so the digest covers the whole file). A 206
appends, a 200 starts over, a 416 means the part may already be complete. The bytes go to disk
and into the hash in a worker thread, one block in flight while the next is received.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from pathlib import Path
from typing import BinaryIO

import httpx
from httpcore import AsyncHTTP11Connection

from cache._store import hash_into, is_no_space
from core import CacheError, DiskFull, HashMismatch, parse_retry_after

# httpcore asks for 64 KiB per read while asyncio's transport receives 256 KiB per recv, so
# every recv was sliced into four h11 events: four times the Python work per byte. Reading
# what the transport already holds halves the client's CPU per downloaded byte (docs/cache.md).
# Neither httpcore nor httpx has a setting for it: the undocumented class attribute is the only
# knob, checked against the pinned httpcore by tests/test_dependency_privates.py.
HTTP_READ_BYTES = 256 * 1024
if getattr(AsyncHTTP11Connection, "READ_NUM_BYTES", HTTP_READ_BYTES) < HTTP_READ_BYTES:
    AsyncHTTP11Connection.READ_NUM_BYTES = HTTP_READ_BYTES

ASSET_PATH = "/api/v1/assets/{sha}"
# A download that receives nothing for a minute is cut and resumed: a half-open connection
# must not hold a download slot forever, whatever the client's own defaults are.
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
WRITE_BLOCK = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class RetryAfter(CacheError):
    """The server asked us to come back later (429/503)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        self.status = status
        # None: the server did not say; the retry policy backs off as for any failure.
        self.retry_after = retry_after
        after = f"retry after {retry_after:.1f} s" if retry_after is not None else "no Retry-After"
        super().__init__(f"server answered {status}; {after}")


class ServerFailed(CacheError):
    """A 5xx without Retry-After, or a resume the server would not honour: try again."""


class FetchRefused(CacheError):
    """A 4xx: retrying the same request now will not help (unknown asset, bad token)."""

    def __init__(self, status: int, sha: str) -> None:
        self.status = status
        super().__init__(f"server refused asset {sha}: HTTP {status}")


class RateLimiter:
    """A shared pace for all downloads: ``consume(n)`` sleeps until n more bytes are due."""

    def __init__(self, bytes_per_s: int) -> None:
        self.bytes_per_s = bytes_per_s
        self._due = time.monotonic()

    async def consume(self, count: int) -> None:
        now = time.monotonic()
        self._due = max(self._due, now) + count / self.bytes_per_s
        delay = self._due - now
        if delay > 0:
            await asyncio.sleep(delay)


def _write_block(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)


class _PartWriter:
    """Appends to the part file and feeds the hash off the event loop, one batch in flight.

    Chunks are handed over as a list (no joining copy); the thread writes and hashes them
    while the loop receives the next batch.
    """

    def __init__(self, handle: BinaryIO, hasher: hashlib._Hash, part: Path) -> None:
        self._handle = handle
        self._hasher = hasher
        self._part = part
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._in_flight: asyncio.Future[None] | None = None

    def _flush_batch(self, chunks: list[bytes]) -> None:
        for data in chunks:
            try:
                _write_block(self._handle, data)
            except OSError as exc:
                if is_no_space(exc):
                    raise DiskFull(str(self._part)) from exc
                raise
            self._hasher.update(data)

    async def _drain(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def feed(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= WRITE_BLOCK:
            await self._submit()

    async def _submit(self) -> None:
        chunks, self._pending = self._pending, []
        self._pending_size = 0
        await self._drain()
        if chunks:
            self._in_flight = asyncio.ensure_future(asyncio.to_thread(self._flush_batch, chunks))

    async def finish(self) -> None:
        await self._submit()
        await self._drain()
        await asyncio.to_thread(self._sync)

    async def abandon(self) -> None:
        """Keep what was received (the next attempt resumes from it and rehashes it)."""
        try:
            await self._submit()
            await self._drain()
        except (OSError, CacheError):
            return

    def _sync(self) -> None:
        try:
            self._handle.flush()
        except OSError as exc:
            if is_no_space(exc):
                raise DiskFull(str(self._part)) from exc
            raise


def _rehash_part(part: Path) -> tuple[hashlib._Hash, int]:
    hasher = hashlib.sha256()
    try:
        have = hash_into(hasher, part)
    except FileNotFoundError:
        return hasher, 0
    return hasher, have


def _check(hasher: hashlib._Hash, sha: str, source: str) -> None:
    actual = hasher.hexdigest()
    if actual != sha:
        raise HashMismatch(sha, actual, source=source)


def _resume_offset(response: httpx.Response) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match is None or match.group(1) is None:
        return None
    return int(match.group(1))


async def download(
    client: httpx.AsyncClient,
    sha: str,
    part: Path,
    *,
    size: int | None,
    limiter: RateLimiter | None = None,
) -> None:
    """Make ``part`` hold exactly the bytes of ``sha``, or raise.

    HashMismatch leaves the bad bytes in ``part`` for the caller to quarantine; any other
    error keeps them for the next attempt to resume from.
    """
    hasher, have = await asyncio.to_thread(_rehash_part, part)
    if size is not None and have > size:
        await asyncio.to_thread(part.unlink)
        hasher, have = hashlib.sha256(), 0
    if size is not None and have == size:
        _check(hasher, sha, str(part))
        return
    headers = {"Range": f"bytes={have}-", "If-Range": f'"{sha}"'} if have else {}
    url = ASSET_PATH.format(sha=sha)
    async with client.stream("GET", url, headers=headers, timeout=TIMEOUT) as response:
        status = response.status_code
        if status == 416 and have:
            total = response.headers.get("content-range", "").rpartition("/")[2]
            if total == str(have):
                _check(hasher, sha, str(part))
                return
            await asyncio.to_thread(part.unlink)
            raise ServerFailed(f"server refused to resume {sha} at byte {have}")
        _raise_for_status(response, sha)
        if status == 206 and _resume_offset(response) != have:
            await asyncio.to_thread(part.unlink)
            raise ServerFailed(f"server resumed {sha} at the wrong offset")
        if status != 206:
            hasher, have = hashlib.sha256(), 0
        await _receive(response, hasher, part, sha=sha, limit=size, limiter=limiter)
    _check(hasher, sha, str(response.url))


def _raise_for_status(response: httpx.Response, sha: str) -> None:
    status = response.status_code
    if status in (429, 503):
        raise RetryAfter(status, parse_retry_after(response.headers.get("retry-after")))
    if status >= 500:
        raise ServerFailed(f"server answered {status} for asset {sha}")
    if status >= 400:
        raise FetchRefused(status, sha)
    if status not in (200, 206):
        raise ServerFailed(f"unexpected HTTP {status} for asset {sha}")


async def _receive(
    response: httpx.Response,
    hasher: hashlib._Hash,
    part: Path,
    *,
    sha: str,
    limit: int | None,
    limiter: RateLimiter | None,
) -> None:
    append = response.status_code == 206
    handle = await asyncio.to_thread(open, part, "ab" if append else "wb")
    try:
        writer = _PartWriter(handle, hasher, part)
        written = handle.tell()
        try:
            async for chunk in response.aiter_bytes():
                written += len(chunk)
                if limit is not None and written > limit:
                    raise HashMismatch(sha, f"(more than {limit} bytes)", source=str(response.url))
                await writer.feed(chunk)
                if limiter is not None:
                    await limiter.consume(len(chunk))
            await writer.finish()
        except BaseException:
            await writer.abandon()
            raise
    finally:
        await asyncio.to_thread(handle.close)
