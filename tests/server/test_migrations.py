"""Schema migrations on both engines: the history builds today's schema, a database made by the
release before migrations is upgraded with nothing lost, replicas starting at once migrate once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from server import create_app
from server._db import metadata
from server._migrations import (
    RELEASE_REVISION,
    MigrationError,
    alembic_config,
    head,
    open_database,
    upgrade,
)
from tests.conftest import Backend
from tests.server import release_schema as release
from tests.server.conftest import ADMIN_TOKEN, make_settings

REPO = Path(__file__).parents[2]
NOW = 1_790_000_000.0
TOKEN = "release-device-token-0123456789"
SHA = "ab" * 32


def _url(backend: Backend, tmp_path: Path, name: str = "db") -> str:
    return backend.new_database() or f"sqlite+aiosqlite:///{tmp_path / f'{name}.sqlite3'}"


def _engine(url: str) -> AsyncEngine:
    return create_async_engine(url)


async def _differences(engine: AsyncEngine) -> list[Any]:
    def compare(conn: Any) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def _alembic(engine: AsyncEngine, action: str, target: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: getattr(command, action)(alembic_config(c), target))


async def test_the_history_builds_the_schema_the_server_declares(
    backend: Backend, tmp_path: Path
) -> None:
    """A new revision forgotten (or wrong) shows here: the tables in server/_db.py and what the
    migrations make must not differ, and every revision can be undone."""
    engine = _engine(_url(backend, tmp_path))
    try:
        await _alembic(engine, "upgrade", "head")
        assert await _differences(engine) == []
        await _alembic(engine, "downgrade", "base")
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert set(left) <= {"alembic_version"}
        await _alembic(engine, "upgrade", "head")
        assert await _differences(engine) == []
    finally:
        await engine.dispose()


async def test_an_empty_database_is_created_whole_at_the_newest_revision(
    backend: Backend, tmp_path: Path
) -> None:
    engine = _engine(_url(backend, tmp_path))
    try:
        migrated = await upgrade(engine)
        assert migrated.created and migrated.after == head()
        assert await _differences(engine) == []
        again = await upgrade(engine)
        assert (again.before, again.after, again.created) == (head(), head(), False)
    finally:
        await engine.dispose()


def _release_rows() -> dict[str, list[dict[str, Any]]]:
    """What the release stored, one or more rows in every table."""
    image = {"id": "i1", "type": "image", "asset": SHA, "duration_ms": 5000}
    return {
        "groups": [{"id": "lobby", "name": "Lobby", "schedule": ["s1"], "default_layout": "l1"}],
        "devices": [
            {
                "id": "dev_1",
                "name": "Entrance",
                "hardware_id": "hw-release-1",
                "model": "Pi 4",
                "resolution": "1920x1080",
                "player_version": "0.1.0",
                "token_hash": hashlib.sha256(TOKEN.encode()).hexdigest(),
                "group_id": "lobby",
                "status": "offline",
                "last_seen": NOW - 60,
                "manifest_version": 3,
                "manifest_digest": "d" * 64,
                "created_at": NOW - 86_400,
            },
            {
                "id": "dev_2",
                "name": "Café",
                "hardware_id": "hw-release-2",
                "token_hash": "e" * 64,
                "schedule": [],
                "default_layout": "l1",
                "timezone": "Europe/Paris",
                "status": "offline",
                "manifest_version": 1,
                "created_at": NOW - 3600,
                "revoked_at": NOW - 60,
            },
        ],
        "pairings": [
            {
                "id": "pr_1",
                "code": "123456",
                "hardware_id": "hw-waiting",
                "request": {"hardware_id": "hw-waiting"},
                "poll_token_hash": "f" * 64,
                "status": "pending",
                "created_at": NOW - 10,
                "expires_at": NOW + 290,
            }
        ],
        "media": [
            {"sha256": SHA, "size": 68, "mime": "image/png", "name": "a.png", "created_at": NOW}
        ],
        "playlists": [{"id": "p1", "body": {"id": "p1", "items": [image]}, "updated_at": NOW}],
        "layouts": [
            {
                "id": "l1",
                "body": {"id": "l1", "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "p1"}]},
                "updated_at": NOW,
            }
        ],
        "schedules": [
            {
                "id": "s1",
                "body": {
                    "id": "s1",
                    "layout": "l1",
                    "priority": 10,
                    "from": "08:00",
                    "to": "18:00",
                },
                "updated_at": NOW,
            }
        ],
        "commands": [
            {
                "id": "cmd_1",
                "device_id": "dev_1",
                "name": "identify",
                "args": {"seconds": 5},
                "created_at": NOW - 100,
                "expires_at": NOW + 3500,
                "completed_at": NOW - 50,
                "result": {"ok": True},
            }
        ],
        "impressions": [
            {
                "id": f"imp_{n}",
                "device_id": "dev_1",
                "body": {
                    "id": f"imp_{n}",
                    "at": "2026-09-21T08:00:00+00:00",
                    "layout": "l1",
                    "zone": "z",
                    "item": "i1",
                    "event": "start",
                },
                "received_at": NOW - n,
            }
            for n in range(3)
        ],
        "uploads": [
            {
                "id": "up_1",
                "size": 1000,
                "sha256": None,
                "name": "half.png",
                "ranges": [[0, 500]],
                "status": "open",
                "created_at": NOW,
                "expires_at": NOW + 86_400,
            }
        ],
    }


async def _make_release_database(url: str, extra: str | None = None) -> dict[str, Any]:
    """The release's create_all, then its rows; ``extra``: a later pre-migration start that
    added a table of its own (what the server did before there were migrations)."""
    rows = _release_rows()
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(release.metadata.create_all)
            for name in [t.name for t in release.metadata.sorted_tables]:
                for row in rows[name]:
                    await conn.execute(insert(release.metadata.tables[name]).values(**row))
            if extra is not None:
                await conn.run_sync(metadata.tables[extra].create)
    finally:
        await engine.dispose()
    return rows


async def _stored(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = _engine(url)
    try:
        async with engine.connect() as conn:
            found = {}
            for table in release.metadata.sorted_tables:
                columns = [metadata.tables[table.name].c[c.name] for c in table.columns]
                result = await conn.execute(select(*columns))
                found[table.name] = [dict(r._mapping) for r in result]
            return found
    finally:
        await engine.dispose()


def _same(rows: list[dict[str, Any]], stored: list[dict[str, Any]]) -> bool:
    def canonical(row: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True)

    return sorted(map(canonical, rows)) == sorted(map(canonical, stored))


@pytest.mark.parametrize("extra", [None, "console_sessions", "interrupts"])
async def test_a_release_database_is_adopted_and_upgraded_with_nothing_lost(
    backend: Backend, tmp_path: Path, extra: str | None
) -> None:
    url = _url(backend, tmp_path)
    rows = await _make_release_database(url, extra)
    engine = await open_database(url)  # what the server does at start
    try:
        assert await _differences(engine) == []
        async with engine.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).one()
        assert version[0] == head()
    finally:
        await engine.dispose()
    stored = await _stored(url)
    for table, expected in rows.items():
        assert _same(expected, stored[table]), f"{table} changed in the upgrade"


async def test_a_release_database_serves_its_devices_and_content_after_the_upgrade(
    backend: Backend, tmp_path: Path
) -> None:
    url = _url(backend, tmp_path)
    await _make_release_database(url)
    settings = make_settings(**(backend.settings() | {"database_url": url}))
    app = create_app(settings, tmp_path / "srv", clock=lambda: NOW)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            listed = (await client.get("/api/v1/admin/devices", headers=admin)).json()
            assert [d["id"] for d in listed] == ["dev_1"]  # dev_2 was revoked
            assert listed[0]["group"] == "lobby"
            device = {"Authorization": f"Bearer {TOKEN}"}
            manifest = await client.get("/api/v1/device/manifest", headers=device)
            assert manifest.status_code == 200, manifest.text
            body = manifest.json()
            assert [a["sha256"] for a in body["assets"]] == [SHA]
            assert body["default_layout"] == "l1"
            commands = await client.get("/api/v1/admin/devices/dev_1/commands", headers=admin)
            assert commands.json()[0]["result"]["ok"] is True
            upload = await client.get("/api/v1/admin/uploads/up_1", headers=admin)
            assert upload.json()["received"] == [[0, 500]]


async def test_replicas_starting_at_once_migrate_once(backend: Backend, tmp_path: Path) -> None:
    url = _url(backend, tmp_path)
    await _make_release_database(url)
    engines = [_engine(url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(upgrade(e) for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(r.adopted for r in results) == 1
    assert all(r.after == head() for r in results)
    assert sorted(r.before or "" for r in results) == ["", head(), head(), head()]


async def test_a_database_newer_than_the_server_is_refused(
    backend: Backend, tmp_path: Path
) -> None:
    url = _url(backend, tmp_path)
    engine = _engine(url)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(MigrationError, match=r"9999.*newer release"):
            await upgrade(engine)
    finally:
        await engine.dispose()


async def test_a_database_of_someone_else_is_refused(backend: Backend, tmp_path: Path) -> None:
    url = _url(backend, tmp_path)
    engine = _engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        with pytest.raises(MigrationError, match="not signage's \\(invoices\\)"):
            await upgrade(engine)
    finally:
        await engine.dispose()


async def test_without_auto_migrate_an_old_schema_refuses_to_start(
    backend: Backend, tmp_path: Path
) -> None:
    url = _url(backend, tmp_path)
    await _make_release_database(url)
    with pytest.raises(MigrationError, match="signage server migrate"):
        await open_database(url, migrate=False)


def _signage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
        timeout=120,
    )


def test_signage_server_migrate_upgrades_checks_and_prints_sql(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'server.sqlite3'}"
    asyncio.run(_make_release_database(url))
    base = ["server", "migrate", "--data-dir", str(data)]
    check = _signage(*base, "--check")
    assert check.returncode == 1, check.stderr
    assert f"needs {head()}" in check.stderr
    done = _signage(*base)
    assert done.returncode == 0, done.stderr
    assert f"adopted a database from before migrations; upgraded from {RELEASE_REVISION}" in (
        done.stdout
    )
    assert _signage(*base, "--check").returncode == 0
    again = _signage(*base)
    assert f"already at revision {head()}" in again.stdout
    sql = _signage(*base, "--sql", "--from", RELEASE_REVISION)
    assert sql.returncode == 1 and "PostgreSQL" in sql.stderr  # SQLite migrates itself


def test_signage_server_migrate_sql_for_postgresql(tmp_path: Path) -> None:
    env = {"SIGNAGE_SERVER__DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/none", "PATH": ""}
    sql = _signage("server", "migrate", "--sql", "--data-dir", str(tmp_path), env=env)
    assert sql.returncode == 0, sql.stderr
    assert "CREATE TABLE devices" in sql.stdout
    assert f"UPDATE alembic_version SET version_num='{head()}'" in sql.stdout
    start = _signage(
        "server", "migrate", "--sql", "--from", "0005", "--data-dir", str(tmp_path), env=env
    )
    assert "CREATE TABLE devices" not in start.stdout
    assert "ALTER TABLE media ALTER COLUMN size TYPE BIGINT" in start.stdout
