"""The device's durable queues in ``<state dir>/sync.db`` (sqlite-utils, WAL, synchronous=FULL).

- ``ImpressionQueue``: proof of play is written here first and deleted only once the server
  acknowledged it, so a kill -9 or a power cut loses nothing already recorded. Bounded: past
  ``max_rows`` the oldest rows are dropped and counted (the count goes into the heartbeat).
- ``CommandLedger``: the id of every command ever started, so a command delivered twice (SSE
  replay, heartbeat, after a restart) runs once; results wait here until acknowledged.

Every method is blocking: callers on the event loop go through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from core import SyncError
from protocol import Command, CommandResult, Impression

DB_FILE = "sync.db"
MAX_IMPRESSIONS = 100_000
MAX_COMMAND_IDS = 10_000


class SyncDatabase:
    """The connection and the lock every user takes: worker threads never overlap, and
    ``close`` waits for a statement still running in a thread whose task was cancelled."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.closed = False

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.db.close()


def open_database(state_dir: Path) -> SyncDatabase:
    path = Path(state_dir) / DB_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed row survives a power cut, not only a crash of the process.
    conn.execute("PRAGMA synchronous=FULL")
    db = sqlite_utils.Database(conn)
    with db.atomic():
        db.table("impressions").create(
            {"seq": int, "id": str, "body": str}, pk="seq", if_not_exists=True
        )
        db.table("impressions").create_index(["id"], unique=True, if_not_exists=True)
        db.table("counters").create({"name": str, "value": int}, pk="name", if_not_exists=True)
        db.table("commands").create(
            {"id": str, "name": str, "received_at": str, "result": str, "acked": int},
            pk="id",
            not_null={"received_at"},
            if_not_exists=True,
        )
    return SyncDatabase(db)


class _Locked:
    def __init__(self, database: SyncDatabase) -> None:
        self.database = database
        self.db = database.db
        self.lock = database.lock

    @contextlib.contextmanager
    def _use(self) -> Iterator[None]:
        with self.lock:
            if self.database.closed:
                raise SyncError("the sync database is closed (the daemon is stopping)")
            yield


class ImpressionQueue(_Locked):
    def __init__(self, database: SyncDatabase, *, max_rows: int = MAX_IMPRESSIONS) -> None:
        super().__init__(database)
        self.max_rows = max_rows

    def add(self, impressions: list[Impression]) -> int:
        """Store ``impressions``; returns how many old ones were dropped to stay bounded."""
        rows = [{"id": i.id, "body": i.model_dump_json()} for i in impressions]
        with self._use(), self.db.atomic():
            self.db.table("impressions").insert_all(rows, ignore=True)
            count: int = self.db.execute("SELECT count(*) FROM impressions").fetchone()[0]
            excess = count - self.max_rows
            if excess <= 0:
                return 0
            self.db.execute(
                "DELETE FROM impressions WHERE seq IN "
                "(SELECT seq FROM impressions ORDER BY seq LIMIT ?)",
                [excess],
            )
            self.db.execute(
                "INSERT INTO counters(name, value) VALUES ('impressions_dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                [excess],
            )
            return excess

    def peek(self, limit: int) -> list[Impression]:
        with self._use():
            rows = self.db.execute(
                "SELECT body FROM impressions ORDER BY seq LIMIT ?", [limit]
            ).fetchall()
        return [Impression.model_validate_json(body) for (body,) in rows]

    def remove(self, ids: list[str]) -> None:
        with self._use(), self.db.atomic():
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                marks = ",".join("?" * len(part))
                self.db.execute(f"DELETE FROM impressions WHERE id IN ({marks})", part)  # noqa: S608

    def clear(self) -> int:
        """Drop every queued impression (they belong to an identity the server revoked)."""
        with self._use(), self.db.atomic():
            return self.db.execute("DELETE FROM impressions").rowcount

    def __len__(self) -> int:
        with self._use():
            count: int = self.db.execute("SELECT count(*) FROM impressions").fetchone()[0]
        return count

    @property
    def dropped(self) -> int:
        with self._use():
            row = self.db.execute(
                "SELECT value FROM counters WHERE name = 'impressions_dropped'"
            ).fetchone()
        return int(row[0]) if row else 0


class CommandLedger(_Locked):
    def claim(self, command: Command) -> bool:
        """Record ``command`` as started; False when its id was seen before (do not run it)."""
        now = dt.datetime.now(dt.UTC).isoformat()
        with self._use(), self.db.atomic():
            seen = self.db.execute("SELECT 1 FROM commands WHERE id = ?", [command.id]).fetchone()
            if seen:
                return False
            self.db.table("commands").insert(
                {"id": command.id, "name": command.name, "received_at": now, "acked": 0}
            )
            self.db.execute(
                "DELETE FROM commands WHERE id IN (SELECT id FROM commands "
                "ORDER BY received_at DESC LIMIT -1 OFFSET ?)",
                [MAX_COMMAND_IDS],
            )
            return True

    def record_result(self, command_id: str, result: CommandResult) -> None:
        with self._use(), self.db.atomic():
            self.db.execute(
                "UPDATE commands SET result = ? WHERE id = ?",
                [result.model_dump_json(), command_id],
            )

    def mark_acked(self, command_id: str) -> None:
        with self._use(), self.db.atomic():
            self.db.execute("UPDATE commands SET acked = 1 WHERE id = ?", [command_id])

    def unacked(self) -> list[tuple[str, CommandResult | None]]:
        """Commands whose result the server has not confirmed; None: interrupted mid-run."""
        with self._use():
            rows: list[Any] = self.db.execute(
                "SELECT id, result FROM commands WHERE acked = 0 ORDER BY received_at"
            ).fetchall()
        return [(cid, CommandResult.model_validate_json(r) if r else None) for cid, r in rows]
