"""The surface other components code against: import, readiness, client swap, bad input."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest

from cache import AssetCache, CacheStats, Limits, cache_root
from cache._index import Index
from core import CacheError, DiskFull, HashMismatch, load_settings
from protocol import Asset, CacheMetrics
from tests.cache.assetserver import AssetServer
from tests.cache.conftest import FAST, asset_of


async def test_import_file_copies_a_local_file_in_verified(tmp_path: Path, root: Path) -> None:
    source = tmp_path / "poster.png"
    source.write_bytes(b"\x89PNG local content")
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    async with await AssetCache.open(root, client=None, limits=FAST) as store:
        assert await store.import_file(source) == sha
        assert await store.import_file(source, sha) == sha  # idempotent
        assert store.path_of(sha).read_bytes() == source.read_bytes()
        with pytest.raises(HashMismatch, match="expected " + "0" * 64):
            await store.import_file(source, "0" * 64)
        with pytest.raises(CacheError, match="cannot import"):
            await store.import_file(tmp_path / "absent.png")
        assert not list((root / "partial").iterdir())
        assert store.stats() == CacheStats(
            ready=1, total=1, bytes_used=len(source.read_bytes()), errors=0, disk_full=False
        )
    rows = Index(root / "index.db").rows()
    assert [(r["sha256"], r["mime"], r["state"]) for r in rows] == [(sha, "image/png", "ready")]


async def test_without_a_client_ensure_waits_for_set_client(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    asset = asset_of(server, os.urandom(1000))
    async with await AssetCache.open(root, client=None, limits=FAST) as store:
        readiness = await store.ensure([asset])
        assert not await readiness.wait(timeout=0.1)
        assert store.stats().total == 1
        assert server.seen == []
        store.set_client(client)
        assert await readiness.wait(timeout=20)


async def test_listener_errors_do_not_stop_the_cache(
    cache: AssetCache, server: AssetServer
) -> None:
    told: list[str] = []

    def broken(sha: str) -> None:
        raise RuntimeError("listener bug")

    cache.add_listener(broken)
    cache.add_listener(told.append)
    asset = asset_of(server, b"content")
    assert await (await cache.ensure([asset])).wait(timeout=20)
    assert told == [asset.sha256]


async def test_hostile_sha_is_refused_before_it_becomes_a_path(cache: AssetCache) -> None:
    with pytest.raises(CacheError, match="not ready"):  # only verified shas ever become paths
        cache.path_of("../../etc/passwd")
    with pytest.raises(CacheError, match="not a sha256"):
        cache.protect(["ABC"])
    with pytest.raises(CacheError, match="not ready"):
        cache.path_of("a" * 64)
    bogus = Asset.model_construct(sha256="../x", size=1, mime="image/png")
    with pytest.raises(CacheError, match="not a sha256"):
        await cache.ensure([bogus])


def test_limits_reject_nonsense_naming_every_problem() -> None:
    with pytest.raises(CacheError) as caught:
        Limits(parallel=0, bandwidth_bps=0, max_bytes=-1)
    message = str(caught.value)
    assert "parallel" in message and "bandwidth_bps" in message and "max_bytes" in message
    with pytest.raises(TypeError):
        Limits(1)  # type: ignore[call-arg]


def test_stats_are_the_heartbeat_metrics() -> None:
    stats = CacheStats(ready=3, total=5, bytes_used=10, errors=1, disk_full=True)
    assert stats.as_metrics() == CacheMetrics(
        ready=3, total=5, bytes_used=10, errors=1, disk_full=True
    )


def test_an_index_write_on_a_full_disk_raises_disk_full(tmp_path: Path) -> None:
    index = Index(tmp_path / "index.db")
    index.upsert_many([{"sha256": "a" * 64, "size": 1, "mime": "image/png", "state": "ready"}])
    index.db.execute(
        f"PRAGMA max_page_count = {index.db.execute('PRAGMA page_count').fetchone()[0]}"
    )
    rows = [
        {"sha256": f"{n:064x}", "size": n, "mime": "image/png", "state": "missing"}
        for n in range(5000)
    ]
    with pytest.raises(DiskFull):
        index.upsert_many(rows)
    assert len(index.rows()) == 1  # the transaction rolled back whole
    index.close()


def test_limits_follow_the_cache_section_of_the_configuration() -> None:
    settings = load_settings(
        None,
        env={},
        overrides={
            "cache": {"max_bytes": 2**30, "parallel_downloads": 3, "bandwidth_limit_bps": 4096}
        },
    )
    limits = Limits.from_config(settings.cache)
    assert (limits.max_bytes, limits.parallel, limits.bandwidth_bps) == (2**30, 3, 4096)
    assert limits.verify_after_start is True
    assert cache_root(Path("/var/lib/signage")) == Path("/var/lib/signage/cache")
