"""Start-up reconciliation, crash safety, and the one-owner lock."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import cache._cache
import cache._fetch
import cache._store
from cache import AssetCache, CacheBusy, ObjectState
from cache._index import Index
from cache._store import Store
from tests.cache.assetserver import AssetServer
from tests.cache.conftest import FAST, asset_of


def _fill(root: Path, count: int) -> list[str]:
    """``count`` small ready objects written straight to disk and index."""
    store = Store(root)
    store.create()
    rows: list[dict[str, object]] = []
    shas: list[str] = []
    for n in range(count):
        data = n.to_bytes(4, "big") * 4
        sha = hashlib.sha256(data).hexdigest()
        path = store.object_path(sha)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        shas.append(sha)
        rows.append({"sha256": sha, "size": len(data), "mime": "image/png", "state": "ready"})
    index = Index(store.index_path)
    index.upsert_many(rows)
    index.close()
    return shas


def _no_hashing(*args: object, **kwargs: object) -> None:
    raise AssertionError("start-up must not read object bytes")


async def test_start_up_with_10000_objects_is_fast_and_reads_no_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache"
    shas = await asyncio.to_thread(_fill, root, 10_000)
    monkeypatch.setattr(cache._store, "hash_into", _no_hashing)
    monkeypatch.setattr(cache._cache, "sha256_file", _no_hashing)
    started = time.perf_counter()
    opened = await AssetCache.open(root, client=None, limits=FAST)
    elapsed = time.perf_counter() - started
    try:
        assert opened.stats().ready == 10_000
        assert all(opened.is_ready(sha) for sha in shas[::97])
    finally:
        await opened.close()
    # About 0.3 s on a quiet laptop; the bound is generous for a busy shared CI machine, and
    # it is one query plus one directory walk (no hashing) that keeps it there.
    assert elapsed < 15


async def test_start_up_sets_index_and_files_straight(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    shas = _fill(root, 4)
    store = Store(root)
    store.object_path(shas[0]).unlink()  # index says ready, file gone
    orphan = hashlib.sha256(b"orphan").hexdigest()  # file without a row (crash after rename)
    store.object_path(orphan).parent.mkdir(exist_ok=True)
    store.object_path(orphan).write_bytes(b"orphan")
    junk = store.objects / "ab" / "not-a-sha"
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(b"?")
    stale_part = store.part_path(shas[3])
    stale_part.write_bytes(b"half")
    index = Index(store.index_path)
    index.update(shas[1], state=ObjectState.DOWNLOADING.value)  # a killed download
    index.close()

    async with await AssetCache.open(root, client=None, limits=FAST) as opened:
        assert not opened.is_ready(shas[0])
        assert opened.is_ready(shas[2])
        assert not opened.is_ready(orphan)
    assert not junk.exists()
    assert not store.object_path(orphan).exists()
    assert store.part_path(orphan).read_bytes() == b"orphan"  # rehashed before trusted again
    assert stale_part.read_bytes() == b"half"  # kept for resume
    states = {row["sha256"]: row["state"] for row in Index(store.index_path).rows()}
    assert states[shas[0]] == "missing"
    assert states[shas[1]] == "missing"  # a row not ready never vouches for its file:
    assert store.part_path(shas[1]).exists()  # the bytes wait, as a part, for a rehash
    assert states[orphan] == "missing"


async def test_an_orphan_object_is_adopted_without_downloading_it_again(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    asset = asset_of(server, os.urandom(10_000))
    store = Store(root)
    store.create()
    path = store.object_path(asset.sha256)
    path.parent.mkdir()
    path.write_bytes(server.blobs[asset.sha256])
    async with await AssetCache.open(root, client=client, limits=FAST) as opened:
        assert await (await opened.ensure([asset])).wait(timeout=20)
    assert server.requests_for(asset.sha256) == []


async def test_a_second_process_cannot_open_the_same_cache(root: Path) -> None:
    async with await AssetCache.open(root, client=None, limits=FAST):
        with pytest.raises(CacheBusy, match=str(os.getpid())):
            await AssetCache.open(root, client=None, limits=FAST)
    async with await AssetCache.open(root, client=None, limits=FAST):
        pass  # released on close


DOWNLOADER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    import httpx
    from cache import AssetCache, Limits
    from protocol import Asset

    async def main():
        root, base, sha, size = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
        async with httpx.AsyncClient(base_url=base) as client:
            cache = await AssetCache.open(root, client=client, limits=Limits(verify_after_start=False))
            readiness = await cache.ensure([Asset(sha256=sha, size=size, mime="video/mp4")])
            await readiness.wait()

    asyncio.run(main())
    """
)


async def test_a_process_killed_during_a_write_leaves_no_partial_object(
    root: Path, client: httpx.AsyncClient, server: AssetServer
) -> None:
    body = os.urandom(3 * 1024 * 1024)
    asset = asset_of(server, body, mime="video/mp4")
    server.faults.hold_after = 2 * 1024 * 1024  # the response stalls here until released
    server.faults.holds = 1
    part = Store(root).part_path(asset.sha256)
    args = [str(root), server.base_url, asset.sha256, str(len(body))]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DOWNLOADER, *args, cwd=Path(__file__).parents[2]
    )
    try:
        for _ in range(3000):
            if part.exists() and part.stat().st_size >= 1024 * 1024:
                break
            await asyncio.sleep(0.01)
        child.send_signal(signal.SIGKILL)  # mid-download: the server is still sending
    finally:
        await asyncio.wait_for(child.wait(), timeout=30)
        server.faults.release.set()
    assert part.stat().st_size >= 1024 * 1024
    assert not any(p.is_file() for p in (root / "objects").rglob("*"))
    async with await AssetCache.open(root, client=client, limits=FAST) as reopened:
        assert await (await reopened.ensure([asset])).wait(timeout=30)
        assert reopened.path_of(asset.sha256).read_bytes() == body
    last = server.requests_for(asset.sha256)[-1]
    assert last.range is not None and int(last.range[6:-1]) >= 1024 * 1024
