"""Schema migrations: one Alembic history (``server/migrations``) for SQLite and PostgreSQL.

The server brings its database to the newest revision when it starts (``server.auto_migrate``)
and ``signage server migrate`` does it on demand. Both hold a lock while they look and change,
so replicas starting at once migrate once: a PostgreSQL advisory lock, or a lock file beside
the SQLite database. Whoever gets the lock second finds the work done.

- An empty database is created whole from the tables in ``server._db`` and stamped with the
  newest revision (``tests/server/test_migrations.py`` checks that the history builds the
  same schema).
- A database from before migrations existed (tables, no ``alembic_version``) is adopted: it is
  stamped with the first revision, the release's schema, and upgraded from there. The
  revisions that follow it add only what is missing, because such a database may hold any part
  of them (the server added tables and the ``probe`` column at start before there were
  migrations).
- A database newer than this code (a revision the history does not know) is refused: an older
  server must not write to a schema it does not understand.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import io
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from core import ServerError
from server._db import metadata, new_engine

log = logging.getLogger("signage.server")
SCRIPTS = Path(__file__).parent / "migrations"
RELEASE_REVISION = "0001"  # the schema of the release before migrations: adoption starts here
ADVISORY_LOCK = 0x5349_474E_4D49  # "SIGNMI": one key for every signage database
VERSION_TABLE = "alembic_version"


class MigrationError(ServerError):
    """The database cannot be brought to this server's schema (the message says why)."""


@dataclass(frozen=True)
class Migrated:
    """What a migration run did: ``before`` is None for an empty or adopted database."""

    before: str | None
    after: str
    created: bool = False  # an empty database, made whole
    adopted: bool = False  # a database from before migrations

    def describe(self) -> str:
        if self.created:
            return f"created the schema at revision {self.after}"
        start = "adopted a database from before migrations" if self.adopted else None
        if self.before == self.after:
            return f"already at revision {self.after}"
        moved = f"upgraded from {self.before or RELEASE_REVISION} to {self.after}"
        return f"{start}; {moved}" if start else moved


def alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _scripts() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    heads: tuple[str, ...] = _scripts().get_heads()
    if len(heads) != 1:
        raise MigrationError(f"the migration history has {len(heads)} heads: {heads}")
    return heads[0]


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    revision: str | None = MigrationContext.configure(connection).get_current_revision()
    return revision


def _known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _stamp(connection: Connection, revision: str) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(connection).stamp(_scripts(), revision)


def _upgrade_locked(connection: Connection, target: str) -> Migrated:
    """Inside the lock and one transaction: look at the database, then bring it to ``target``."""
    from alembic import command

    tables = set(inspect(connection).get_table_names()) - {VERSION_TABLE}
    before = _current(connection)
    adopted = False
    if before is None:
        if not tables:
            if target != "head" and target != head():
                raise MigrationError("an empty database can only be created at the newest revision")
            metadata.create_all(connection)
            _stamp(connection, "head")
            return Migrated(None, head(), created=True)
        if "devices" not in tables:
            names = ", ".join(sorted(tables)[:5])
            raise MigrationError(
                f"the database holds tables that are not signage's ({names}): give the server "
                "a database of its own (server.database_url)"
            )
        _stamp(connection, RELEASE_REVISION)
        adopted = True
    elif not _known(before):
        raise MigrationError(
            f"the database is at revision {before}, which this server does not know (its newest "
            f"is {head()}): a newer release migrated it; run that release"
        )
    command.upgrade(alembic_config(connection), target)
    after = _current(connection)
    return Migrated(before, after or RELEASE_REVISION, adopted=adopted)


def _lock_path(engine: AsyncEngine) -> Path | None:
    database = make_url(str(engine.url)).database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + ".migrate-lock")


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    with await asyncio.to_thread(open, path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another server to finish migrating %s", path.parent)
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def upgrade(engine: AsyncEngine, target: str = "head") -> Migrated:
    """Bring the database to ``target`` (the newest revision by default), under the lock."""
    lock = _lock_path(engine)
    if lock is not None:
        async with _file_lock(lock), engine.begin() as conn:
            return await conn.run_sync(_upgrade_locked, target)
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # Held by the session, so it outlasts the migration's transaction; waits.
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK})
            await conn.commit()
        try:
            async with conn.begin():
                return await conn.run_sync(_upgrade_locked, target)
        finally:
            if engine.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK})
                await conn.commit()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def require_current(engine: AsyncEngine) -> None:
    """With ``server.auto_migrate = false``: refuse to serve a schema that is not the newest."""
    current = await current_revision(engine)
    if current != head():
        raise MigrationError(
            f"the database is at revision {current or 'none (not migrated)'}, this server "
            f"needs {head()}: run 'signage server migrate' (server.auto_migrate is off)"
        )


async def migrate_database(url: str, *, check: bool = False) -> Migrated:
    """``signage server migrate``: upgrade the database at ``url`` (``check``: only say whether
    it is at the newest revision, ``MigrationError`` when not)."""
    engine = new_engine(url)
    try:
        if check:
            await require_current(engine)
            return Migrated(head(), head())
        return await upgrade(engine)
    finally:
        await engine.dispose()


def migration_sql(url: str, start: str | None) -> str:
    """The SQL that brings a PostgreSQL database from revision ``start`` (None: empty) to the
    newest, for a DBA to review or run; ``signage server migrate --sql``."""
    if not url.startswith("postgresql"):
        raise MigrationError(
            "--sql writes PostgreSQL's migration for review; SQLite migrates itself "
            "(signage server migrate, or at start)"
        )
    if start is not None and not _known(start):
        raise MigrationError(f"--from {start}: no such revision (the newest is {head()})")
    return upgrade_sql(url, start)


def upgrade_sql(url: str, start: str | None, target: str = "head") -> str:
    """The SQL that would bring a database at ``start`` (None: empty) to ``target``, for a DBA
    to review or run. It assumes the database matches its revision (a database from before
    migrations is adopted by ``upgrade``, which looks at what it holds)."""
    from alembic import command

    config = alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    out = io.StringIO()
    config.output_buffer = out
    command.upgrade(config, f"{start}:{target}" if start else target, sql=True)
    return out.getvalue()


# --- for revisions that follow the release schema --------------------------------------------


def _inspector() -> Any:
    from alembic import op

    if op.get_context().as_sql:
        return None  # offline (--sql): the database is not there to look at
    return inspect(op.get_bind())


def missing_table(name: str) -> bool:
    found = _inspector()
    return found is None or name not in found.get_table_names()


def missing_columns(table: str, names: Iterable[str]) -> list[str]:
    found = _inspector()
    have = set() if found is None else {c["name"] for c in found.get_columns(table)}
    return [name for name in names if name not in have]


def missing_index(table: str, name: str) -> bool:
    found = _inspector()
    return found is None or name not in {i["name"] for i in found.get_indexes(table)}


async def open_database(url: str, *, migrate: bool = True) -> AsyncEngine:
    """The engine, with the schema brought to the newest revision ;
    with ``migrate=False``, refused unless it already is."""
    engine = new_engine(url)
    try:
        if migrate:
            migrated = await upgrade(engine)
            if migrated.before != migrated.after:
                log.info("database: %s", migrated.describe())
        else:
            await require_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
