"""Console pages for layouts: zone templates or custom zones, each bound to a playlist, with a
scaled preview drawn on the server (SVG) as the form changes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from protocol import Layout
from server._admin_content import put_layout
from server._console_admin import delete_content, list_content
from server._console_web import Console, admin_call, enter, in_words, message_of

router = APIRouter(include_in_schema=False)
TEMPLATES = {
    "full": "Full screen",
    "ticker": "Main + ticker",
    "lshape": "L-shape",
    "grid": "2 × 2",
}
PREVIEW_WIDTH = 480
ZONE_FIELDS = ("zone_id", "x", "y", "w", "h", "z", "playlist")


def template_zones(name: str, width: int, height: int) -> list[tuple[str, int, int, int, int]]:
    """(id, x, y, w, h) of a template's zones on a ``width`` × ``height`` canvas."""
    if name == "ticker":
        band = round(height * 0.1)
        return [("main", 0, 0, width, height - band), ("ticker", 0, height - band, width, band)]
    if name == "lshape":
        side, band = round(width * 0.25), round(height * 0.15)
        return [
            ("main", 0, 0, width - side, height - band),
            ("side", width - side, 0, side, height - band),
            ("bottom", 0, height - band, width, band),
        ]
    if name == "grid":
        half_w, half_h = width // 2, height // 2
        return [
            ("top-left", 0, 0, half_w, half_h),
            ("top-right", half_w, 0, width - half_w, half_h),
            ("bottom-left", 0, half_h, half_w, height - half_h),
            ("bottom-right", half_w, half_h, width - half_w, height - half_h),
        ]
    return [("main", 0, 0, width, height)]


def _int(value: str, default: int) -> int:
    try:
        return int(value)
    except ValueError:
        return default


def draft_from_form(console: Console) -> dict[str, Any]:
    form = console.form
    columns = {name: form.all(name) for name in ZONE_FIELDS}
    zones = [
        {name: (values[i] if i < len(values) else "") for name, values in columns.items()}
        for i in range(len(columns["zone_id"]))
    ]
    return {
        "width": form.get("width", "1920"),
        "height": form.get("height", "1080"),
        "background": form.get("background", "#000000"),
        "zones": zones,
    }


def draft_of(layout: dict[str, Any]) -> dict[str, Any]:
    return {
        "width": str(layout["width"]),
        "height": str(layout["height"]),
        "background": layout.get("background", "#000000"),
        "zones": [
            {
                "zone_id": z["id"],
                "x": str(z["x"]),
                "y": str(z["y"]),
                "w": str(z["w"]),
                "h": str(z["h"]),
                "z": str(z.get("z", 0)),
                "playlist": z["playlist"],
            }
            for z in layout["zones"]
        ],
    }


def apply_template(draft: dict[str, Any], name: str, playlists: list[str]) -> None:
    width, height = _int(draft["width"], 1920), _int(draft["height"], 1080)
    before = [z["playlist"] for z in draft["zones"]]
    default = playlists[0] if playlists else ""
    draft["zones"] = [
        {
            "zone_id": zone_id,
            "x": str(x),
            "y": str(y),
            "w": str(w),
            "h": str(h),
            "z": "0",
            "playlist": before[n] if n < len(before) and before[n] else default,
        }
        for n, (zone_id, x, y, w, h) in enumerate(template_zones(name, width, height))
    ]


