"""Admin API for proof of play: plays and played time per UTC day, device, layout, zone, item.

Plays are "start" events, played time the durations of "end" events, the day is the UTC date
the impression happened. The sums come from server._retention's daily table. Per hour
(``by=hour``: the share of airtime each item was given, against what its ``share`` asked) they
are summed from the raw impressions, which are kept ``server.impressions_keep_days``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
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
    hour: str | None = Field(None, description="by=hour: the UTC hour, e.g. 2026-11-21T10:00Z")
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


async def impression_hours(
    state: ServerState,
    since: str | None = None,
    until: str | None = None,
    device: str | None = None,
) -> list[ImpressionDay]:
    """Sums per UTC hour, from the raw impressions still kept."""
    raw = select(impressions.c.device_id, impressions.c.body)
    if device is not None:
        raw = raw.where(impressions.c.device_id == device)
    totals: dict[tuple[str, str, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    async with state.engine.connect() as conn:
        for row in await conn.execute(raw):
            dev, day, layout, zone, item = impression_key(row.device_id, row.body)
            if (since is not None and day < since) or (until is not None and day > until):
                continue
            at = dt.datetime.fromisoformat(row.body["at"]).astimezone(dt.UTC)
            hour = at.strftime("%Y-%m-%dT%H:00Z")
            add_impression(totals[(day, hour, dev, layout, zone, item)], row.body)
    return [
        ImpressionDay(
            day=day,
            hour=hour,
            device_id=dev,
            layout=layout,
            zone=zone,
            item=item,
            plays=p,
            played_ms=ms,
        )
        for (day, hour, dev, layout, zone, item), (p, ms) in sorted(totals.items())
    ][:REPORT_MAX_ROWS]


@router.get(
    "/api/v1/admin/impressions",
    response_model=list[ImpressionDay],
    response_model_exclude_none=True,
    responses=problem_doc(400, 401, 422),
)
async def impression_report(
    state: State,
    admin: Admin,
    since: Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN)] = None,
    until: Annotated[str | None, Query(alias="to", pattern=DAY_PATTERN)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    by: Literal["day", "hour"] = "day",
) -> list[ImpressionDay]:
    """Plays and played time per UTC day (``by=hour``: per hour, from the raw impressions
    still kept), device, layout, zone and item (at most 100 000 rows, oldest first)."""
    if by == "hour":
        return await impression_hours(state, since, until, device)
    return await impression_days(state, since, until, device)
