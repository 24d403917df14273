"""Console pages for screens: pairing, the live device list, one device and its actions.

Every change goes through the admin API's own functions (claim, patch, command, revoke), so
the console and ``/api/v1/admin`` apply the same rules and publish the same events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from protocol import ClaimRequest
from server._admin_devices import (
    CommandRequest,
    DeviceInfo,
    DevicePatch,
    get_device,
    get_screenshot,
    list_devices,
    patch_device,
    revoke_device,
    send_command,
)
from server._admin_groups import GroupBody, list_groups, put_group
from server._console_interrupts import interrupt_context
from server._console_session import session_valid
from server._console_web import Console, admin_call, enter, message_of
from server._events_api import admin_events
from server._pairing import claim
from server._problems import ApiError
from server._sse import EventStream, frame
from server._state import ServerState

router = APIRouter(include_in_schema=False)
ACTIONS = {
    "identify": "Identify",
    "reload": "Reload",
    "restart": "Restart player",
    "screenshot": "Take screenshot",
}
_SLUG = re.compile(r"[^a-z0-9]+")
# How often an open live stream checks that its session is still signed in: signing out,
# the session's expiry or a new admin token end the stream within this time.
SESSION_RECHECK_S = 5.0


def _admin(state: ServerState) -> str:
    # What the Bearer check would have returned: the admin credential's hash.
    return state.admin_token_hash


def device_view(info: DeviceInfo) -> dict[str, Any]:
    """What a row shows, with the heartbeat's metrics flattened for the template."""
    metrics = info.metrics or {}
    cache = metrics.get("cache") or {}
    total = metrics.get("disk_total_bytes") or 0
    free = metrics.get("disk_free_bytes")
    return {
        "info": info,
        "online": info.status == "online",
        "version": metrics.get("player_version") or info.player_version,
        "state": metrics.get("state"),
        "layout": metrics.get("layout"),
        "zone_items": metrics.get("items") or {},
        "cpu": metrics.get("cpu_percent"),
        "temperature": metrics.get("temperature_c"),
        "disk_free": free,
        "disk_used_percent": round(100 * (total - free) / total) if total and free else None,
        "cache_ready": cache.get("ready"),
        "cache_total": cache.get("total"),
        "disk_full": bool(cache.get("disk_full")),
        "manifest_error": metrics.get("manifest_error"),
    }


async def _groups(state: ServerState) -> list[Any]:
    return list(await list_groups(state, _admin(state)))


async def group_id_for(state: ServerState, name: str) -> str | None:
    """The group called ``name`` (by name or id), created when there is none yet."""
    name = name.strip()
    if not name:
        return None
    for group in await _groups(state):
        if name in (group.name, group.id):
            return str(group.id)
    group_id = _SLUG.sub("-", name.lower()).strip("-")[:48] or "group"
    taken = {g.id for g in await _groups(state)}
    base, n = group_id, 2
    while group_id in taken:
        group_id, n = f"{base}-{n}", n + 1
    await put_group(group_id, GroupBody(name=name[:64]), state, _admin(state))
    return group_id


@router.get("/devices")
async def devices_page(request: Request) -> Response:
    console = await enter(request)
    state = console.state
    rows = [device_view(d) for d in await list_devices(state, _admin(state))]
    return console.render("devices.html", title="Devices", devices=rows)


@router.get("/devices/rows")
async def device_rows(request: Request) -> Response:
    """Rows of the device table (all, or the ``id`` ones) for the live updates."""
    console = await enter(request)
    wanted = set(request.query_params.getlist("id"))
    infos = await list_devices(console.state, _admin(console.state))
    rows = [device_view(d) for d in infos if not wanted or d.id in wanted]
    return console.fragment("device_rows.html", devices=rows)


@router.get("/console/events")
async def console_events(request: Request) -> Response:
    """The admin event stream, for pages signed in with the session cookie, for as long as
    the session stays signed in."""
    console = await enter(request)
    stream = await admin_events(request, _admin(console.state), console.state)
    state, session_id = console.state, console.session.id

    async def while_signed_in(stream: EventStream) -> None:
        """Once the session is signed out: a ``signed-out`` event, and the end (the page's
        reconnection then meets the sign-in check)."""
        while True:
            await asyncio.sleep(SESSION_RECHECK_S)
            if not await session_valid(state, session_id):
                stream.end(frame(event="signed-out", data="{}"))
                return

    stream.watch = while_signed_in
    return stream


async def _one(console: Console, device_id: str) -> DeviceInfo | None:
    found, error = await admin_call(get_device(device_id, console.state, _admin(console.state)))
    return None if error is not None else found


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: str) -> Response:
    console = await enter(request)
    info = await _one(console, device_id)
    if info is None:
        return console.redirect("/devices", "That screen no longer exists.", error=True)
    groups = await _groups(console.state)
    return console.render(
        "device.html",
        title=info.name,
        d=device_view(info),
        groups=groups,
        actions=ACTIONS,
        **await interrupt_context(console.state, device_id),
    )


@router.get("/devices/{device_id}/panel")
async def device_panel(request: Request, device_id: str) -> Response:
    console = await enter(request)
    info = await _one(console, device_id)
    if info is None:
        return Response(status_code=404)
    return console.fragment("device_panel.html", d=device_view(info))


