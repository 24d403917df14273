"""What the server keeps: impressions summed per day then pruned, old commands pruned, media
deleted on request (never while in use) with its file."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Table, func, select

from server import sweep_once
from server._db import commands, impressions
from tests.server.conftest import PNG, Ctx, device_headers

DAY = 86_400.0


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _impression(
    event: str, at: float, item: str = "i1", duration_ms: int | None = None
) -> dict[str, object]:
    body: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "layout": "l1",
        "zone": "main",
        "item": item,
        "event": event,
        "at": _iso(at),
    }
    if duration_ms is not None:
        body["duration_ms"] = duration_ms
    return body


async def _count(ctx: Ctx, table: Table) -> int:
    async with ctx.state.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_impressions_are_summed_per_day_and_raw_rows_pruned(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    day_start = ctx.clock.now - ctx.clock.now % DAY
    batch = [
        _impression("start", day_start + 10),
        _impression("end", day_start + 18, duration_ms=8000),
        _impression("start", day_start + 20),
        _impression("end", day_start + 28, duration_ms=8000),
        _impression("start", day_start + 30, item="i2"),
        _impression("start", day_start - 5),  # the day before
    ]
    r = await ctx.client.post(
        "/api/v1/device/impressions", json={"impressions": batch}, headers=device_headers(token)
    )
    assert r.json()["accepted"] == 6
    await sweep_once(ctx.state)
    report = await ctx.client.get("/api/v1/admin/impressions", headers=ctx.admin)
    assert report.status_code == 200, report.text
    rows = {(r["day"], r["item"]): r for r in report.json()}
    today = dt.datetime.fromtimestamp(day_start, dt.UTC).date().isoformat()
    yesterday = dt.datetime.fromtimestamp(day_start - 5, dt.UTC).date().isoformat()
    assert rows[(today, "i1")] == {
        "day": today,
        "device_id": device_id,
        "layout": "l1",
        "zone": "main",
        "item": "i1",
        "plays": 2,
        "played_ms": 16000,
    }
    assert rows[(today, "i2")]["plays"] == 1 and rows[(yesterday, "i1")]["plays"] == 1
    # Summing again adds nothing; the raw rows stay for deduplication until they age out.
    await sweep_once(ctx.state)
    again = await ctx.client.get("/api/v1/admin/impressions", headers=ctx.admin)
    assert again.json() == report.json()
    assert await _count(ctx, impressions) == 6
    ctx.clock.advance(ctx.state.config.impressions_keep_days * DAY + 1)
    await sweep_once(ctx.state)
    assert await _count(ctx, impressions) == 0
    kept = await ctx.client.get(
        "/api/v1/admin/impressions", params={"from": today, "to": today}, headers=ctx.admin
    )
    assert {r["item"] for r in kept.json()} == {"i1", "i2"}
    other = await ctx.client.get(
        "/api/v1/admin/impressions", params={"device": "dev_nobody"}, headers=ctx.admin
    )
    assert other.json() == []


async def test_old_commands_are_pruned(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair()
    sent = await ctx.client.post(
        f"/api/v1/admin/devices/{device_id}/commands", json={"name": "reload"}, headers=ctx.admin
    )
    assert sent.status_code == 201
    await sweep_once(ctx.state)
    assert await _count(ctx, commands) == 1
    ctx.clock.advance(
        ctx.state.config.commands_keep_days * DAY + ctx.state.config.command_ttl_s + 1
    )
    await sweep_once(ctx.state)
    assert await _count(ctx, commands) == 0


async def test_media_is_deleted_with_its_file_but_never_while_in_use(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair()
    sha = await ctx.publish_image(device_id)
    stored = ctx.data_dir / "objects" / sha[:2] / sha
    assert stored.exists()
    in_use = await ctx.client.delete(f"/api/v1/admin/media/{sha}", headers=ctx.admin)
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "media_in_use"
    assert "playlist 'p1'" in in_use.json()["detail"]
    await ctx.client.delete(f"/api/v1/admin/devices/{device_id}/content", headers=ctx.admin)
    for kind, item in (("layouts", "l1"), ("playlists", "p1")):
        gone = await ctx.client.delete(f"/api/v1/admin/{kind}/{item}", headers=ctx.admin)
        assert gone.status_code == 204, gone.text
    deleted = await ctx.client.delete(f"/api/v1/admin/media/{sha}", headers=ctx.admin)
    assert deleted.status_code == 204
    assert not stored.exists()
    missing = await ctx.client.get(f"/api/v1/admin/media/{sha}", headers=ctx.admin)
    assert missing.status_code == 404
    twice = await ctx.client.delete(f"/api/v1/admin/media/{sha}", headers=ctx.admin)
    assert twice.status_code == 404
    # The same bytes can be uploaded again afterwards.
    assert await ctx.upload(PNG) == sha
    assert stored.exists()
