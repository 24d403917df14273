"""Admin API for proof of play: plays and played time per UTC day (or hour), device, layout,
zone, item.

Summed from the raw impressions at each request: plays are "start" events, played time the
durations of "end" events, the day (hour) is the UTC date (hour) the impression happened.
Per hour it shows the share of airtime an item was given (``share`` in the manifest) against
what it asked for.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from server._auth import Admin, State
from server._db import impressions
from server._problems import problem_doc
from server._state import ServerState

router = APIRouter(tags=["reports"])
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
    by: Literal["day", "hour"] = "day",
) -> list[ImpressionDay]:
    query = select(impressions.c.device_id, impressions.c.body)
    if device is not None:
        query = query.where(impressions.c.device_id == device)
    Key = tuple[str, str | None, str, str, str, str]
    totals: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    async with state.engine.connect() as conn:
        for row in await conn.execute(query):
            body = row.body
            at = dt.datetime.fromisoformat(body["at"]).astimezone(dt.UTC)
            day = at.date().isoformat()
            if (since is not None and day < since) or (until is not None and day > until):
                continue
            hour = at.strftime("%Y-%m-%dT%H:00Z") if by == "hour" else None
            total = totals[(day, hour, row.device_id, body["layout"], body["zone"], body["item"])]
            if body["event"] == "start":
                total[0] += 1
            else:
                total[1] += int(body.get("duration_ms") or 0)
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
        for (day, hour, dev, layout, zone, item), (p, ms) in sorted(
            totals.items(), key=lambda kv: tuple(x or "" for x in kv[0])
        )
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
    """Plays and played time per UTC day (``by=hour``: per hour), device, layout, zone and
    item (at most 100 000 rows, oldest first)."""
    return await impression_days(state, since, until, device, by)
