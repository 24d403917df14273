"""Console page for schedules: a week grid of dayparts per group or device, priorities, the
default layout, and conflicts (same priority, overlapping) shown before anything is saved."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from protocol import DAYS, ScheduleEntry
from server._admin_content import put_schedule
from server._admin_devices import ContentSet, assign_device, list_devices
from server._admin_groups import assign_group, list_groups
from server._console_admin import delete_content, list_content
from server._console_web import Console, admin_call, enter, in_words, message_of
from server._content import _windows, conflicts
from server._problems import ApiError

router = APIRouter(include_in_schema=False)
GRID_WIDTH = 720
LABEL_WIDTH = 48
ROW_HEIGHT = 36
DAY_NAMES = {
    "mon": "Mon",
    "tue": "Tue",
    "wed": "Wed",
    "thu": "Thu",
    "fri": "Fri",
    "sat": "Sat",
    "sun": "Sun",
}


@dataclass
class Target:
    kind: str  # "group" | "device"
    id: str
    name: str
    content: ContentSet | None  # None: a device that follows its group
    group: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


async def _targets(console: Console) -> list[Target]:
    state = console.state
    admin = state.admin_token_hash
    found = [
        Target(
            "group",
            g.id,
            g.name,
            ContentSet(schedule=g.schedule, default_layout=g.default_layout, timezone=g.timezone),
        )
        for g in await list_groups(state, admin)
    ]
    found += [
        Target("device", d.id, d.name, d.content, d.group) for d in await list_devices(state, admin)
    ]
    return found


def _entry_from_form(console: Console, entry_id: str) -> ScheduleEntry:
    form = console.form
    days = [d for d in form.all("days") if d in DAYS]
    if not days:
        raise ValueError("tick at least one day")
    start, end = form.get("from"), form.get("to")
    if bool(start) != bool(end):
        raise ValueError("give both a start and an end time, or neither for all day")
    try:
        priority = int(form.get("priority", "0") or "0")
    except ValueError:
        raise ValueError("the priority is a whole number from 0 to 1000") from None
    body: dict[str, Any] = {
        "id": entry_id,
        "layout": form.get("layout"),
        "priority": priority,
        "days": None if len(days) == 7 else days,
    }
    if start:
        body["from"], body["to"] = start, end
    if form.get("start_date"):
        body["start"] = form.get("start_date")
    if form.get("end_date"):
        body["end"] = form.get("end_date")
    if not body["layout"]:
        raise ValueError("choose the layout to play")
    try:
        return ScheduleEntry.model_validate(body)
    except ValidationError as exc:
        raise ValueError(in_words(exc, "", "")) from None


def _conflicts(entries: list[ScheduleEntry]) -> list[tuple[str, str]]:
    return [
        (a.id, b.id) for n, a in enumerate(entries) for b in entries[n + 1 :] if conflicts(a, b)
    ]


def describe(entry: ScheduleEntry) -> str:
    """A daypart in words: "lobby, Mon–Fri 08:00–18:00, priority 10"."""
    days = "every day" if not entry.days else ", ".join(DAY_NAMES[d] for d in entry.days)
    hours = f"{entry.from_}–{entry.to}" if entry.from_ else "all day"
    return f"{entry.layout}, {days} {hours}, priority {entry.priority}"


def week_grid(
    entries: list[ScheduleEntry], clashing: set[str], pending: str | None
) -> dict[str, Any]:
    """Bars per day of the week, one lane per entry, for the SVG grid."""
    lanes = max(1, len(entries))
    lane_h = (ROW_HEIGHT - 4) / lanes
    scale = (GRID_WIDTH - LABEL_WIDTH) / 1440
    bars = []
    for lane, entry in enumerate(entries):
        for start, end in _windows(entry):
            while start < end:  # split at midnights so each bar sits in its day's row
                day, offset = divmod(start, 1440)
                stop = min(end, (day + 1) * 1440)
                bars.append(
                    {
                        "x": round(LABEL_WIDTH + offset * scale, 1),
                        "y": round(day % 7 * ROW_HEIGHT + 2 + lane * lane_h, 1),
                        "w": round((stop - start) * scale, 1),
                        "h": round(lane_h, 1),
                        "entry": entry,
                        "lane": lane % 6,
                        "clash": entry.id in clashing,
                        "pending": entry.id == pending,
                    }
                )
                start = stop
    return {
        "width": GRID_WIDTH,
        "height": 7 * ROW_HEIGHT + 20,
        "label_width": LABEL_WIDTH,
        "row_height": ROW_HEIGHT,
        "days": [DAY_NAMES[d] for d in DAYS],
        "hours": [(round(LABEL_WIDTH + h * 60 * scale, 1), h) for h in range(0, 25, 3)],
        "bars": bars,
    }


async def _page(
    console: Console,
    target_key: str,
    *,
    candidate: ScheduleEntry | None = None,
    error: str | None = None,
    fragment: bool = False,
    status: int = 200,
) -> Response:
    targets = await _targets(console)
    target = next((t for t in targets if t.key == target_key), targets[0] if targets else None)
    stored = {
        s["id"]: ScheduleEntry.model_validate(s)
        for s in await list_content(console.state, "schedules")
    }
    layouts = [x["id"] for x in await list_content(console.state, "layouts")]
    own = target.content if target is not None else None
    entries = [stored[i] for i in (own.schedule if own else []) if i in stored]
    shown = [*entries, candidate] if candidate is not None else entries
    clashes = _conflicts(shown)
    clashing = {i for pair in clashes for i in pair}
    context: dict[str, Any] = {
        "targets": targets,
        "target": target,
        "own": own,
        "entries": entries,
        "candidate": candidate,
        "clashes": clashes,
        "described": {e.id: describe(e) for e in shown},
        "grid": week_grid(shown, clashing, candidate.id if candidate else None),
        "layouts": layouts,
        "days": DAYS,
        "day_names": DAY_NAMES,
        "error": error,
        "values": console.form,
    }
    if fragment:
        return console.fragment("schedule_check.html", **context)
    return console.render("schedule.html", title="Schedule", status=status, **context)


@router.get("/schedule")
async def schedule_page(request: Request) -> Response:
    console = await enter(request)
    return await _page(console, request.query_params.get("target", ""))


@router.post("/schedule/check")
async def schedule_check(request: Request) -> Response:
    """The grid and the conflicts the daypart being typed would have, before saving."""
    console = await enter(request)
    target = console.form.get("target")
    try:
        candidate = _entry_from_form(console, "new")
    except ValueError as exc:
        return await _page(console, target, error=str(exc), fragment=True)
    return await _page(console, target, candidate=candidate, fragment=True)


async def _assign(console: Console, target: Target, content: ContentSet) -> ApiError | None:
    state = console.state
    call: Awaitable[Any]
    if target.kind == "group":
        call = assign_group(target.id, content, state, state.admin_token_hash)
    else:
        call = assign_device(target.id, content, state, state.admin_token_hash)
    _, error = await admin_call(call)
    return error


async def _target(console: Console) -> Target | None:
    key = console.form.get("target")
    return next((t for t in await _targets(console) if t.key == key), None)


def _back(target: Target) -> str:
    return f"/schedule?target={target.kind}%3A{target.id}"


@router.post("/schedule/add")
async def schedule_add(request: Request) -> Response:
    console = await enter(request)
    target = await _target(console)
    if target is None:
        return console.redirect("/schedule", "Choose a group or a screen first.", error=True)
    entry_id = f"{target.id[:40]}-{secrets.token_hex(3)}"
    try:
        entry = _entry_from_form(console, entry_id)
    except ValueError as exc:
        return await _page(console, target.key, error=str(exc), status=422)
    own = target.content or ContentSet()
    state = console.state
    _, error = await admin_call(
        put_schedule(entry_id, entry, Response(), state, state.admin_token_hash)
    )
    if error is None:
        content = own.model_copy(update={"schedule": [*own.schedule, entry_id]})
        error = await _assign(console, target, content)
        if error is not None:
            await delete_content(state, "schedules", entry_id)
    if error is not None:
        return await _page(
            console,
            target.key,
            candidate=entry.model_copy(update={"id": "new"}),
            error=message_of(error),
            status=409,
        )
    return console.redirect(
        _back(target), f"Added: {entry.layout} on the {target.kind} {target.name}."
    )


@router.post("/schedule/remove")
async def schedule_remove(request: Request) -> Response:
    console = await enter(request)
    target = await _target(console)
    entry_id = console.form.get("entry")
    if target is None or target.content is None or entry_id not in target.content.schedule:
        return console.redirect("/schedule", "That daypart is not there any more.", error=True)
    content = target.content.model_copy(
        update={"schedule": [i for i in target.content.schedule if i != entry_id]}
    )
    error = await _assign(console, target, content)
    if error is not None:
        return console.redirect(_back(target), message_of(error), error=True)
    await delete_content(console.state, "schedules", entry_id)  # refused while others use it
    return console.redirect(_back(target), "Daypart removed.")


@router.post("/schedule/default")
async def schedule_default(request: Request) -> Response:
    console = await enter(request)
    target = await _target(console)
    if target is None:
        return console.redirect("/schedule", "Choose a group or a screen first.", error=True)
    own = target.content or ContentSet()
    timezone = console.form.get("timezone") or None
    try:
        content = ContentSet.model_validate(
            {
                "schedule": own.schedule,
                "default_layout": console.form.get("default_layout") or None,
                "timezone": timezone,
            }
        )
    except ValidationError as exc:
        return console.redirect(_back(target), in_words(exc, "", ""), error=True)
    error = await _assign(console, target, content)
    if error is not None:
        return console.redirect(_back(target), message_of(error), error=True)
    return console.redirect(_back(target), "Default layout and time zone saved.")