@router.get("/devices/{device_id}/screenshot.png")
async def device_screenshot(request: Request, device_id: str) -> Response:
    console = await enter(request)
    found, error = await admin_call(get_screenshot(device_id, console.state, _admin(console.state)))
    if error is not None:
        return Response(status_code=404)
    response: Response = found
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/devices/{device_id}/rename")
async def rename(request: Request, device_id: str) -> Response:
    console = await enter(request)
    name = console.form.get("name")
    back = f"/devices/{device_id}"
    if not 1 <= len(name) <= 64:
        return console.redirect(back, "A name has 1 to 64 characters.", error=True)
    _, error = await admin_call(
        patch_device(device_id, DevicePatch(name=name), console.state, _admin(console.state))
    )
    if error is not None:
        return console.redirect(back, message_of(error), error=True)
    return console.redirect(back, f"Renamed to {name}.")


@router.post("/devices/{device_id}/group")
async def move_to_group(request: Request, device_id: str) -> Response:
    console = await enter(request)
    back = f"/devices/{device_id}"
    group_name = console.form.get("group")
    if len(group_name) > 64:
        return console.redirect(back, "A group name has at most 64 characters.", error=True)
    group = await group_id_for(console.state, group_name)
    _, error = await admin_call(
        patch_device(device_id, DevicePatch(group=group), console.state, _admin(console.state))
    )
    if error is not None:
        return console.redirect(back, message_of(error), error=True)
    return console.redirect(back, f"Moved to {group_name}." if group else "Removed from its group.")


@router.post("/devices/{device_id}/command")
async def command(request: Request, device_id: str) -> Response:
    console = await enter(request)
    back = f"/devices/{device_id}"
    name = console.form.get("name")
    if name not in ACTIONS:
        return console.redirect(back, f"Unknown action {name!r}.", error=True)
    request_body = CommandRequest.model_validate({"name": name})
    _, error = await admin_call(
        send_command(device_id, request_body, console.state, _admin(console.state))
    )
    if error is not None:
        return console.redirect(back, message_of(error), error=True)
    done = {
        "identify": "The screen shows its name and code for a few seconds.",
        "reload": "The screen reloads its content.",
        "restart": "The player restarts.",
        "screenshot": "Screenshot requested; it appears here when the screen sends it.",
    }
    return console.redirect(back, done[name])


@router.get("/devices/{device_id}/revoke")
async def revoke_confirm(request: Request, device_id: str) -> Response:
    console = await enter(request)
    info = await _one(console, device_id)
    if info is None:
        return console.redirect("/devices", "That screen no longer exists.", error=True)
    return console.render("revoke.html", title=f"Revoke {info.name}", d=device_view(info))


@router.post("/devices/{device_id}/revoke")
async def revoke(request: Request, device_id: str) -> Response:
    console = await enter(request)
    info = await _one(console, device_id)
    _, error = await admin_call(revoke_device(device_id, console.state, _admin(console.state)))
    if error is not None or info is None:
        return console.redirect("/devices", "That screen no longer exists.", error=True)
    return console.redirect("/devices", f"{info.name} was revoked; it shows a pairing code again.")


# --- pairing ---------------------------------------------------------------------------------


def _pairing_error(console: Console, error: ApiError, code: str) -> str:
    if error.code == "pairing_expired":
        return f"Code {code} has expired. The screen now shows a new code: type that one."
    if error.status == 429:
        wait = int(error.headers.get("Retry-After", "60"))
        until = dt.datetime.fromtimestamp(console.state.clock() + wait, dt.UTC)
        return (
            f"Too many wrong codes: pairing is locked until {until:%H:%M} UTC "
            f"(in {max(1, round(wait / 60))} min)."
        )
    if error.code == "pairing_not_found":
        return f"No screen shows code {code}. Check the six digits on the screen."
    return message_of(error)


@router.get("/pair")
async def pair_form(request: Request) -> Response:
    console = await enter(request)
    groups = await _groups(console.state)
    return console.render("pair.html", title="Pair a screen", groups=groups, values={}, error=None)


@router.post("/pair")
async def pair(request: Request) -> Response:
    console = await enter(request)
    state = console.state
    form = console.form
    code = re.sub(r"\s+", "", form.get("code"))
    name = form.get("name")
    group_name = form.get("group")
    values = {"code": code, "name": name, "group": group_name}
    problem = None
    if not re.fullmatch(r"[0-9]{6}", code):
        problem = "The code is the six digits shown on the screen."
    elif not 1 <= len(name) <= 64:
        problem = "Give the screen a name of 1 to 64 characters (for example: Lobby)."
    elif len(group_name) > 64:
        problem = "A group name has at most 64 characters."
    if problem is None:
        body = ClaimRequest(code=code, name=name)
        claimed, error = await admin_call(claim(body, request, state, _admin(state)))
        if error is None:
            group = await group_id_for(state, group_name)
            if group is not None:
                await patch_device(
                    claimed.device_id, DevicePatch(group=group), state, _admin(state)
                )
            return console.redirect(
                f"/devices/{claimed.device_id}",
                f"{name} is paired. It downloads its content and starts playing.",
            )
        problem = _pairing_error(console, error, code)
    groups = await _groups(state)
    return console.render(
        "pair.html", title="Pair a screen", groups=groups, values=values, error=problem, status=422
    )
