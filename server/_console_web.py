"""Rendering console pages: templates, forms, flash messages and the security headers.

Templates are Jinja2 with autoescaping always on: every name a user typed (a device, a
file, a playlist) reaches the page as text. Pages load scripts only from ``/static``; the
Content-Security-Policy forbids inline script and inline style, so nothing injected into a
page can run.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server._console_session import (
    CSRF_FIELD,
    SAFE_METHODS,
    Session,
    check_csrf,
    current_session,
    is_https,
)
from server._problems import ApiError
from server._state import ServerState, get_state

HERE = Path(__file__).parent / "console"
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
FLASH_COOKIE = "signage_flash"
FORM_MAX_BYTES = 1024 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
NAV = [
    ("/devices", "Devices"),
    ("/pair", "Pair a screen"),
    ("/media", "Media"),
    ("/playlists", "Playlists"),
    ("/layouts", "Layouts"),
    ("/schedule", "Schedule"),
    ("/reports", "Proof of play"),
]


class SecurityHeaders:
    """Adds the security headers to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _since(value: dt.datetime | float | None) -> str:
    if value is None:
        return "never"
    stamp = value.timestamp() if isinstance(value, dt.datetime) else value
    seconds = max(0, int(dt.datetime.now(dt.UTC).timestamp() - stamp))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def _size(value: int | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def _iso(value: dt.datetime | float | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _utc_text(value: dt.datetime | float | None) -> str:
    if value is None:
        return "—"
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(since=_since, size=_size, iso=_iso, utc=_utc_text, duration=_duration)
environment.globals.update(nav=NAV, csrf_field=CSRF_FIELD)


@dataclass
class Form:
    """An urlencoded form: every value of a name, in order."""

    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        found = self.values.get(name)
        return found[0].strip() if found else default

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def has(self, name: str) -> bool:
        return name in self.values


async def read_form(request: Request) -> Form:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise ApiError(415, "unsupported_media_type", "forms are sent urlencoded")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > FORM_MAX_BYTES:
            raise ApiError(413, "too_large", f"form larger than {FORM_MAX_BYTES} bytes")
        chunks.append(chunk)
    values: dict[str, list[str]] = {}
    text = b"".join(chunks).decode("utf-8", errors="replace")
    for key, value in parse_qsl(text, keep_blank_values=True, max_num_fields=20_000):
        values.setdefault(key, []).append(value)
    return Form(values)


@dataclass(frozen=True)
class Flash:
    kind: str  # "ok" | "error"
    text: str


def _read_flash(request: Request) -> Flash | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        return Flash(kind=str(data["kind"]), text=str(data["text"])[:500])
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


@dataclass
class Console:
    """One console request: the server state, the signed-in session and the posted form."""

    request: Request
    state: ServerState
    session: Session
    form: Form

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        flash = _read_flash(self.request)
        html = environment.get_template(template).render(
            request=self.request,
            path=self.request.url.path,
            csrf=self.session.csrf,
            flash=flash,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
        if flash is not None:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def fragment(self, template: str, *, flash: bool = False, **context: Any) -> HTMLResponse:
        """Part of a page, for htmx and the live updates; ``flash`` shows (and clears) the
        pending message, for fragments that stand in for a whole page after a redirect."""
        message = _read_flash(self.request) if flash else None
        html = environment.get_template(template).render(
            csrf=self.session.csrf, flash=message, **context
        )
        response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
        if message is not None:
            response.delete_cookie(FLASH_COOKIE, path="/")
        return response

    def redirect(self, url: str, message: str | None = None, *, error: bool = False) -> Response:
        response = RedirectResponse(url, status_code=303)
        if message:
            set_flash(self.request, response, Flash("error" if error else "ok", message))
        return response


def set_flash(request: Request, response: Response, flash: Flash) -> None:
    payload = json.dumps({"kind": flash.kind, "text": flash.text[:500]}).encode()
    response.set_cookie(
        FLASH_COOKIE,
        base64.urlsafe_b64encode(payload).decode(),
        max_age=120,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


async def enter(request: Request) -> Console:
    """The signed-in console for this request; a write also passes the CSRF checks."""
    session = await current_session(request)
    form = Form()
    if request.method not in SAFE_METHODS:
        kind = request.headers.get("content-type", "")
        if kind.startswith(("application/x-www-form-urlencoded", "multipart/")) or not kind:
            form = await read_form(request)
        check_csrf(request, session, form.get(CSRF_FIELD) or None)
    return Console(request, get_state(request), session, form)


async def admin_call(call: Awaitable[Any]) -> tuple[Any, ApiError | None]:
    """Run an admin API function; its ``ApiError`` becomes a message for the page."""
    try:
        return await call, None
    except ApiError as exc:
        return None, exc


def message_of(error: ApiError) -> str:
    return error.detail or error.code.replace("_", " ")


def in_words(exc: ValidationError, collection: str, noun: str) -> str:
    """The first validation error as a sentence: "item 2, duration_ms: ..."."""
    first = exc.errors()[0]
    where = [str(p) for p in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ")
    if len(where) >= 2 and where[0] == collection and where[1].isdigit():
        fields = [p for p in where[2:] if not p.isdigit() and p not in _UNION_TAGS]
        place = f"{noun} {int(where[1]) + 1}" + (f", {fields[-1]}" if fields else "")
        return f"{place}: {message}"
    return f"{', '.join(where)}: {message}" if where else message


_UNION_TAGS = {"image", "video", "text", "clock"}


def query(**params: str) -> str:
    return urlencode({k: v for k, v in params.items() if v})


Handler = Callable[[Request], Awaitable[Response]]
