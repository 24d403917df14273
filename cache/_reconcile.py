"""Start-up: make the index and the files agree without reading any object's bytes.

Fast with tens of thousands of objects: one query, one directory walk with a stat per file.
Hashing is left to the background verification pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from cache._index import Index
from cache._store import Store
from cache._types import ObjectState

log = logging.getLogger(__name__)
UNKNOWN_MIME = "application/octet-stream"


@dataclass
class Known:
    """What the cache remembers of one asset."""

    size: int
    mime: str
    last_used: float
    verified_at: float | None = None


@dataclass
class Reconciled:
    ready: dict[str, int] = field(default_factory=dict)
    known: dict[str, Known] = field(default_factory=dict)
    protected: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    demoted: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


def reconcile(store: Store, index: Index) -> Reconciled:
    """Files that are whole and vouched for become ready; everything else is set straight.

    - a ready row whose file is gone (or has the wrong size) becomes missing;
    - an object without a ready row (a crash between rename and index write) is demoted to a
      part file, so its bytes are rehashed before it is trusted again;
    - rows left ``downloading`` by a killed process become missing; their part files stay
      for the resume.
    """
    result = Reconciled()
    rows = index.rows()
    on_disk = store.scan_objects()
    updates: list[dict[str, Any]] = []
    orphans: list[dict[str, Any]] = []
    for row in rows:
        sha = row["sha256"]
        size = int(row["size"])
        state = ObjectState(row["state"])
        used = row["last_used_at"] or row["fetched_at"] or 0.0
        result.known[sha] = Known(size, row["mime"], float(used), row["verified_at"])
        if row["references"]:
            result.protected.add(sha)
        if row["error"]:
            result.errors[sha] = row["error"]
        disk_size = on_disk.pop(sha, None)
        if state is ObjectState.READY and disk_size == size:
            result.ready[sha] = size
            continue
        if disk_size is not None:
            store.demote_object(sha)
            result.demoted.append(sha)
        if state is ObjectState.READY:
            result.lost.append(sha)
        if state in (ObjectState.READY, ObjectState.DOWNLOADING):
            updates.append({"sha256": sha, "state": ObjectState.MISSING.value})
    for sha, size in on_disk.items():
        store.demote_object(sha)
        result.demoted.append(sha)
        result.known[sha] = Known(size, UNKNOWN_MIME, 0.0)
        orphans.append(
            {"sha256": sha, "size": size, "mime": UNKNOWN_MIME, "state": ObjectState.MISSING.value}
        )
    index.update_many(updates)
    index.upsert_many(orphans)
    if result.demoted or result.lost:
        log.warning(
            "cache reconciled: %d object(s) to re-verify, %d lost",
            len(result.demoted),
            len(result.lost),
        )
    return result
