"""AssetCache: the only way the player gets a file path, and only for verified bytes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import mimetypes
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from cache._downloads import Downloads
from cache._fetch import RateLimiter, download
from cache._index import Index
from cache._lifecycle import lower_thread_priority, release_lock, take_lock
from cache._readiness import Readiness
from cache._reconcile import UNKNOWN_MIME, Known, Reconciled, reconcile
from cache._store import IMPORT_PREFIX, HashCancelled, Store, sha256_file
from cache._types import CacheStats, Limits, ObjectState, check_sha256
from core import CacheError, DiskFull, HashMismatch
from protocol import Asset

log = logging.getLogger(__name__)
Listener = Callable[[str], None]


class AssetCache:
    """Content-addressed store of verified assets; see docs/cache.md. Create with ``open``."""

    def __init__(
        self, store: Store, index: Index, lock_fd: int, *, client: httpx.AsyncClient | None,
        limits: Limits,
    ) -> None:  # fmt: skip
        self._store, self._index, self._lock_fd = store, index, lock_fd
        self._client = client
        self._limits = limits
        self._known: dict[str, Known] = {}
        self._ready: dict[str, int] = {}
        self._protected: frozenset[str] = frozenset()
        self._wanted: set[str] = set()
        self._errors: dict[str, str] = {}
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._listeners: list[Listener] = []
        self._views: weakref.WeakSet[Readiness] = weakref.WeakSet()
        self._downloads = Downloads(store.root, limits, self._attempt, self._failed)
        self._refs_lock = asyncio.Lock()
        self._stop_hashing = threading.Event()
        self._verifier = ThreadPoolExecutor(
            1, thread_name_prefix="cache-verify", initializer=lower_thread_priority
        )
        self._limiter = RateLimiter(limits.bandwidth_bps) if limits.bandwidth_bps else None
        self._imports = 0
        self._closed = False

    @classmethod
    async def open(
        cls, root: Path, *, client: httpx.AsyncClient | None = None, limits: Limits | None = None
    ) -> AssetCache:
        """Open (creating) the cache at ``root``; reconciles index and files without hashing."""
        store = Store(root)

        def opening() -> tuple[int, Index, Reconciled]:
            store.create()
            lock_fd = take_lock(store.lock_path)
            try:
                index = Index(store.index_path)
                try:
                    return lock_fd, index, reconcile(store, index)
                except BaseException:
                    index.close()
                    raise
            except BaseException:
                release_lock(lock_fd)
                raise

        lock_fd, index, found = await asyncio.to_thread(opening)
        limits = limits or Limits()
        cache = cls(store, index, lock_fd, client=client, limits=limits)
        cache._adopt(found)
        if limits.verify_after_start:
            cache._spawn(cache._verify_pass())
        return cache

    def _adopt(self, found: Reconciled) -> None:
        self._known, self._ready, self._errors = found.known, found.ready, found.errors
        self._protected = frozenset(found.protected)
        self._wanted = set(found.protected)
        for sha in self._protected:
            self._start(sha)

    async def __aenter__(self) -> AssetCache:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def root(self) -> Path:
        return self._store.root

    # -- what the player and the sync layer call ---------------------------------------------

    def set_client(self, client: httpx.AsyncClient | None) -> None:
        """Use ``client`` (base_url and credentials set) from now on; starts what was waiting."""
        self._client = client
        for sha in sorted(self._wanted - self._ready.keys()):
            self._start(sha)

    def is_ready(self, sha: str) -> bool:
        return sha in self._ready

    def path_of(self, sha: str) -> Path:
        """The verified file of ``sha``; CacheError when it is not ready."""
        if sha not in self._ready:
            raise CacheError(f"asset {sha} is not ready")
        now = time.time()
        self._touched[sha] = now
        self._known[sha].last_used = now
        return self._store.object_path(sha)

    async def ensure(self, assets: Iterable[Asset]) -> Readiness:
        """Start fetching the assets that are not ready; a live view of their readiness."""
        wanted = list(assets)
        rows: list[dict[str, object]] = []
        for asset in wanted:
            sha = check_sha256(asset.sha256)
            known = self._known.get(sha)
            if sha not in self._ready and (
                known is None or (known.size, known.mime) != (asset.size, asset.mime)
            ):
                self._known[sha] = Known(asset.size, asset.mime, known.last_used if known else 0)
                state = ObjectState.MISSING.value
                rows.append({"sha256": sha, "size": asset.size, "mime": asset.mime, "state": state})
            self._wanted.add(sha)
        try:
            await asyncio.to_thread(self._index.upsert_many, rows)
        except DiskFull as exc:
            # The rows are remembered in memory; the fetches pause on their own until the
            # disk has room. A manifest must never fail to apply because the disk is full.
            log.warning("cache index not updated: %s", exc)
        for asset in wanted:
            self._start(asset.sha256)
        view = Readiness(frozenset(a.sha256 for a in wanted), self.is_ready)
        self._views.add(view)
        return view

    def add_listener(self, callback: Listener) -> None:
        """``callback(sha)`` runs on the loop whenever an asset becomes ready or stops being."""
        self._listeners.append(callback)

    def protect(self, shas: Iterable[str]) -> None:
        """Assets of the current and next manifest: never evicted, kept by ``clear``."""
        protected = frozenset(check_sha256(s) for s in shas)
        self._protected = protected
        self._wanted = set(protected) | self._downloads.active()
        self._spawn(self._persist_references())
        for sha in protected:
            self._start(sha)

    async def import_file(self, path: Path, sha256: str | None = None) -> str:
        """Copy a local file in, verified; return its sha256 (HashMismatch if not ``sha256``)."""
        if sha256 is not None:
            check_sha256(sha256)
        self._imports += 1
        try:
            tmp, actual = await asyncio.to_thread(self._store.copy_in, Path(path))
            if sha256 is not None and actual != sha256:
                await asyncio.to_thread(tmp.unlink)
                raise HashMismatch(sha256, actual, source=str(path))
            if actual in self._ready:
                await asyncio.to_thread(tmp.unlink)
                return actual
            mime = mimetypes.guess_type(str(path))[0] or UNKNOWN_MIME
            await self._promote(tmp, actual, mime=mime)
            return actual
        finally:
            self._imports -= 1

    async def wait_idle(self) -> None:
        """Return once no fetch is in flight: each one made its asset ready or gave up."""
        await self._downloads.wait_idle()

    def stats(self) -> CacheStats:
        pending = self._wanted - self._ready.keys()
        return CacheStats(
            ready=len(self._ready),
            total=len(self._ready) + len(pending),
            bytes_used=sum(self._ready.values()),
            errors=sum(1 for sha in self._errors if sha in pending),
            disk_full=self._downloads.paused_for_space,
        )

    # -- verification --------------------------------------------------------------------

    async def verify(self, sha: str) -> bool:
        """Rehash a ready object; on a mismatch quarantine it (and fetch it again if wanted).

        False when the object is corrupt or not ready.
        """
        return await self._verify(check_sha256(sha)) is True

    async def verify_all(self) -> list[str]:
        """Rehash every ready object, least recently verified first; the corrupt ones' shas."""
        order = sorted(self._ready, key=lambda s: self._known[s].verified_at or 0.0)
        return [sha for sha in order if await self._verify(sha) is False]

    async def _verify(self, sha: str) -> bool | None:
        """True: intact. False: corrupt, now quarantined. None: not ready (or evicted meanwhile)."""
        if sha not in self._ready:
            return None
        hashing = functools.partial(
            sha256_file, self._store.object_path(sha), stop=self._stop_hashing
        )
        try:
            actual = await asyncio.get_running_loop().run_in_executor(self._verifier, hashing)
        except FileNotFoundError:
            actual = "(file missing)"
        if sha not in self._ready:
            return None
        if actual == sha:
            now = time.time()
            self._known[sha].verified_at = now
            await asyncio.to_thread(self._index.update, sha, verified_at=now)
            return True
        log.error("cache object %s is corrupt on disk (hashes to %s): quarantined", sha, actual)
        await self._quarantine_object(sha, f"corrupt on disk: hashes to {actual}")
        return False

    async def _verify_pass(self) -> None:
        with contextlib.suppress(HashCancelled):
            corrupt = await self.verify_all()
            log.info("cache verification pass done: %d corrupt", len(corrupt))

    # -- housekeeping --------------------------------------------------------------------

    async def gc(self) -> int:
        """Evict LRU objects over budget, drop unwanted partials and quarantine; bytes freed."""
        await self._flush_touched()
        freed = await self._evict(self._limits.max_bytes)

        def keep(name: str) -> bool:
            if name.startswith(IMPORT_PREFIX):
                return self._imports > 0
            sha = name.partition(".")[0]
            return sha in self._wanted or sha in self._downloads

        freed += await asyncio.to_thread(self._store.remove_partials, keep)
        freed += await asyncio.to_thread(self._store.clear_quarantine)
        stale = [s for s in self._known if s not in self._ready and s not in self._wanted]
        await asyncio.to_thread(self._index.delete, stale)
        for sha in stale:
            del self._known[sha]
            self._errors.pop(sha, None)
        return freed

    async def clear(self, keep_protected: bool = True) -> None:
        """Remove every object (but the protected ones unless told); refetch protected ones."""
        keep = self._protected if keep_protected else frozenset()
        await self._downloads.cancel(self._downloads.active() - keep)
        victims = [sha for sha in self._ready if sha not in keep]
        await self._remove_objects(victims)
        await asyncio.to_thread(
            self._store.remove_partials, lambda name: name.partition(".")[0] in keep
        )
        await asyncio.to_thread(self._store.clear_quarantine)
        self._wanted = set(self._protected)
        self._errors = {s: e for s, e in self._errors.items() if s in keep}
        for sha in self._protected:
            self._start(sha)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_hashing.set()
        await self._downloads.close()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(CacheError):
            await self._flush_touched()
            await self._persist_references()  # a protect() just before close must stick
        await asyncio.to_thread(functools.partial(self._verifier.shutdown, cancel_futures=True))
        await asyncio.to_thread(self._index.close)
        release_lock(self._lock_fd)

    # -- internals -----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cache background task failed", exc_info=task.exception())

    def _changed(self, sha: str) -> None:
        for view in list(self._views):
            view.refresh()
        for callback in list(self._listeners):
            try:
                callback(sha)
            except Exception:
                log.exception("cache listener failed for %s", sha)

    def _start(self, sha: str) -> None:
        if self._closed or self._client is None or sha in self._ready or sha not in self._known:
            return
        self._downloads.start(sha)

    async def _failed(self, sha: str, exc: Exception) -> None:
        """Every attempt failed: keep the reason for operators and the heartbeat."""
        self._errors[sha] = str(exc)
        state = ObjectState.CORRUPT if isinstance(exc, HashMismatch) else ObjectState.MISSING
        with contextlib.suppress(CacheError):
            await asyncio.to_thread(self._index.update, sha, state=state.value, error=str(exc))

    async def _attempt(self, sha: str) -> None:
        if sha in self._ready:  # e.g. imported, or promoted just before a disk-full pause
            return
        client = self._client
        if client is None:
            raise CacheError("no HTTP client yet: the device is not paired")
        known = self._known[sha]
        await self._evict(self._limits.max_bytes, room_for=known.size)
        await asyncio.to_thread(self._index.update, sha, state=ObjectState.DOWNLOADING.value)
        part = self._store.part_path(sha)
        try:
            await download(client, sha, part, size=known.size, limiter=self._limiter)
        except HashMismatch as exc:
            log.warning("cache download of %s failed its hash check: quarantined", sha)
            self._errors[sha] = str(exc)
            await asyncio.to_thread(self._store.quarantine_file, part, sha)
            self._changed(sha)
            raise
        await self._promote(part, sha, mime=known.mime)

    async def _promote(self, part: Path, sha: str, *, mime: str) -> None:
        size = await asyncio.to_thread(self._store.promote, part, sha)
        now = time.time()
        row = {"sha256": sha, "size": size, "mime": mime, "state": ObjectState.READY.value}
        row.update(fetched_at=now, last_used_at=now, verified_at=now, error=None)
        await asyncio.to_thread(self._index.upsert_many, [row])
        self._known[sha] = Known(size, mime, now, now)
        self._ready[sha] = size
        self._errors.pop(sha, None)
        self._changed(sha)
        with contextlib.suppress(CacheError):  # use marks are a hint; the object is what counts
            await self._flush_touched()
        await self._evict(self._limits.max_bytes, spare=sha)

    async def _quarantine_object(self, sha: str, reason: str) -> None:
        self._ready.pop(sha, None)  # first: from here on path_of refuses it
        await asyncio.to_thread(self._store.quarantine_file, self._store.object_path(sha), sha)
        self._errors[sha] = reason
        await asyncio.to_thread(
            self._index.update, sha, state=ObjectState.CORRUPT.value, error=reason
        )
        self._changed(sha)
        if sha in self._wanted:
            self._start(sha)

    async def _evict(self, budget: int, *, room_for: int = 0, spare: str | None = None) -> int:
        used = sum(self._ready.values())
        if used + room_for <= budget:
            return 0
        waiting = {sha for view in self._views if not view.complete for sha in view.shas}
        candidates = sorted(
            (
                s
                for s in self._ready
                if s not in self._protected and s not in waiting and s != spare
            ),
            key=lambda s: self._known[s].last_used,
        )
        victims = []
        for sha in candidates:
            if used + room_for <= budget:
                break
            victims.append(sha)
            used -= self._ready[sha]
        return await self._remove_objects(victims)

    async def _remove_objects(self, shas: list[str]) -> int:
        freed = sum(self._ready.pop(sha, 0) for sha in shas)
        for sha in shas:
            self._changed(sha)

        def removing() -> None:
            for sha in shas:
                self._store.remove_object(sha)
            self._index.delete(shas)

        await asyncio.to_thread(removing)
        return freed

    async def _flush_touched(self) -> None:
        touched, self._touched = self._touched, {}
        await asyncio.to_thread(self._index.touch, touched)

    async def _persist_references(self) -> None:
        async with self._refs_lock:
            await asyncio.to_thread(self._index.set_references, self._protected)
