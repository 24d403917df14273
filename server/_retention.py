"""What the server keeps, and for how long: proof of play summed per day, then pruned; old
commands pruned. The sweeper runs both; server._admin_reports reads the daily sums.

Raw impressions are summed into ``daily_impressions`` (plays = "start" events, played_ms = the
durations of "end" events, per device, UTC day, layout, zone and item) as soon as the sweeper
sees them, so the report is current. The raw rows stay ``server.impressions_keep_days``
(default 90) after they arrived, because they are what recognises a batch a device sends
again; then they are deleted. A batch retried after that long would be counted twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update

from server._db import commands, daily_impressions, impressions
from server._state import ServerState

DAY_S = 86_400.0
SUM_BATCH = 5_000
SUM_BATCHES_PER_PASS = 20  # a sweeper pass stays short; a backlog is worked off over passes


_Key = tuple[str, str, str, str, str]


def impression_key(device_id: str, body: dict[str, Any]) -> _Key:
    """(device, UTC day, layout, zone, item) of a raw impression's body."""
    at = dt.datetime.fromisoformat(body["at"]).astimezone(dt.UTC)
    return device_id, at.date().isoformat(), body["layout"], body["zone"], body["item"]


def add_impression(total: list[int], body: dict[str, Any]) -> None:
    """Count one raw impression into [plays, played_ms]."""
    if body["event"] == "start":
        total[0] += 1
    else:
        total[1] += int(body.get("duration_ms") or 0)


async def sum_impressions(state: ServerState) -> int:
    """Add impressions not summed yet to the daily table; the number of rows summed."""
    summed = 0
    for _ in range(SUM_BATCHES_PER_PASS):
        async with state.writer.begin() as conn:
            rows = (
                await conn.execute(
                    select(impressions.c.id, impressions.c.device_id, impressions.c.body)
                    .where(impressions.c.summed_at.is_(None))
                    .limit(SUM_BATCH)
                )
            ).all()
            if not rows:
                break
            totals: dict[_Key, list[int]] = defaultdict(lambda: [0, 0])
            for row in rows:
                add_impression(totals[impression_key(row.device_id, row.body)], row.body)
            for key, (plays, played_ms) in totals.items():
                await _add(conn, key, plays, played_ms)
            await conn.execute(
                update(impressions)
                .where(impressions.c.id.in_([r.id for r in rows]))
                .values(summed_at=state.clock())
            )
        summed += len(rows)
    return summed


async def _add(conn: Any, key: _Key, plays: int, played_ms: int) -> None:
    t = daily_impressions.c
    where = and_(
        t.device_id == key[0],
        t.day == key[1],
        t.layout == key[2],
        t.zone == key[3],
        t.item == key[4],
    )
    changed = await conn.execute(
        update(daily_impressions)
        .where(where)
        .values(plays=t.plays + plays, played_ms=t.played_ms + played_ms)
    )
    if changed.rowcount == 0:
        device_id, day, layout, zone, item = key
        await conn.execute(
            insert(daily_impressions).values(
                device_id=device_id,
                day=day,
                layout=layout,
                zone=zone,
                item=item,
                plays=plays,
                played_ms=played_ms,
            )
        )


async def prune(state: ServerState) -> tuple[int, int]:
    """Delete summed impressions and finished or expired commands past their keep time."""
    now = state.clock()
    config = state.config
    impressions_cutoff = now - config.impressions_keep_days * DAY_S
    commands_cutoff = now - config.commands_keep_days * DAY_S
    async with state.writer.begin() as conn:
        old_impressions = await conn.execute(
            delete(impressions).where(
                impressions.c.received_at < impressions_cutoff, impressions.c.summed_at.is_not(None)
            )
        )
        old_commands = await conn.execute(
            delete(commands).where(
                or_(
                    commands.c.completed_at < commands_cutoff,
                    and_(
                        commands.c.completed_at.is_(None), commands.c.expires_at < commands_cutoff
                    ),
                )
            )
        )
    return old_impressions.rowcount, old_commands.rowcount
