"""Console pages for playlists: ordered items (image, video, text, clock), reordered by drag
or by the keyboard (move up / move down buttons), saved through the admin API."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from protocol import Layout, Playlist
from server._admin_content import put_playlist
from server._console_admin import delete_content, list_content
from server._console_web import Console, admin_call, enter, in_words, message_of
from server._uploads import list_media

router = APIRouter(include_in_schema=False)
KINDS = ("image", "video", "text", "clock")
FIELDS = ("type", "item_id", "asset", "duration", "fit", "text", "scroll", "format", "transition")
FIELDS_MS = ("transition_ms",)
ID_HINT = "letters, digits and - _ . : (up to 64), starting with a letter or digit"


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:g}"


def draft_of(playlist: dict[str, Any]) -> list[dict[str, str]]:
    """The editable rows of a stored playlist."""
    rows = []
    for item in playlist["items"]:
        transition = item.get("transition") or {}
        rows.append(
            {
                "type": item["type"],
                "item_id": item["id"],
                "asset": item.get("asset", ""),
                "duration": _seconds(item.get("duration_ms")),
                "fit": item.get("fit", "contain"),
                "text": item.get("text", ""),
                "scroll": item.get("scroll", "none"),
                "format": item.get("format", "%H:%M"),
                "transition": transition.get("type", "cut"),
                "transition_ms": str(transition.get("duration_ms", 500)),
            }
        )
    return rows


def _new_row(kind: str, taken: set[str]) -> dict[str, str]:
    item_id = f"{kind}-{secrets.token_hex(3)}"
    while item_id in taken:
        item_id = f"{kind}-{secrets.token_hex(3)}"
    return {
        "type": kind,
        "item_id": item_id,
        "asset": "",
        "duration": "" if kind == "video" else "10",
        "fit": "contain",
        "text": "Welcome" if kind == "text" else "",
        "scroll": "none",
        "format": "%H:%M",
        "transition": "cut",
        "transition_ms": "500",
    }


def rows_from_form(console: Console) -> list[dict[str, str]]:
    form = console.form
    columns = {name: form.all(name) for name in (*FIELDS, *FIELDS_MS)}
    count = len(columns["type"])
    return [
        {name: (values[i] if i < len(values) else "") for name, values in columns.items()}
        for i in range(count)
    ]


def _item(row: dict[str, str], number: int) -> dict[str, Any]:
    kind = row["type"]
    item: dict[str, Any] = {"id": row["item_id"], "type": kind}
    duration = row["duration"].strip()
    if duration:
        try:
            item["duration_ms"] = round(float(duration) * 1000)
        except ValueError:
            raise ValueError(f"item {number}: the duration is a number of seconds") from None
    elif kind != "video":
        raise ValueError(f"item {number}: give a duration in seconds")
    if kind in ("image", "video"):
        if not row["asset"]:
            raise ValueError(f"item {number}: choose a {kind} file")
        item["asset"] = row["asset"]
        item["fit"] = row["fit"] or "contain"
    elif kind == "text":
        item["text"] = row["text"]
        item["scroll"] = row["scroll"] or "none"
    elif kind == "clock":
        item["format"] = row["format"] or "%H:%M"
    if row["transition"] in ("fade", "crossfade"):
        try:
            ms = int(row["transition_ms"] or "500")
        except ValueError:
            raise ValueError(f"item {number}: the transition time is whole milliseconds") from None
        item["transition"] = {"type": row["transition"], "duration_ms": ms}
    return item


def playlist_from_rows(playlist_id: str, rows: list[dict[str, str]]) -> Playlist:
    """Validated as the API validates it; errors read as sentences."""
    items = [_item(row, n) for n, row in enumerate(rows, 1)]
    try:
        return Playlist.model_validate({"id": playlist_id, "items": items})
    except ValidationError as exc:
        raise ValueError(in_words(exc, "items", "item")) from None


def apply_action(action: str, rows: list[dict[str, str]]) -> int | None:
    """Edit the draft in place; the index of the row to focus afterwards."""
    verb, _, arg = action.partition(":")
    if verb == "add" and arg in KINDS:
        rows.append(_new_row(arg, {r["item_id"] for r in rows}))
        return len(rows) - 1
    if not arg.isdigit() or not 0 <= int(arg) < len(rows):
        return None
    index = int(arg)
    if verb == "up" and index > 0:
        rows[index - 1], rows[index] = rows[index], rows[index - 1]
        return index - 1
    if verb == "down" and index < len(rows) - 1:
        rows[index + 1], rows[index] = rows[index], rows[index + 1]
        return index + 1
    if verb == "remove":
        del rows[index]
        return min(index, len(rows) - 1) if rows else None
    return index


async def _media_choices(console: Console) -> dict[str, list[Any]]:
    files = await list_media(console.state, console.state.admin_token_hash)
    return {
        "image": [m for m in files if m.mime.startswith("image/")],
        "video": [m for m in files if m.mime.startswith("video/")],
    }


async def _editor(
    console: Console,
    playlist_id: str,
    rows: list[dict[str, str]],
    *,
    new: bool,
    error: str | None = None,
    focus: str | None = None,
    dirty: bool = False,
    status: int = 200,
) -> Response:
    context = {
        "playlist_id": playlist_id,
        "rows": rows,
        "new": new,
        "error": error,
        "focus": focus,
        "dirty": dirty,
        "media": await _media_choices(console),
        "kinds": KINDS,
    }
    if console.request.headers.get("hx-request") == "true":
        response = console.fragment("playlist_editor.html", flash=True, **context)
        response.status_code = status
        return response
    return console.render(
        "playlist.html", title=f"Playlist {playlist_id}", status=status, **context
    )


@router.get("/playlists")
async def playlists_page(request: Request) -> Response:
    console = await enter(request)
    stored = await list_content(console.state, "playlists")
    layouts = [Layout.model_validate(b) for b in await list_content(console.state, "layouts")]
    used = {
        p["id"]: sorted({lay.id for lay in layouts for z in lay.zones if z.playlist == p["id"]})
        for p in stored
    }
    return console.render(
        "playlists.html", title="Playlists", playlists=stored, used=used, id_hint=ID_HINT
    )


@router.post("/playlists")
async def playlist_new(request: Request) -> Response:
    console = await enter(request)
    playlist_id = console.form.get("id")
    try:
        Playlist.model_validate({"id": playlist_id, "items": [{"id": "x", "type": "clock"}]})
    except ValidationError:
        return console.redirect("/playlists", f"A playlist id uses {ID_HINT}.", error=True)
    if any(p["id"] == playlist_id for p in await list_content(console.state, "playlists")):
        return console.redirect(f"/playlists/{playlist_id}", "That playlist exists already.")
    rows = [_new_row("image", set())]
    return await _editor(console, playlist_id, rows, new=True, dirty=True)


@router.get("/playlists/{playlist_id}")
async def playlist_page(request: Request, playlist_id: str) -> Response:
    console = await enter(request)
    stored = await list_content(console.state, "playlists")
    found = next((p for p in stored if p["id"] == playlist_id), None)
    if found is None:
        return console.redirect("/playlists", f"There is no playlist {playlist_id}.", error=True)
    return await _editor(console, playlist_id, draft_of(found), new=False)


@router.post("/playlists/{playlist_id}/edit")
async def playlist_edit(request: Request, playlist_id: str) -> Response:
    """Add, move or remove an item in the draft, or save it."""
    console = await enter(request)
    rows = rows_from_form(console)
    action = console.form.get("action")
    new = console.form.get("new") == "1"
    if action != "save":
        focus_index = apply_action(action, rows)
        focus = None
        if focus_index is not None:
            verb = action.partition(":")[0]
            focus = f"{verb}-{focus_index}" if verb in ("up", "down") else f"item-{focus_index}"
        return await _editor(console, playlist_id, rows, new=new, focus=focus, dirty=True)
    try:
        body = playlist_from_rows(playlist_id, rows)
    except ValueError as exc:
        return await _editor(
            console, playlist_id, rows, new=new, error=str(exc), dirty=True, status=422
        )
    state = console.state
    _, error = await admin_call(
        put_playlist(playlist_id, body, Response(), state, state.admin_token_hash)
    )
    if error is not None:
        return await _editor(
            console, playlist_id, rows, new=new, error=message_of(error), dirty=True, status=409
        )
    return console.redirect(f"/playlists/{playlist_id}", f"Saved playlist {playlist_id}.")


@router.post("/playlists/{playlist_id}/delete")
async def playlist_delete(request: Request, playlist_id: str) -> Response:
    console = await enter(request)
    error = await delete_content(console.state, "playlists", playlist_id)
    if error is not None:
        return console.redirect("/playlists", message_of(error), error=True)
    return console.redirect("/playlists", f"Deleted playlist {playlist_id}.")
