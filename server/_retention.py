"""What the server keeps, and for how long: proof of play summed per day, then pruned; old
commands pruned. The sweeper runs both; the admin API reads the daily sums.

Raw impressions are summed into ``impression_days`` (plays = "start" events, played_ms = the
durations of "end" events, per device, UTC day, layout, zone and item) as soon as the sweeper
sees them, so the report is current. The raw rows stay ``server.impressions_keep_days``
(default 90) after they arrived, because they are what recognises a batch a device sends
again; then they are deleted. A batch retried after that long would be counted twice.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import and_, delete, insert, or_, select, update

from server._auth import Admin, State
from server._bodies import JsonRoute
from server._db import commands, impression_days, impressions
from server._problems import problem_doc
from server._state import ServerState

router = APIRouter(tags=["reports"], route_class=JsonRoute)
DAY_S = 86_400.0
SUM_BATCH = 5_000
SUM_BATCHES_PER_PASS = 20  # a sweeper pass stays short; a backlog is worked off over passes
REPORT_MAX_ROWS = 100_000
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


class ImpressionDay(BaseModel):
    day: str
    device_id: str
    layout: str
    zone: str
    item: str
    plays: int
    played_ms: int


_Key = tuple[str, str, str, str, str]


def _key(device_id: str, body: dict[str, Any]) -> _Key:
    at = dt.datetime.fromisoformat(body["at"]).astimezone(dt.UTC)
    return device_id, at.date().isoformat(), body["layout"], body["zone"], body["item"]


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
                total = totals[_key(row.device_id, row.body)]
                if row.body["event"] == "start":
                    total[0] += 1
                else:
                    total[1] += int(row.body.get("duration_ms") or 0)
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
    t = impression_days.c
    where = and_(
        t.device_id == key[0],
        t.day == key[1],
        t.layout == key[2],
        t.zone == key[3],
        t.item == key[4],
    )
    changed = await conn.execute(
        update(impression_days)
        .where(where)
        .values(plays=t.plays + plays, played_ms=t.played_ms + played_ms)
    )
    if changed.rowcount == 0:
        device_id, day, layout, zone, item = key
        await conn.execute(
            insert(impression_days).values(
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


@router.get(
    "/api/v1/admin/impressions",
    response_model=list[ImpressionDay],
    responses=problem_doc(400, 401, 422),
)
async def impression_report(
    state: State,
    admin: Admin,
    since: Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN)] = None,
    until: Annotated[str | None, Query(alias="to", pattern=DAY_PATTERN)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
) -> list[ImpressionDay]:
    """Plays and played time per UTC day, device, layout, zone and item (at most 100 000
    rows, oldest day first)."""
    t = impression_days.c
    query = select(impression_days).order_by(t.day, t.device_id, t.layout, t.zone, t.item)
    if since is not None:
        query = query.where(t.day >= since)
    if until is not None:
        query = query.where(t.day <= until)
    if device is not None:
        query = query.where(t.device_id == device)
    async with state.engine.connect() as conn:
        rows = await conn.execute(query.limit(REPORT_MAX_ROWS))
        return [ImpressionDay.model_validate(r._asdict()) for r in rows]
