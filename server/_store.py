"""Content-addressed media on disk: ``objects/ab/<sha256>`` (what a file is: ``server._probe``)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from core import fsync_dir

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COPY_CHUNK = 1024 * 1024


def object_path(root: Path, sha256: str) -> Path:
    """Where an object lives; the sha is validated, so no path can escape ``root``."""
    if not SHA256_RE.fullmatch(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return root / sha256[:2] / sha256


def hash_file(path: Path) -> tuple[str, int, bytes]:
    """(sha256, size, first 64 bytes), streaming: memory stays flat for any size."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            if not head:
                head = chunk[:64]
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, head


def adopt(root: Path, source: Path, sha256: str) -> Path:
    """Move a verified file into the store (deduplicated: an existing object wins)."""
    target = object_path(root, sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        source.unlink(missing_ok=True)
        return target
    with open(source, "rb+") as handle:
        os.fsync(handle.fileno())
    source.chmod(0o644)
    source.replace(target)
    fsync_dir(target.parent)
    return target
