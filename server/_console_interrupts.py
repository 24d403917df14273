"""Console controls for interrupts on a device's page: put a layout over everything on the
screen (or its whole group) now, for some minutes or until cleared, and clear it.

Both go through the admin API's own functions (``server._admin_interrupts``), so the console
and ``/api/v1/admin/interrupts`` apply the same rules and publish the same manifests.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from server._admin_devices import get_device
from server._admin_interrupts import (
    InterruptInfo,
    InterruptRequest,
    clear_interrupt,
    list_interrupts_of,
    send_interrupt,
)
from server._console_admin import list_content
from server._console_web import admin_call, enter, message_of
from server._state import ServerState

router = APIRouter(include_in_schema=False)
MAX_MINUTES = 31 * 24 * 60


async def interrupt_context(state: ServerState, device_id: str) -> dict[str, Any]:
    """What the device page's interrupt section shows: the layouts one can send, and the
    interrupts in force (or to come) on this screen."""
    layouts = [layout["id"] for layout in await list_content(state, "layouts")]
    live: list[InterruptInfo] = await list_interrupts_of(state, device=device_id, live=True)
    return {"layouts": layouts, "interrupts": live}


@router.post("/devices/{device_id}/interrupt")
async def interrupt(request: Request, device_id: str) -> Response:
    console = await enter(request)
    back = f"/devices/{device_id}"
    form = console.form
    layout = form.get("layout")
    minutes_text = form.get("minutes").strip()
    whole_group = form.get("scope") == "group"
    minutes = None
    if minutes_text:
        if not minutes_text.isdigit() or not 1 <= int(minutes_text) <= MAX_MINUTES:
            return console.redirect(
                back, "Minutes: a whole number from 1, or empty for until cleared.", error=True
            )
        minutes = int(minutes_text)
    device, error = await admin_call(_device_group(console.state, device_id))
    if error is not None:
        return console.redirect("/devices", message_of(error), error=True)
    if whole_group and device is None:
        return console.redirect(back, "This screen is in no group.", error=True)
    try:
        body = InterruptRequest(
            layout=layout,
            device=None if whole_group else device_id,
            group=device if whole_group else None,
            seconds=None if minutes is None else minutes * 60,
        )
    except ValidationError:
        return console.redirect(back, "Choose a layout to show.", error=True)
    sent, error = await admin_call(send_interrupt(console.state, body))
    if error is not None:
        return console.redirect(back, message_of(error), error=True)
    until = f"for {minutes} min" if minutes else "until you clear it"
    where = "every screen of its group" if whole_group else "the screen"
    return console.redirect(back, f"{sent.layout} takes over {where} now, {until}.")


async def _device_group(state: ServerState, device_id: str) -> str | None:
    info = await get_device(device_id, state, state.admin_token_hash)
    return info.group


@router.post("/devices/{device_id}/interrupts/{interrupt_id}/clear")
async def clear(request: Request, device_id: str, interrupt_id: str) -> Response:
    console = await enter(request)
    back = f"/devices/{device_id}"
    _, error = await admin_call(clear_interrupt(console.state, interrupt_id))
    if error is not None:
        return console.redirect(back, message_of(error), error=True)
    return console.redirect(back, "Cleared: the schedule is back where it would be.")
