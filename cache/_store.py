"""The files of the cache and every blocking operation on them (callers use asyncio.to_thread).

    <root>/objects/ab/<sha256>      verified, read-only, complete by construction
    <root>/partial/<sha256>.part    bytes of a download in progress, kept for resume
    <root>/quarantine/<sha256>      the last copy that failed its hash check, for inspection
    <root>/index.db                 the sqlite index (WAL)
    <root>/lock                     flock held by the one process that owns the cache

A file reaches ``objects/`` only by ``rename`` from ``partial/`` after fsync and a hash check,
so a crash at any instant leaves either no object or a whole one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from cache._types import check_sha256
from core import CacheError, DiskFull, fsync_dir

BLOCK = 1024 * 1024
OBJECT_MODE = 0o444
IMPORT_PREFIX = ".import-"
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}


class HashCancelled(Exception):
    """A hash was abandoned because the cache is closing."""


def is_no_space(exc: OSError) -> bool:
    return exc.errno in _NO_SPACE


def hash_into(hasher: hashlib._Hash, path: Path, *, stop: threading.Event | None = None) -> int:
    """Feed the bytes of ``path`` to ``hasher``; return how many there were."""
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as handle:
        with contextlib.suppress(OSError, AttributeError):
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        while True:
            if stop is not None and stop.is_set():
                raise HashCancelled(str(path))
            count = handle.readinto(buffer)
            if not count:
                return total
            hasher.update(view[:count])
            total += count


def sha256_file(path: Path, *, stop: threading.Event | None = None) -> str:
    hasher = hashlib.sha256()
    hash_into(hasher, path, stop=stop)
    return hasher.hexdigest()


class Store:
    """Paths of the layout and the file operations that keep its guarantees."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.partial = self.root / "partial"
        self.quarantine = self.root / "quarantine"
        self.index_path = self.root / "index.db"
        self.lock_path = self.root / "lock"

    def create(self) -> None:
        for directory in (self.root, self.objects, self.partial, self.quarantine):
            directory.mkdir(parents=True, exist_ok=True)

    def object_path(self, sha: str) -> Path:
        check_sha256(sha)
        return self.objects / sha[:2] / sha

    def part_path(self, sha: str) -> Path:
        check_sha256(sha)
        return self.partial / f"{sha}.part"

    def promote(self, part: Path, sha: str) -> int:
        """Move a verified part file into ``objects/`` durably; return its size."""
        with open(part, "rb") as handle:
            os.fsync(handle.fileno())
            size = os.fstat(handle.fileno()).st_size
        part.chmod(OBJECT_MODE)
        target = self.object_path(sha)
        shard = target.parent
        new_shard = not shard.exists()
        shard.mkdir(exist_ok=True)
        try:
            part.replace(target)
            fsync_dir(shard)
            fsync_dir(part.parent)
            if new_shard:
                fsync_dir(self.objects)
        except OSError as exc:
            if is_no_space(exc):
                raise DiskFull(str(self.root)) from exc
            raise
        return size

    def copy_in(self, source: Path) -> tuple[Path, str]:
        """Copy ``source`` into a temp file of partial/ while hashing; return it and its sha."""
        tmp = self.partial / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
        hasher = hashlib.sha256()
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                while block := src.read(BLOCK):
                    dst.write(block)
                    hasher.update(block)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if is_no_space(exc):
                raise DiskFull(str(self.root)) from exc
            raise CacheError(f"cannot import {source}: {exc.strerror or exc}") from exc
        return tmp, hasher.hexdigest()

    def quarantine_file(self, path: Path, sha: str) -> bool:
        """Move a file that failed its hash check aside; False when it was already gone."""
        target = self.quarantine / sha
        try:
            path.chmod(0o644)
            path.replace(target)
        except FileNotFoundError:
            return False
        fsync_dir(path.parent)
        fsync_dir(self.quarantine)
        return True

    def remove_object(self, sha: str) -> bool:
        path = self.object_path(sha)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def demote_object(self, sha: str) -> None:
        """Turn an object the index does not vouch for back into a part file.

        The bytes were verified before their rename but the index row was lost (a crash in
        between): the fetcher rehashes them and, when they match, promotes them again
        without downloading anything.
        """
        part = self.part_path(sha)
        source = self.object_path(sha)
        source.chmod(0o644)
        source.replace(part)

    def scan_objects(self) -> dict[str, int]:
        """sha256 -> size of every object file; anything else in objects/ is removed."""
        found: dict[str, int] = {}
        if not self.objects.is_dir():
            return found
        for shard in os.scandir(self.objects):
            if not shard.is_dir(follow_symlinks=False):
                _remove_quietly(Path(shard.path))
                continue
            for entry in os.scandir(shard.path):
                name = entry.name
                if (
                    entry.is_file(follow_symlinks=False)
                    and len(name) == 64
                    and name.startswith(shard.name)
                    and _is_hex(name)
                ):
                    found[name] = entry.stat(follow_symlinks=False).st_size
                else:
                    _remove_quietly(Path(entry.path))
        return found

    def scan_partials(self) -> dict[str, int]:
        found: dict[str, int] = {}
        if not self.partial.is_dir():
            return found
        for entry in os.scandir(self.partial):
            sha, dot, suffix = entry.name.partition(".")
            if dot and suffix == "part" and len(sha) == 64 and _is_hex(sha):
                found[sha] = entry.stat(follow_symlinks=False).st_size
        return found

    def remove_partials(self, keep: Callable[[str], bool]) -> int:
        """Remove the files of partial/ whose name ``keep`` rejects; return the bytes freed."""
        freed = 0
        if not self.partial.is_dir():
            return freed
        for entry in os.scandir(self.partial):
            if keep(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                size = entry.stat(follow_symlinks=False).st_size
                Path(entry.path).unlink()
                freed += size
        return freed

    def clear_quarantine(self) -> int:
        freed = 0
        if not self.quarantine.is_dir():
            return freed
        for entry in os.scandir(self.quarantine):
            with contextlib.suppress(FileNotFoundError):
                size = entry.stat(follow_symlinks=False).st_size
                Path(entry.path).unlink()
                freed += size
        return freed


def _is_hex(name: str) -> bool:
    return all(c in "0123456789abcdef" for c in name)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                _remove_quietly(child)
            path.rmdir()
        else:
            path.unlink()