def layout_from_draft(layout_id: str, draft: dict[str, Any]) -> Layout:
    def number(value: str, what: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{what} must be a whole number of pixels") from None

    zones = []
    for n, z in enumerate(draft["zones"], 1):
        if not z["playlist"]:
            raise ValueError(f"zone {n} ({z['zone_id']}): choose a playlist")
        zones.append(
            {
                "id": z["zone_id"],
                "x": number(z["x"], f"zone {n} x"),
                "y": number(z["y"], f"zone {n} y"),
                "w": number(z["w"], f"zone {n} width"),
                "h": number(z["h"], f"zone {n} height"),
                "z": number(z["z"] or "0", f"zone {n} stacking order"),
                "playlist": z["playlist"],
            }
        )
    try:
        return Layout.model_validate(
            {
                "id": layout_id,
                "width": number(draft["width"], "the width"),
                "height": number(draft["height"], "the height"),
                "background": draft["background"],
                "zones": zones,
            }
        )
    except ValidationError as exc:
        raise ValueError(in_words(exc, "zones", "zone")) from None


def preview_of(draft: dict[str, Any]) -> dict[str, Any]:
    """Zones scaled to the preview's width; what cannot be drawn is simply left out."""
    width, height = _int(draft["width"], 0), _int(draft["height"], 0)
    if width <= 0 or height <= 0:
        return {"width": PREVIEW_WIDTH, "height": 0, "zones": [], "background": "#000000"}
    scale = PREVIEW_WIDTH / width
    zones = []
    for n, z in enumerate(draft["zones"]):
        x, y, w, h = (_int(z[k], -1) for k in ("x", "y", "w", "h"))
        if min(x, y) < 0 or min(w, h) <= 0:
            continue
        zones.append(
            {
                "n": n,
                "id": z["zone_id"],
                "playlist": z["playlist"],
                "x": round(x * scale, 1),
                "y": round(y * scale, 1),
                "w": round(w * scale, 1),
                "h": round(h * scale, 1),
                "z": _int(z["z"], 0),
                "outside": x + w > width or y + h > height,
            }
        )
    zones.sort(key=lambda zone: zone["z"])
    background = draft["background"] if len(draft["background"]) == 7 else "#000000"
    return {
        "width": PREVIEW_WIDTH,
        "height": round(height * scale, 1),
        "zones": zones,
        "background": background,
    }


async def _editor(
    console: Console,
    layout_id: str,
    draft: dict[str, Any],
    *,
    error: str | None = None,
    dirty: bool = False,
    status: int = 200,
) -> Response:
    playlists = [p["id"] for p in await list_content(console.state, "playlists")]
    context = {
        "layout_id": layout_id,
        "draft": draft,
        "preview": preview_of(draft),
        "playlists": playlists,
        "templates": TEMPLATES,
        "error": error,
        "dirty": dirty,
    }
    if console.request.headers.get("hx-request") == "true":
        response = console.fragment("layout_editor.html", flash=True, **context)
        response.status_code = status
        return response
    return console.render("layout.html", title=f"Layout {layout_id}", status=status, **context)


@router.get("/layouts")
async def layouts_page(request: Request) -> Response:
    console = await enter(request)
    stored = await list_content(console.state, "layouts")
    schedules = await list_content(console.state, "schedules")
    used = {
        lay["id"]: sorted({s["id"] for s in schedules if s["layout"] == lay["id"]})
        for lay in stored
    }
    previews = {lay["id"]: preview_of(draft_of(lay)) for lay in stored}
    return console.render(
        "layouts.html", title="Layouts", layouts=stored, used=used, previews=previews
    )


@router.post("/layouts")
async def layout_new(request: Request) -> Response:
    console = await enter(request)
    layout_id = console.form.get("id")
    template = console.form.get("template", "full")
    playlists = [p["id"] for p in await list_content(console.state, "playlists")]
    probe = {"id": layout_id, "zones": [{"id": "z", "w": 1, "h": 1, "playlist": "p"}]}
    try:
        Layout.model_validate(probe)
    except ValidationError:
        return console.redirect(
            "/layouts", "A layout id uses letters, digits and - _ . : (up to 64).", error=True
        )
    draft: dict[str, Any] = {
        "width": "1920",
        "height": "1080",
        "background": "#000000",
        "zones": [],
    }
    apply_template(draft, template if template in TEMPLATES else "full", playlists)
    return await _editor(console, layout_id, draft, dirty=True)


@router.get("/layouts/{layout_id}")
async def layout_page(request: Request, layout_id: str) -> Response:
    console = await enter(request)
    found = next(
        (x for x in await list_content(console.state, "layouts") if x["id"] == layout_id), None
    )
    if found is None:
        return console.redirect("/layouts", f"There is no layout {layout_id}.", error=True)
    return await _editor(console, layout_id, draft_of(found))


@router.post("/layouts/{layout_id}/preview")
async def layout_preview(request: Request, layout_id: str) -> Response:
    console = await enter(request)
    return console.fragment("layout_preview.html", preview=preview_of(draft_from_form(console)))


@router.post("/layouts/{layout_id}/edit")
async def layout_edit(request: Request, layout_id: str) -> Response:
    console = await enter(request)
    draft = draft_from_form(console)
    action = console.form.get("action")
    verb, _, arg = action.partition(":")
    playlists = [p["id"] for p in await list_content(console.state, "playlists")]
    if verb == "template" and arg in TEMPLATES:
        apply_template(draft, arg, playlists)
        return await _editor(console, layout_id, draft, dirty=True)
    if verb == "add":
        taken = {z["zone_id"] for z in draft["zones"]}
        n = len(draft["zones"]) + 1
        while f"zone-{n}" in taken:
            n += 1
        draft["zones"].append(
            {
                "zone_id": f"zone-{n}",
                "x": "0",
                "y": "0",
                "w": str(_int(draft["width"], 1920) // 2),
                "h": str(_int(draft["height"], 1080) // 2),
                "z": str(len(draft["zones"])),
                "playlist": playlists[0] if playlists else "",
            }
        )
        return await _editor(console, layout_id, draft, dirty=True)
    if verb == "remove" and arg.isdigit() and int(arg) < len(draft["zones"]):
        del draft["zones"][int(arg)]
        return await _editor(console, layout_id, draft, dirty=True)
    try:
        body = layout_from_draft(layout_id, draft)
    except ValueError as exc:
        return await _editor(console, layout_id, draft, error=str(exc), dirty=True, status=422)
    state = console.state
    _, error = await admin_call(
        put_layout(layout_id, body, Response(), state, state.admin_token_hash)
    )
    if error is not None:
        return await _editor(
            console, layout_id, draft, error=message_of(error), dirty=True, status=409
        )
    return console.redirect(f"/layouts/{layout_id}", f"Saved layout {layout_id}.")


@router.post("/layouts/{layout_id}/delete")
async def layout_delete(request: Request, layout_id: str) -> Response:
    console = await enter(request)
    error = await delete_content(console.state, "layouts", layout_id)
    if error is not None:
        return console.redirect("/layouts", message_of(error), error=True)
    return console.redirect("/layouts", f"Deleted layout {layout_id}.")
