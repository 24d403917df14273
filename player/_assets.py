"""Where verified assets come from: the cache, or a plain directory for ``signage play``."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from core import CacheError

log = logging.getLogger(__name__)

AssetListener = Callable[[str], None]


@runtime_checkable
class AssetSource(Protocol):
    """Verified asset files by sha256. ``cache.AssetCache`` is one.

    ``add_listener(cb)``: ``cb(sha256)`` runs on the event-loop thread whenever an asset becomes
    ready or stops being ready (quarantined, evicted); the player then re-resolves its schedule.
    """

    def is_ready(self, sha256: str) -> bool: ...

    def path_of(self, sha256: str) -> Path: ...

    def add_listener(self, callback: AssetListener) -> None: ...


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class DirectoryAssets:
    """Files in a directory, named anything, served by the sha256 of their bytes.

    ``scan()`` hashes every regular file once (call it off the loop); only files whose hash is
    wanted are kept. ``path_of`` re-checks size and mtime, so a file replaced after the scan is
    refused rather than shown under the old hash.
    """

    def __init__(self, root: Path, wanted: Iterable[str] | None = None) -> None:
        self.root = root
        self._wanted = None if wanted is None else frozenset(wanted)
        self._files: dict[str, tuple[Path, int, int]] = {}
        self._listeners: list[AssetListener] = []

    def scan(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise CacheError(f"asset directory not found: {self.root}")
        found: dict[str, tuple[Path, int, int]] = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file():
                continue
            stat = path.stat()
            sha = sha256_of(path)
            if self._wanted is None or sha in self._wanted:
                found.setdefault(sha, (path, stat.st_size, stat.st_mtime_ns))
        self._files = found
        if self._wanted is not None:
            for sha in sorted(self._wanted - found.keys()):
                log.warning("asset missing from directory", extra={"fields": {"sha256": sha}})
        return {sha: entry[0] for sha, entry in found.items()}

    def _unchanged(self, sha256: str) -> Path | None:
        entry = self._files.get(sha256)
        if entry is None:
            return None
        path, size, mtime = entry
        try:
            stat = path.stat()
        except OSError:
            return None
        return path if (stat.st_size, stat.st_mtime_ns) == (size, mtime) else None

    def is_ready(self, sha256: str) -> bool:
        return self._unchanged(sha256) is not None

    def path_of(self, sha256: str) -> Path:
        path = self._unchanged(sha256)
        if path is None:
            raise CacheError(f"asset {sha256} is not available (missing or changed since hashed)")
        return path

    def add_listener(self, callback: AssetListener) -> None:
        self._listeners.append(callback)
