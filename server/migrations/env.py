"""Alembic's environment for the server's schema history (``server/migrations/versions``).

The server runs migrations itself (``server._migrations``: at start, under a lock, and with
``signage server migrate``) and hands its connection in through ``config.attributes``. A
developer's ``alembic -c server/migrations/alembic.ini -x url=... revision --autogenerate``
comes through here too, with the database named by ``-x url=``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from server._db import metadata


def _configure(**options: Any) -> None:
    # Batch mode: SQLite alters a table by copying it, and one history serves both engines.
    context.configure(target_metadata=metadata, render_as_batch=True, compare_type=True, **options)


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("name the database: alembic -x url=sqlite+aiosqlite:///scratch.sqlite3")
    return url


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := context.config.attributes.get("connection")) is not None:
    _run(given)
else:
    asyncio.run(_run_from_url(_url()))
