"""Console page for proof of play: plays per item, device and day, a chart, CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server._admin_devices import list_devices
from server._admin_reports import ImpressionDay, impression_days
from server._console_web import Console, enter

router = APIRouter(include_in_schema=False)
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_DAYS = 7
CHART_WIDTH = 720
CHART_HEIGHT = 200


def _range(console: Console) -> tuple[str, str]:
    today = dt.datetime.fromtimestamp(console.state.clock(), dt.UTC).date()
    since = console.request.query_params.get("from", "")
    until = console.request.query_params.get("to", "")
    if not DAY.fullmatch(until):
        until = today.isoformat()
    if not DAY.fullmatch(since):
        since = (dt.date.fromisoformat(until) - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    return min(since, until), max(since, until)


async def _rows(console: Console) -> tuple[str, str, list[ImpressionDay], dict[str, str]]:
    since, until = _range(console)
    device = console.request.query_params.get("device") or None
    rows = await impression_days(console.state, since, until, device)
    names = {
        d.id: d.name for d in await list_devices(console.state, console.state.admin_token_hash)
    }
    return since, until, rows, names


def chart(rows: list[ImpressionDay], since: str, until: str) -> dict[str, Any]:
    """Plays per day as bars; every day of the range has one, empty or not."""
    first, last = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    days = [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    days = days[-92:]  # at most a quarter on one chart
    per_day: dict[str, int] = defaultdict(int)
    for row in rows:
        per_day[row.day] += row.plays
    top = max([per_day[d] for d in days] + [1])
    slot = (CHART_WIDTH - 40) / len(days)
    bars = []
    for n, day in enumerate(days):
        height = round((CHART_HEIGHT - 30) * per_day[day] / top, 1)
        bars.append(
            {
                "x": round(40 + n * slot + slot * 0.1, 1),
                "w": round(slot * 0.8, 1),
                "y": round(CHART_HEIGHT - 20 - height, 1),
                "h": height,
                "day": day,
                "plays": per_day[day],
                "label": n % max(1, len(days) // 7) == 0,
            }
        )
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "top": top}


@router.get("/reports")
async def reports_page(request: Request) -> Response:
    console = await enter(request)
    since, until, rows, names = await _rows(console)
    per_item: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        total = per_item[(row.layout, row.item)]
        total[0] += row.plays
        total[1] += row.played_ms
    return console.render(
        "reports.html",
        title="Proof of play",
        since=since,
        until=until,
        rows=rows,
        names=names,
        per_item=sorted(per_item.items(), key=lambda kv: -kv[1][0]),
        chart=chart(rows, since, until),
        device=request.query_params.get("device", ""),
    )


@router.get("/reports/plays.csv")
async def reports_csv(request: Request) -> Response:
    console = await enter(request)
    since, until, rows, names = await _rows(console)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["day", "device_id", "device", "layout", "zone", "item", "plays", "played_s"])
    for row in rows:
        name = names.get(row.device_id, "")
        if name[:1] in ("=", "+", "-", "@"):
            name = "'" + name  # a spreadsheet must not run a name as a formula
        writer.writerow(
            [
                row.day,
                row.device_id,
                name,
                row.layout,
                row.zone,
                row.item,
                row.plays,
                f"{row.played_ms / 1000:.1f}",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="plays-{since}-{until}.csv"',
            "Cache-Control": "no-store",
        },
    )
