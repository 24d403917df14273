"""Admin API for proof of play: plays and played time per UTC day, device, layout, zone, item.

Summed from the raw impressions at each request: plays are "start" events, played time the
durations of "end" events, the day is the UTC date the impression happened.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
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
    query = select(impressions.c.device_id, impressions.c.body)
    if device is not None:
        query = query.where(impressions.c.device_id == device)
    totals: dict[tuple[str, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    async with state.engine.connect() as conn:
        for row in await conn.execute(query):
            body = row.body
            day = dt.datetime.fromisoformat(body["at"]).astimezone(dt.UTC).date().isoformat()
            if (since is not None and day < since) or (until is not None and day > until):
                continue
            total = totals[(day, row.device_id, body["layout"], body["zone"], body["item"])]
            if body["event"] == "start":
                total[0] += 1
            else:
                total[1] += int(body.get("duration_ms") or 0)
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
