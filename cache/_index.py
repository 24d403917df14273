"""The cache index: one sqlite-utils table, WAL, every write in ``db.atomic()``.

The files are the truth for *what exists*; the index is the truth for *what was verified*
and remembers size, mime, use and references across restarts. Calls are blocking: the cache
makes them through ``asyncio.to_thread``; a lock serialises the threads on one connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import NotFoundError

from cache._types import ObjectState
from core import CacheError, DiskFull

TABLE = "assets"
COLUMNS: dict[str, type] = {
    "sha256": str,
    "size": int,
    "mime": str,
    "state": str,
    "fetched_at": float,
    "last_used_at": float,
    "verified_at": float,
    "references": int,
    "error": str,
}


class Index:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if read_only:
            if not self.path.is_file():
                raise CacheError(f"no cache index at {self.path}")
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self.db = Database(conn)
            return
        try:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self.db = Database(conn)
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            with self.db.atomic():
                table = self.db.table(TABLE)
                if not table.exists():
                    self.db.create_table(
                        TABLE, COLUMNS, pk="sha256", not_null={"size", "mime", "state"}
                    )
                    self.db.execute("CREATE INDEX idx_assets_state ON assets(state)")
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"cannot open the cache index {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Database]:
        with self._lock:
            try:
                with self.db.atomic():
                    yield self.db
            except sqlite3.OperationalError as exc:
                if "full" in str(exc):
                    raise DiskFull(str(self.path)) from exc
                raise CacheError(f"cache index write failed: {exc}") from exc

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.table(TABLE).rows)

    def row(self, sha: str) -> dict[str, Any] | None:
        with self._lock:
            found = list(self.db.table(TABLE).rows_where("sha256 = ?", [sha]))
        return found[0] if found else None

    def upsert_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Insert or update whole rows (sha256, size, mime, state at least)."""
        batch = [dict(r) for r in rows]
        if not batch:
            return
        with self._writing() as db:
            db.table(TABLE).upsert_all(batch, pk="sha256")

    def update(self, sha: str, **fields: Any) -> None:
        """Change some columns of an existing row; a row that is gone stays gone."""
        self.update_many([{"sha256": sha, **fields}])

    def update_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        batch = [dict(r) for r in rows]
        if not batch:
            return
        with self._writing() as db:
            table = db.table(TABLE)
            for row in batch:
                sha = row.pop("sha256")
                with contextlib.suppress(NotFoundError):
                    table.update(sha, row)

    def delete(self, shas: Iterable[str]) -> None:
        keys = list(shas)
        if not keys:
            return
        with self._writing() as db:
            for sha in keys:
                db.execute("DELETE FROM assets WHERE sha256 = ?", [sha])

    def set_references(self, protected: Iterable[str]) -> None:
        """Mark exactly ``protected`` as referenced by the current or next manifest."""
        shas = list(protected)
        with self._writing() as db:
            db.execute('UPDATE assets SET "references" = 0 WHERE "references" != 0')
            for sha in shas:
                db.execute('UPDATE assets SET "references" = 1 WHERE sha256 = ?', [sha])

    def touch(self, used: Mapping[str, float]) -> None:
        if not used:
            return
        with self._writing() as db:
            for sha, at in used.items():
                db.execute("UPDATE assets SET last_used_at = ? WHERE sha256 = ?", [at, sha])

    def count_by_state(self) -> dict[ObjectState, int]:
        with self._lock:
            cursor = self.db.execute("SELECT state, count(*) FROM assets GROUP BY state")
            return {ObjectState(state): count for state, count in cursor.fetchall()}

    def close(self) -> None:
        with self._lock:
            self.db.close()
