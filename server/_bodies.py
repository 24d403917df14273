"""Request bodies: the size limit of each route (one table), the ASGI layer that enforces it
before and while a body is read, and JSON parsing with a bounded depth.

The limit is checked against ``Content-Length`` before anything is read, then against the
bytes actually streamed (a chunked body has no length), so no route can be made to hold more
than its limit in memory. A refusal is a 413 problem with ``Connection: close``: the rest of
the body is not worth reading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import ServerConfig
from server._problems import ApiError, problem_response
from server._routes import Routes

KIB = 1024
MIB = 1024 * KIB
DEFAULT_MAX = 64 * KIB  # pairing requests, claims, command results, anything not listed
ADMIN_JSON_MAX = MIB
UNDOCUMENTED_MAX = MIB  # the web console's forms (a long playlist), never read unrouted
CONTENT_MAX = 4 * MIB  # a playlist of 1 000 items with long texts
HEARTBEAT_MAX = 64 * KIB
IMPRESSIONS_MAX = MIB  # 1 000 impressions of about 250 bytes
UPLOAD_CHUNK = 8 * MIB  # what clients are told to send
UPLOAD_CHUNK_MAX = 2 * UPLOAD_CHUNK  # what one PUT may carry
ONE_SHOT_MAX = 64 * MIB
MAX_JSON_DEPTH = 32
# Numbers in headers: 18 digits hold any file size (10^18 B is an exabyte) and never reach
# the cost of converting a huge decimal string.
MAX_DIGITS = 18

Limit = Callable[[ServerConfig], int]


@dataclass(frozen=True)
class _Rule:
    method: str
    path: re.Pattern[str]
    limit: Limit


def _rule(method: str, template: str, limit: int | Limit) -> _Rule:
    pattern = re.escape(template).replace(r"\{id\}", "[^/]+").replace(r"\{rest\}", ".*")
    fixed = limit
    return _Rule(
        method, re.compile(f"^{pattern}$"), fixed if callable(fixed) else (lambda _c: fixed)
    )


RULES = [
    _rule("PUT", "/api/v1/admin/uploads/{id}", UPLOAD_CHUNK_MAX),
    _rule("POST", "/api/v1/admin/media", lambda c: min(ONE_SHOT_MAX, c.max_upload_bytes)),
    _rule("POST", "/api/v1/device/screenshots", lambda c: c.screenshot_max_bytes),
    _rule("POST", "/api/v1/device/impressions", IMPRESSIONS_MAX),
    _rule("POST", "/api/v1/device/heartbeat", HEARTBEAT_MAX),
    *(
        _rule("PUT", f"/api/v1/admin/{kind}/{{id}}", CONTENT_MAX)
        for kind in ("playlists", "layouts", "schedules")
    ),
    _rule("*", "/api/v1/admin/{rest}", ADMIN_JSON_MAX),
    _rule("PUT", "/media/uploads/{id}", UPLOAD_CHUNK_MAX),  # the web console's upload chunks
]


def body_limit(method: str, path: str, config: ServerConfig, takes_body: bool | None) -> int:
    """The most bytes a request to ``method path`` may carry: nothing for an operation that
    takes no body; for a path /openapi.json does not document (the web console's forms, or
    nothing: the router answers 404/405 unread), ``UNDOCUMENTED_MAX``."""
    if takes_body is False:
        return 0
    for rule in RULES:
        if rule.method in (method, "*") and rule.path.match(path):
            return rule.limit(config)
    return DEFAULT_MAX if takes_body else UNDOCUMENTED_MAX


def bounded_int(text: str) -> int | None:
    """A decimal header number, or None when it is not one or is too long to be meaningful."""
    if not text.isascii() or not text.isdigit() or len(text) > MAX_DIGITS:
        return None
    return int(text)


def too_large(limit: int) -> ApiError:
    detail = f"body larger than {limit} bytes" if limit else "this operation takes no body"
    return ApiError(413, "too_large", detail, headers={"Connection": "close"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class BodyLimit:
    """Refuse a body over its route's limit: by its declared length, or as it streams in."""

    def __init__(
        self, app: ASGIApp, config_of: Callable[[], ServerConfig | None], routes: Routes
    ) -> None:
        self.app = app
        self.config_of = config_of
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config = self.config_of()
        if scope["type"] != "http" or config is None:
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        limit = body_limit(method, path, config, self.routes.takes_body(method, path))
        declared = _header(scope, b"content-length")
        refusal: ApiError | None = None
        if limit == 0 and _header(scope, b"transfer-encoding") is not None:
            # Nothing reads a body here, so counting would never see it: refuse it now.
            refusal = too_large(0)
        elif declared is not None:
            length = bounded_int(declared.strip())
            if length is None:
                refusal = ApiError(
                    400,
                    "bad_content_length",
                    "Content-Length is not a number of bytes",
                    headers={"Connection": "close"},
                )
            elif length > limit:
                refusal = too_large(limit)
        if refusal is not None:
            await problem_response(
                refusal.status,
                refusal.code,
                refusal.detail,
                instance=scope["path"],
                headers=refusal.headers,
            )(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except ApiError as exc:
            # Raised by counted_receive outside any route's error handling.
            if started or exc.code != "too_large":
                raise
            await problem_response(
                413, exc.code, exc.detail, instance=scope["path"], headers=exc.headers
            )(scope, receive, send)


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (iterative: no recursion)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: 400 ``invalid_json``, or 400 ``json_too_deep`` past
    ``MAX_JSON_DEPTH`` levels (deeper documents would only exhaust the parser's stack)."""
    too_deep = ApiError(400, "json_too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise too_deep from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"body is not JSON: {exc}") from exc
    # Nesting needs an opening bracket per level: fewer brackets than the limit need no walk.
    brackets = raw.count(b"{") + raw.count(b"[")
    if brackets > MAX_JSON_DEPTH and json_depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JsonRoute(APIRoute):
    """A route whose JSON body goes through ``parse_json`` (every router of the app uses it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            return await handler(_JsonRequest(request.scope, request.receive))

        return bounded
