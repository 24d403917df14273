from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from cache import AssetCache, Limits
from protocol import Asset
from tests.cache.assetserver import AssetServer

FAST = Limits(
    max_bytes=1 << 30,
    attempts=4,
    retry_base_s=0.01,
    retry_max_s=0.05,
    verify_after_start=False,
    disk_poll_s=0.05,
    min_free_bytes=0,
)


def asset_of(server: AssetServer, data: bytes, mime: str = "image/png") -> Asset:
    return Asset(sha256=server.add(data), size=len(data), mime=mime)


@pytest.fixture
def server() -> Iterator[AssetServer]:
    with AssetServer().running() as running:
        yield running


@pytest.fixture
async def client(server: AssetServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        yield http


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "state" / "cache"


@pytest.fixture
async def cache(root: Path, client: httpx.AsyncClient) -> AsyncIterator[AssetCache]:
    opened = await AssetCache.open(root, client=client, limits=FAST)
    try:
        yield opened
    finally:
        await opened.close()
