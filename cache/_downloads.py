"""The fetch tasks: one per sha, bounded parallelism, retries, and the disk-full pause."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import httpx

from cache._fetch import RetryAfter, ServerFailed
from cache._lifecycle import free_bytes
from cache._types import Limits
from core import DiskFull, HashMismatch, RetryPolicy, retrying

log = logging.getLogger(__name__)
Attempt = Callable[[str], Awaitable[None]]
Failed = Callable[[str, Exception], Awaitable[None]]


def retryable(exc: Exception) -> bool:
    """Worth another attempt soon: the network, a busy server, bytes that did not verify."""
    if isinstance(exc, DiskFull):
        return False
    return isinstance(exc, httpx.RequestError | RetryAfter | ServerFailed | HashMismatch)


class Downloads:
    """Runs ``attempt(sha)`` until it succeeds, as one task per sha.

    At most ``limits.parallel`` attempts run at once. Failures are retried by the retry
    policy (``core.RetryPolicy``: full-jitter backoff, at least the server's Retry-After up to
    its cap); when attempts run out ``failed(sha, exc)`` is
    awaited. DiskFull pauses every task (without spending an attempt) until the disk has
    room again.
    """

    def __init__(self, root: Path, limits: Limits, attempt: Attempt, failed: Failed) -> None:
        self._root = root
        self._limits = limits
        self._attempt = attempt
        self._failed = failed
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(limits.parallel)
        self._space = asyncio.Event()
        self._space.set()
        self._watcher: asyncio.Task[None] | None = None
        self._retry = RetryPolicy(
            initial_s=limits.retry_base_s, max_s=limits.retry_max_s, attempts=limits.attempts
        )

    def __contains__(self, sha: object) -> bool:
        return sha in self._tasks

    def active(self) -> frozenset[str]:
        return frozenset(self._tasks)

    @property
    def paused_for_space(self) -> bool:
        return not self._space.is_set()

    def start(self, sha: str) -> None:
        if sha not in self._tasks:
            self._tasks[sha] = asyncio.create_task(self._run(sha), name=f"fetch-{sha[:12]}")

    async def cancel(self, shas: Iterable[str]) -> None:
        doomed = [self._tasks[sha] for sha in shas if sha in self._tasks]
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    async def close(self) -> None:
        await self.cancel(list(self._tasks))
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)

    async def _run(self, sha: str) -> None:
        try:
            while True:
                await self._space.wait()
                async with self._slots:
                    try:
                        await self._with_retries(sha)
                        return
                    except DiskFull as exc:
                        self._pause(exc)
        except Exception as exc:
            log.warning("cache could not fetch %s: %s", sha, exc)
            await self._failed(sha, exc)
        finally:
            if self._tasks.get(sha) is asyncio.current_task():
                del self._tasks[sha]

    async def _with_retries(self, sha: str) -> None:
        async for attempt in retrying(self._retry, retry_on=retryable):
            with attempt:
                await self._attempt(sha)

    def _pause(self, exc: DiskFull) -> None:
        if self._space.is_set():
            log.error("cache paused: %s; ready assets stay playable", exc)
            self._space.clear()
            self._watcher = asyncio.create_task(self._wait_for_space())

    async def _wait_for_space(self) -> None:
        while True:
            await asyncio.sleep(self._limits.disk_poll_s)
            free = await asyncio.to_thread(free_bytes, self._root)
            if free > self._limits.min_free_bytes:
                break
        log.info("cache resumed: %d bytes free", free)
        self._space.set()
