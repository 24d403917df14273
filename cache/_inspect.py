"""Read-only views of a cache directory, for operators (``signage cache ...``).

They never change anything, so they are safe while a player owns the cache.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from cache._index import Index
from cache._store import Store, sha256_file
from cache._types import ObjectState

CACHE_DIRNAME = "cache"


def cache_root(state_dir: Path) -> Path:
    """Where the cache lives inside a state directory."""
    return Path(state_dir) / CACHE_DIRNAME


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectInfo:
    sha256: str
    size: int
    mime: str
    state: ObjectState
    fetched_at: float | None
    last_used_at: float | None
    verified_at: float | None
    referenced: bool
    error: str | None


def list_objects(root: Path) -> list[ObjectInfo]:
    """Every asset the index knows, most recently used first."""
    index = Index(Store(root).index_path, read_only=True)
    try:
        rows = index.rows()
    finally:
        index.close()
    infos = [
        ObjectInfo(
            sha256=row["sha256"],
            size=int(row["size"]),
            mime=row["mime"],
            state=ObjectState(row["state"]),
            fetched_at=row["fetched_at"],
            last_used_at=row["last_used_at"],
            verified_at=row["verified_at"],
            referenced=bool(row["references"]),
            error=row["error"],
        )
        for row in rows
    ]
    return sorted(infos, key=lambda i: i.last_used_at or i.fetched_at or 0.0, reverse=True)


def check_objects(root: Path, *, stop: threading.Event | None = None) -> list[str]:
    """Rehash every ready object without touching anything; the shas that do not match."""
    store = Store(root)
    corrupt = []
    for info in list_objects(root):
        if info.state is not ObjectState.READY:
            continue
        try:
            actual = sha256_file(store.object_path(info.sha256), stop=stop)
        except FileNotFoundError:
            actual = ""
        if actual != info.sha256:
            corrupt.append(info.sha256)
    return corrupt
