"""The console over HTTP (in process): sessions, CSRF and cross-site refusals, security
headers, pairing errors in words, and the admin functions it adds (media deletion, the
proof-of-play report, media probing)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx

from tests.server.conftest import ADMIN_TOKEN, PNG, Ctx

ROOT = Path(__file__).resolve().parents[2]
HTML = {"Accept": "text/html"}


async def _signed_in(ctx: Ctx) -> str:
    """Sign the test client in; return the page's CSRF token."""
    response = await ctx.client.post("/signin", data={"token": ADMIN_TOKEN}, headers=HTML)
    assert response.status_code == 303, response.text
    page = await ctx.client.get("/devices", headers=HTML)
    assert page.status_code == 200
    match = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text)
    assert match is not None
    return match.group(1)


async def test_pages_need_a_session_and_the_token_never_shows(ctx: Ctx) -> None:
    response = await ctx.client.get("/media", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fmedia"
    assert (await ctx.client.get("/devices/rows")).status_code == 401
    await _signed_in(ctx)
    for page in ("/devices", "/pair", "/media", "/playlists", "/layouts", "/schedule", "/reports"):
        body = (await ctx.client.get(page, headers=HTML)).text
        assert ADMIN_TOKEN not in body, page


async def test_session_cookie_flags_and_secure_behind_https(ctx: Ctx) -> None:
    plain = await ctx.client.post("/signin", data={"token": ADMIN_TOKEN})
    cookie = plain.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    https = httpx.AsyncClient(transport=ctx.client._transport, base_url="https://console.test")
    async with https:
        secure = await https.post("/signin", data={"token": ADMIN_TOKEN})
    assert "; secure" in secure.headers["set-cookie"].lower()


async def test_wrong_tokens_are_rate_limited_with_a_time(ctx: Ctx) -> None:
    for _ in range(10):
        wrong = await ctx.client.post("/signin", data={"token": "nope"}, headers=HTML)
        assert wrong.status_code == 401
        assert "not this server&#39;s admin token" in wrong.text
    locked = await ctx.client.post("/signin", data={"token": ADMIN_TOKEN}, headers=HTML)
    assert locked.status_code == 429
    assert "Try again at" in locked.text and int(locked.headers["retry-after"]) > 0
    ctx.clock.advance(301)
    assert (await ctx.client.post("/signin", data={"token": ADMIN_TOKEN})).status_code == 303


async def test_security_headers_forbid_inline_script(ctx: Ctx) -> None:
    response = await ctx.client.get("/signin")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text.replace("<script src=", "")


async def test_writes_need_the_csrf_token_and_this_origin(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair(name="Lobby")
    csrf = await _signed_in(ctx)
    url = f"/devices/{device_id}/rename"
    refused = [
        await ctx.client.post(url, data={"name": "a"}, headers=HTML),
        await ctx.client.post(url, data={"name": "b", "csrf": "0" * 64}, headers=HTML),
        await ctx.client.post(
            url, data={"name": "c", "csrf": csrf}, headers={"Origin": "http://evil.test", **HTML}
        ),
        await ctx.client.post(
            url, data={"name": "d", "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"}
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert "Nothing was changed" in refused[0].text
    listed = await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)
    assert listed.json()["name"] == "Lobby"
    ok = await ctx.client.post(
        url,
        data={"name": "Hall", "csrf": csrf},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert ok.status_code == 303
    listed = await ctx.client.get(f"/api/v1/admin/devices/{device_id}", headers=ctx.admin)
    assert listed.json()["name"] == "Hall"


async def test_signing_out_ends_the_session(ctx: Ctx) -> None:
    csrf = await _signed_in(ctx)
    cookie = ctx.client.cookies.get("signage_session")
    assert (await ctx.client.post("/signout", data={"csrf": csrf})).status_code == 303
    ctx.client.cookies.set("signage_session", cookie or "")
    assert (await ctx.client.get("/devices", headers=HTML)).status_code == 303


async def _pair_form(ctx: Ctx, csrf: str, code: str) -> str:
    response = await ctx.client.post(
        "/pair", data={"csrf": csrf, "code": code, "name": "Lobby"}, headers=HTML
    )
    assert response.status_code == 422, response.status_code
    alert = re.search(r'role="alert" id="pair-error">([^<]+)<', response.text)
    assert alert is not None
    return alert.group(1)


async def test_pairing_errors_in_words(ctx: Ctx) -> None:
    csrf = await _signed_in(ctx)
    created = (await ctx.client.post("/api/v1/pairings", json={"hardware_id": "hw-x"})).json()
    ctx.clock.advance(ctx.state.config.pairing_ttl_s + 1)
    expired = await _pair_form(ctx, csrf, created["code"])
    assert expired.startswith(f"Code {created['code']} has expired")
    wrong = "000000" if created["code"] != "000000" else "000001"
    for _ in range(ctx.state.config.claim_max_failures - 1):
        assert "No screen shows code" in await _pair_form(ctx, csrf, wrong)
    locked = await _pair_form(ctx, csrf, wrong)
    assert re.search(r"locked until \d\d:\d\d UTC", locked), locked


async def test_pairing_from_the_console_with_a_new_group(ctx: Ctx) -> None:
    csrf = await _signed_in(ctx)
    created = (await ctx.client.post("/api/v1/pairings", json={"hardware_id": "hw-y"})).json()
    response = await ctx.client.post(
        "/pair",
        data={"csrf": csrf, "code": created["code"], "name": "Bar", "group": "Ground floor"},
    )
    assert response.status_code == 303
    devices = (await ctx.client.get("/api/v1/admin/devices", headers=ctx.admin)).json()
    assert [(d["name"], d["group"]) for d in devices] == [("Bar", "ground-floor")]
    groups = (await ctx.client.get("/api/v1/admin/groups", headers=ctx.admin)).json()
    assert [(g["id"], g["name"]) for g in groups] == [("ground-floor", "Ground floor")]


async def test_media_delete_refused_while_used(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair()
    sha = await ctx.publish_image(device_id)
    in_use = await ctx.client.delete(f"/api/v1/admin/media/{sha}", headers=ctx.admin)
    assert in_use.status_code == 409 and in_use.json()["code"] == "media_in_use"
    other = await ctx.upload(PNG + b"\0", name="spare.png")
    assert (
        await ctx.client.delete(f"/api/v1/admin/media/{other}", headers=ctx.admin)
    ).status_code == 204
    assert not (ctx.state.objects_dir / other[:2] / other).exists()
    missing = await ctx.client.delete(f"/api/v1/admin/media/{other}", headers=ctx.admin)
    assert missing.status_code == 404


async def test_impressions_report_counts_plays_per_day(ctx: Ctx) -> None:
    device_id, token = await ctx.pair()
    auth = {"Authorization": f"Bearer {token}"}
    events = [
        ("start", "2026-03-01T10:00:00+00:00", None),
        ("end", "2026-03-01T10:00:08+00:00", 8000),
        ("start", "2026-03-01T23:59:59+01:00", None),  # 22:59 UTC, the same UTC day
        ("start", "2026-03-02T00:00:01+00:00", None),
    ]
    batch = {
        "impressions": [
            {
                "id": str(uuid.uuid4()),
                "layout": "l1",
                "zone": "main",
                "item": "i1",
                "event": event,
                "at": at,
                "duration_ms": ms,
            }
            for event, at, ms in events
        ]
    }
    assert (
        await ctx.client.post("/api/v1/device/impressions", json=batch, headers=auth)
    ).status_code == 200
    report = await ctx.client.get(
        "/api/v1/admin/impressions",
        params={"from": "2026-03-01", "to": "2026-03-01"},
        headers=ctx.admin,
    )
    assert [(r["day"], r["plays"], r["played_ms"]) for r in report.json()] == [
        ("2026-03-01", 2, 8000)
    ]
    assert report.json()[0]["device_id"] == device_id
    await _signed_in(ctx)
    csv = await ctx.client.get(
        "/reports/plays.csv", params={"from": "2026-03-01", "to": "2026-03-02"}
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[1:] == [
        f"2026-03-01,{device_id},Lobby,l1,main,i1,2,8.0",
        f"2026-03-02,{device_id},Lobby,l1,main,i1,1,0.0",
    ]


async def test_schedule_check_shows_a_conflict_before_saving(ctx: Ctx) -> None:
    device_id, _ = await ctx.pair()
    await ctx.publish_image(device_id)
    csrf = await _signed_in(ctx)
    target = f"device:{device_id}"
    added = await ctx.client.post(
        "/schedule/add",
        data={
            "csrf": csrf,
            "target": target,
            "layout": "l1",
            "days": ["mon", "tue"],
            "from": "08:00",
            "to": "12:00",
            "priority": "5",
        },
    )
    assert added.status_code == 303
    check = {
        "csrf": csrf,
        "target": target,
        "layout": "l1",
        "days": ["tue"],
        "from": "11:00",
        "to": "13:00",
        "priority": "5",
    }
    clash = await ctx.client.post("/schedule/check", data=check)
    assert "Conflict" in clash.text
    schedules = (await ctx.client.get("/api/v1/admin/schedules", headers=ctx.admin)).json()
    assert len(schedules) == 1  # checking saved nothing
    fine = await ctx.client.post("/schedule/check", data=check | {"priority": "6"})
    assert "No conflict" in fine.text


async def test_interrupt_now_and_clear_from_the_device_page(ctx: Ctx) -> None:
    csrf = await _signed_in(ctx)
    device_id, token = await ctx.pair()
    await ctx.publish_image(device_id)
    page = await ctx.client.get(f"/devices/{device_id}", headers=HTML)
    assert 'for="interrupt-layout"' in page.text and ">Interrupt now</button>" in page.text
    bad = await ctx.client.post(
        f"/devices/{device_id}/interrupt", data={"csrf": csrf, "layout": "l1", "minutes": "0"}
    )
    assert bad.status_code == 303
    sent = await ctx.client.post(
        f"/devices/{device_id}/interrupt", data={"csrf": csrf, "layout": "l1", "minutes": "15"}
    )
    assert sent.status_code == 303
    live = (await ctx.client.get("/api/v1/admin/interrupts?live=true", headers=ctx.admin)).json()
    assert [(i["layout"], i["device"], i["status"]) for i in live] == [("l1", device_id, "active")]
    manifest = await ctx.client.get(
        "/api/v1/device/manifest", headers={"Authorization": f"Bearer {token}"}
    )
    assert manifest.json()["interrupts"][0]["id"] == live[0]["id"]
    page = await ctx.client.get(f"/devices/{device_id}", headers=HTML)
    assert "Clear interrupt l1" in page.text
    cleared = await ctx.client.post(
        f"/devices/{device_id}/interrupts/{live[0]['id']}/clear", data={"csrf": csrf}
    )
    assert cleared.status_code == 303
    after = (await ctx.client.get("/api/v1/admin/interrupts?live=true", headers=ctx.admin)).json()
    assert after == []
