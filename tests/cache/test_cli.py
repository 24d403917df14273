"""``signage cache ls|stats|verify|gc`` against a real cache directory."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest

from cache import AssetCache, cache_root
from tests.cache.conftest import FAST
from tests.cache.test_verify import flip_a_byte
from tools import main


async def cli(*argv: str) -> int:
    """The command runs its own event loop, as from a shell: give it a thread."""
    return await asyncio.to_thread(main, list(argv))


async def _filled(state: Path, tmp_path: Path, count: int) -> list[str]:
    shas = []
    async with await AssetCache.open(cache_root(state), client=None, limits=FAST) as store:
        for n in range(count):
            source = tmp_path / f"asset{n}.png"
            source.write_bytes(f"asset number {n}".encode() * 100)
            shas.append(await store.import_file(source))
        store.protect(shas[:1])
    return shas


async def test_ls_and_stats_list_what_is_cached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    shas = await _filled(state, tmp_path, 3)
    assert await cli("cache", "ls", "--data-dir", str(state)) == 0
    out = capsys.readouterr().out
    for sha in shas:
        assert f"{sha}  ready" in out
    assert out.count(" yes") == 1
    assert await cli("cache", "stats", "--data-dir", str(state)) == 0
    out = capsys.readouterr().out
    assert "ready:       3" in out
    assert "referenced:  1" in out


async def test_verify_names_each_corrupt_object_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    shas = await _filled(state, tmp_path, 3)
    assert await cli("cache", "verify", "--data-dir", str(state)) == 0
    assert "3 object(s) verified, all intact" in capsys.readouterr().out
    objects = cache_root(state) / "objects"
    flip_a_byte(objects / shas[1][:2] / shas[1], offset=5)
    flip_a_byte(objects / shas[2][:2] / shas[2], offset=5)

    # While a player owns the cache, verify only reads.
    async with await AssetCache.open(cache_root(state), client=None, limits=FAST):
        assert await cli("cache", "verify", "--data-dir", str(state)) == 1
    captured = capsys.readouterr()
    assert sorted(captured.out.split()) == sorted(["corrupt", shas[1], "corrupt", shas[2]])
    assert "running player" in captured.err
    assert (objects / shas[1][:2] / shas[1]).exists()

    # Without one, it quarantines what it finds.
    assert await cli("cache", "verify", "--data-dir", str(state)) == 1
    assert f"corrupt {shas[1]}" in capsys.readouterr().out
    assert not (objects / shas[1][:2] / shas[1]).exists()
    assert await cli("cache", "verify", "--data-dir", str(state)) == 0


async def test_gc_trims_to_the_configured_budget_sparing_referenced_assets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    shas = await _filled(state, tmp_path, 3)
    config = tmp_path / "player.toml"
    config.write_text("[cache]\nmax_bytes = 1048576\n")
    assert await cli("cache", "gc", "--config", str(config), "--data-dir", str(state)) == 0
    assert "freed 0 bytes" in capsys.readouterr().out
    tight = dataclasses.replace(FAST, max_bytes=0)
    async with await AssetCache.open(cache_root(state), client=None, limits=tight) as store:
        await store.gc()
        assert [s for s in shas if store.is_ready(s)] == shas[:1]
    assert await cli("cache", "gc", "--data-dir", str(tmp_path / "elsewhere")) == 1
    assert "no cache at" in capsys.readouterr().err
    async with await AssetCache.open(cache_root(state), client=None, limits=FAST):
        assert await cli("cache", "gc", "--data-dir", str(state)) == 1
    assert f"in use by another process (pid {os.getpid()})" in capsys.readouterr().err


async def test_ls_of_a_directory_without_a_cache_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("cache", "ls", "--data-dir", str(tmp_path)) == 1
    assert "no cache index at" in capsys.readouterr().err
