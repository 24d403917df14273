"""Verification: a byte flipped on disk is found, quarantined, fetched again, never handed out."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
from pathlib import Path

import httpx
import pytest

from cache import AssetCache
from cache._lifecycle import lower_thread_priority
from core import CacheError
from tests.cache.assetserver import AssetServer
from tests.cache.conftest import FAST, asset_of


def flip_a_byte(path: Path, offset: int = 1234) -> None:
    path.chmod(0o644)
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))
    path.chmod(0o444)


async def test_byte_flipped_on_disk_is_quarantined_refetched_and_never_handed_out(
    cache: AssetCache, server: AssetServer
) -> None:
    body = os.urandom(50_000)
    asset = asset_of(server, body)
    cache.protect([asset.sha256])
    readiness = await cache.ensure([asset])
    assert await readiness.wait(timeout=20)
    assert await cache.verify(asset.sha256)
    flip_a_byte(cache.path_of(asset.sha256))
    told: list[str] = []
    cache.add_listener(told.append)
    server.faults.gate = threading.Event()  # hold the new download

    assert await cache.verify_all() == [asset.sha256]

    assert told == [asset.sha256]
    assert not cache.is_ready(asset.sha256)
    assert readiness.missing == {asset.sha256}
    with pytest.raises(CacheError):
        cache.path_of(asset.sha256)
    assert (cache.root / "quarantine" / asset.sha256).exists()
    for _ in range(500):
        if len(server.requests_for(asset.sha256)) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(server.requests_for(asset.sha256)) == 2  # fetched again...
    with pytest.raises(CacheError):  # ...and while it is, nothing is handed out
        cache.path_of(asset.sha256)
    server.faults.gate.set()
    assert await readiness.wait(timeout=20)
    assert cache.path_of(asset.sha256).read_bytes() == body
    assert told == [asset.sha256, asset.sha256]


async def test_the_background_pass_after_start_finds_corruption(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    assets = [asset_of(server, os.urandom(20_000)) for _ in range(3)]
    async with await AssetCache.open(root, client=client, limits=FAST) as first:
        assert await (await first.ensure(assets)).wait(timeout=20)
        flip_a_byte(first.path_of(assets[1].sha256), offset=10)
    limits = dataclasses.replace(FAST, verify_after_start=True)
    async with await AssetCache.open(root, client=None, limits=limits) as second:
        # Start-up trusts the index; the low-priority pass that follows does the hashing.
        quarantined = asyncio.Event()
        second.add_listener(lambda sha: quarantined.set())
        await asyncio.wait_for(quarantined.wait(), timeout=20)
        assert not second.is_ready(assets[1].sha256)
        assert second.is_ready(assets[0].sha256) and second.is_ready(assets[2].sha256)


async def test_verify_of_a_missing_object_file_quarantines_the_entry(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, b"will vanish")
    assert await (await cache.ensure([asset])).wait(timeout=20)
    cache.path_of(asset.sha256).unlink()
    assert not await cache.verify(asset.sha256)
    assert not cache.is_ready(asset.sha256)


def test_the_verification_thread_runs_at_the_lowest_cpu_priority() -> None:
    seen: list[int] = []

    def probe() -> None:
        lower_thread_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert seen == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19  # only that thread
