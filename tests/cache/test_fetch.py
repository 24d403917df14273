"""The fetcher against a real HTTP server on 127.0.0.1: resume, faults, retries, sharing."""

from __future__ import annotations

import asyncio
import os
import random
import threading

import pytest

from cache import AssetCache
from core import CacheError
from tests.cache.assetserver import AssetServer
from tests.cache.conftest import asset_of

BODY = os.urandom(700_000)


async def test_download_makes_a_read_only_verified_object(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, BODY)
    readiness = await cache.ensure([asset])
    assert readiness.missing == {asset.sha256}
    assert await readiness.wait(timeout=20)
    path = cache.path_of(asset.sha256)
    assert path == cache.root / "objects" / asset.sha256[:2] / asset.sha256
    assert path.read_bytes() == BODY
    assert path.stat().st_mode & 0o222 == 0
    assert not list((cache.root / "partial").iterdir())
    assert readiness.ready == {asset.sha256}


async def test_connection_cut_mid_download_resumes_from_the_bytes_on_disk(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, BODY)
    server.faults.cut_after = 300_000
    server.faults.cuts = 1
    assert await (await cache.ensure([asset])).wait(timeout=20)
    seen = server.requests_for(asset.sha256)
    assert len(seen) == 2
    assert seen[0].range is None
    # The first response was cut after 300000 bytes: the second asks for the rest only.
    assert seen[1].range == "bytes=300000-"
    assert seen[1].if_range == f'"{asset.sha256}"'
    assert cache.path_of(asset.sha256).read_bytes() == BODY


async def test_server_ignoring_the_range_restarts_from_zero(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, BODY)
    server.faults.cut_after = 200_000
    server.faults.cuts = 1
    server.faults.ignore_range = True
    assert await (await cache.ensure([asset])).wait(timeout=20)
    assert cache.path_of(asset.sha256).read_bytes() == BODY


async def test_server_sending_wrong_bytes_is_quarantined_retried_and_never_ready(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, BODY)
    server.faults.corrupt = True
    told: list[str] = []
    cache.add_listener(told.append)
    readiness = await cache.ensure([asset])
    await cache.wait_idle()
    assert not await readiness.wait(timeout=0.01)
    assert len(server.requests_for(asset.sha256)) == 4  # FAST.attempts
    assert not cache.is_ready(asset.sha256)
    with pytest.raises(CacheError):
        cache.path_of(asset.sha256)
    assert (cache.root / "quarantine" / asset.sha256).exists()
    assert not any((cache.root / "objects").rglob(asset.sha256))
    assert told and set(told) == {asset.sha256}
    stats = cache.stats()
    assert (stats.ready, stats.total, stats.errors) == (0, 1, 1)


async def test_429_and_503_wait_for_retry_after(cache: AssetCache, server: AssetServer) -> None:
    asset = asset_of(server, b"x" * 1000)
    server.faults.statuses = [(429, "1"), (503, "1")]
    assert await (await cache.ensure([asset])).wait(timeout=20)
    seen = server.requests_for(asset.sha256)
    assert len(seen) == 3
    # FAST backs off at most 0.05 s on its own: these gaps are the server's Retry-After.
    assert seen[1].at - seen[0].at >= 0.9
    assert seen[2].at - seen[1].at >= 0.9


async def test_an_unknown_asset_ends_as_an_error_without_hammering(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, b"gone")
    del server.blobs[asset.sha256]
    readiness = await cache.ensure([asset])
    await cache.wait_idle()
    assert readiness.missing == {asset.sha256}
    assert len(server.requests_for(asset.sha256)) == 1
    assert cache.stats().errors == 1


async def test_two_concurrent_requests_for_one_sha_download_it_once(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, BODY)
    server.faults.gate = threading.Event()
    first, second = await asyncio.gather(cache.ensure([asset]), cache.ensure([asset]))
    third = await cache.ensure([asset])
    server.faults.gate.set()
    results = await asyncio.gather(first.wait(20), second.wait(20), third.wait(20))
    assert list(results) == [True, True, True]
    assert len(server.requests_for(asset.sha256)) == 1


async def test_parallel_downloads_are_bounded(cache: AssetCache, server: AssetServer) -> None:
    assets = [asset_of(server, os.urandom(1000)) for _ in range(5)]
    server.faults.gate = threading.Event()
    readiness = await cache.ensure(assets)
    for _ in range(200):
        if len(server.seen) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert len(server.seen) == 2  # FAST.parallel is the default, 2
    server.faults.gate.set()
    assert await readiness.wait(timeout=20)


async def test_media_replaced_under_the_same_name_is_fetched_by_its_new_hash(
    cache: AssetCache, server: AssetServer
) -> None:
    # Seed: "if cached locally play, else fetch" showed stale content forever when a file was
    # replaced under the same name. Content addressing: new bytes, new sha, new download.
    old = asset_of(server, b"poster, version 1")
    new = asset_of(server, b"poster, version 2")
    assert await (await cache.ensure([old])).wait(timeout=20)
    assert await (await cache.ensure([new])).wait(timeout=20)
    assert cache.path_of(new.sha256).read_bytes() == b"poster, version 2"
    assert cache.path_of(old.sha256).read_bytes() == b"poster, version 1"


async def test_503_without_retry_after_backs_off_and_retries(
    cache: AssetCache, server: AssetServer
) -> None:
    asset = asset_of(server, b"y" * 1000)
    server.faults.statuses = [(503, None), (503, None)]
    assert await (await cache.ensure([asset])).wait(timeout=20)
    assert len(server.requests_for(asset.sha256)) == 3


@pytest.mark.parametrize("seed", range(12))
async def test_whatever_the_faults_a_ready_object_holds_exactly_its_bytes(
    cache: AssetCache, server: AssetServer, seed: int
) -> None:
    chance = random.Random(seed)
    body = chance.randbytes(chance.randrange(1, 400_000))
    asset = asset_of(server, body)
    server.faults.cut_after = chance.randrange(0, len(body))
    server.faults.cuts = chance.randrange(0, 3)
    server.faults.corrupt = chance.random() < 0.3
    server.faults.ignore_range = chance.random() < 0.3
    server.faults.statuses = [(503, "0")] * chance.randrange(0, 2)
    readiness = await cache.ensure([asset])
    await cache.wait_idle()
    # At most three failed attempts of FAST's four come from cuts and statuses: intact bytes
    # always end ready, corrupt ones never do.
    assert cache.is_ready(asset.sha256) is not server.faults.corrupt
    if server.faults.corrupt:
        with pytest.raises(CacheError):
            cache.path_of(asset.sha256)
        assert readiness.missing == {asset.sha256}
        assert not [p for p in (cache.root / "objects").rglob("*") if p.is_file()]
    else:
        assert cache.path_of(asset.sha256).read_bytes() == body
        assert readiness.missing == frozenset()
