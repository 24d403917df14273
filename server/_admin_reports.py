"""Admin API for proof of play: plays and played time per UTC day, device, layout, zone, item.

Plays are "start" events, played time the durations of "end" events, the day is the UTC date
the impression happened. The sums come from server._retention's daily table.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from server._auth import Admin, State
from server._bodies import JsonRoute
from server._db import daily_impressions, impressions
from server._problems import problem_doc
from server._retention import add_impression, impression_key
from server._state import ServerState

router = APIRouter(tags=["reports"], route_class=JsonRoute)
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


async def impression_days(
    state: ServerState,
    since: str | None = None,
    until: str | None = None,
    device: str | None = None,
) -> list[ImpressionDay]:
    """The daily sums the sweeper keeps, plus the impressions it has not summed yet: the
    report is current, and stays whole after raw rows are pruned (server._retention)."""
    t = daily_impressions.c
    summed = select(daily_impressions)
    fresh = select(impressions.c.device_id, impressions.c.body).where(
        impressions.c.summed_at.is_(None)
    )
    if since is not None:
        summed = summed.where(t.day >= since)
    if until is not None:
        summed = summed.where(t.day <= until)
    if device is not None:
        summed = summed.where(t.device_id == device)
        fresh = fresh.where(impressions.c.device_id == device)
    totals: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    async with state.engine.connect() as conn:
        for row in await conn.execute(summed):
            total = totals[(row.day, row.device_id, row.layout, row.zone, row.item)]
            total[0] += row.plays
            total[1] += row.played_ms
        for row in await conn.execute(fresh):
            dev, day, layout, zone, item = impression_key(row.device_id, row.body)
            if (since is None or day >= since) and (until is None or day <= until):
                add_impression(totals[(day, dev, layout, zone, item)], row.body)
    return [
        ImpressionDay(
            day=day, device_id=dev, layout=layout, zone=zone, item=item, plays=p, played_ms=ms
        )
        for (day, dev, layout, zone, item), (p, ms) in sorted(totals.items())
    ][:REPORT_MAX_ROWS]


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
    return await impression_days(state, since, until, device)
