"""Disk budget and disk full: LRU eviction that spares protected assets; ENOSPC pauses."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

import cache._downloads as downloads_module
import cache._fetch as fetch_module
from cache import AssetCache
from cache._index import Index
from core import DiskFull
from tests.cache.assetserver import AssetServer
from tests.cache.conftest import FAST, asset_of

KB = 1024


async def test_disk_full_pauses_fetching_keeps_ready_assets_and_resumes(
    cache: AssetCache, server: AssetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept_body = os.urandom(10 * KB)
    kept = asset_of(server, kept_body)
    assert await (await cache.ensure([kept])).wait(timeout=20)
    full = threading.Event()
    full.set()
    real_write = fetch_module._write_block

    def write_block(handle: BinaryIO, data: bytes) -> None:
        if full.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(handle, data)

    monkeypatch.setattr(fetch_module, "_write_block", write_block)
    monkeypatch.setattr(
        downloads_module, "free_bytes", lambda path: 0 if full.is_set() else 1 << 40
    )
    body = os.urandom(2 * KB * KB)
    big = asset_of(server, body, mime="video/mp4")
    readiness = await cache.ensure([big])
    for _ in range(1000):
        if cache.stats().disk_full:
            break
        await asyncio.sleep(0.01)
    assert cache.stats().disk_full
    asked = len(server.requests_for(big.sha256))
    await asyncio.sleep(0.3)  # six disk polls: still full, so no new request
    assert len(server.requests_for(big.sha256)) == asked == 1
    assert cache.path_of(kept.sha256).read_bytes() == kept_body
    assert await cache.verify(kept.sha256)

    full.clear()
    assert await readiness.wait(timeout=20)
    assert not cache.stats().disk_full
    assert cache.path_of(big.sha256).read_bytes() == body


async def test_eviction_drops_the_least_recently_used_first(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    limits = dataclasses.replace(FAST, max_bytes=25 * KB)
    a, b, c = (asset_of(server, os.urandom(10 * KB)) for _ in range(3))
    async with await AssetCache.open(root, client=client, limits=limits) as store:
        assert await (await store.ensure([a])).wait(timeout=20)
        assert await (await store.ensure([b])).wait(timeout=20)
        store.path_of(a.sha256)  # a is now more recently used than b
        assert await (await store.ensure([c])).wait(timeout=20)
        assert store.is_ready(a.sha256) and store.is_ready(c.sha256)
        assert not store.is_ready(b.sha256)
        assert not (root / "objects" / b.sha256[:2] / b.sha256).exists()
        assert store.stats().bytes_used == 20 * KB


async def test_protected_assets_are_never_evicted_even_over_budget(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    limits = dataclasses.replace(FAST, max_bytes=15 * KB)
    current, following, extra = (asset_of(server, os.urandom(10 * KB)) for _ in range(3))
    async with await AssetCache.open(root, client=client, limits=limits) as store:
        store.protect([current.sha256, following.sha256])
        assert await (await store.ensure([current, following])).wait(timeout=20)
        assert await (await store.ensure([extra])).wait(timeout=20)
        await store.gc()
        assert store.is_ready(current.sha256) and store.is_ready(following.sha256)
        assert not store.is_ready(extra.sha256)


async def test_protection_survives_a_restart(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    keep, drop = (asset_of(server, os.urandom(10 * KB)) for _ in range(2))
    async with await AssetCache.open(root, client=client, limits=FAST) as store:
        assert await (await store.ensure([keep, drop])).wait(timeout=20)
        store.protect([keep.sha256])
    tight = dataclasses.replace(FAST, max_bytes=0)
    async with await AssetCache.open(root, client=None, limits=tight) as store:
        await store.gc()
        assert store.is_ready(keep.sha256)
        assert not store.is_ready(drop.sha256)


async def test_clear_keeps_protected_assets_unless_told(
    cache: AssetCache, server: AssetServer
) -> None:
    keep, drop = (asset_of(server, os.urandom(5 * KB)) for _ in range(2))
    cache.protect([keep.sha256])
    assert await (await cache.ensure([keep, drop])).wait(timeout=20)
    await cache.clear()
    assert cache.is_ready(keep.sha256) and not cache.is_ready(drop.sha256)
    told: list[str] = []
    cache.add_listener(told.append)
    await cache.clear(keep_protected=False)
    assert not cache.is_ready(keep.sha256)
    assert told[0] == keep.sha256
    # The current content is fetched again at once: clear_cache never leaves a screen blank
    # for longer than a download.
    await cache.wait_idle()
    assert cache.is_ready(keep.sha256)
    assert len(server.requests_for(keep.sha256)) == 2


async def test_gc_removes_unwanted_partials_and_the_quarantine(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, os.urandom(5 * KB))
    server.faults.corrupt = True
    await cache.ensure([asset])
    await cache.wait_idle()
    stray = cache.root / "partial" / f"{'0' * 64}.part"
    stray.write_bytes(b"x" * 100)
    cache.protect([])  # the manifest moved on: nothing is wanted any more
    freed = await cache.gc()
    assert freed == 5 * KB + 100
    assert not list((cache.root / "quarantine").iterdir())
    assert not list((cache.root / "partial").iterdir())
    assert cache.stats().total == 0


async def test_bandwidth_cap_paces_downloads(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    limits = dataclasses.replace(FAST, bandwidth_bps=400 * KB)
    asset = asset_of(server, os.urandom(200 * KB))
    async with await AssetCache.open(root, client=client, limits=limits) as store:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await (await store.ensure([asset])).wait(timeout=20)
        assert loop.time() - started >= 0.45  # 200 KiB at 400 KiB/s, less one chunk of burst


async def test_a_full_disk_under_the_index_never_fails_a_manifest(
    cache: AssetCache, server: AssetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    asset = asset_of(server, os.urandom(10 * KB))
    real_upsert = Index.upsert_many
    refusals: list[int] = []

    def upsert_many(self: Index, rows: Iterable[Mapping[str, Any]]) -> None:
        if not refusals:
            refusals.append(1)
            raise DiskFull(str(self.path))
        real_upsert(self, rows)

    monkeypatch.setattr(Index, "upsert_many", upsert_many)
    readiness = await cache.ensure([asset])  # does not raise
    assert refusals
    assert await readiness.wait(timeout=20)
    rows = Index(cache.root / "index.db", read_only=True).rows()
    assert [(r["sha256"], r["state"]) for r in rows] == [(asset.sha256, "ready")]
