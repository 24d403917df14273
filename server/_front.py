"""The outermost layer of the app, in front of FastAPI's own error middleware.

Every response is counted here for /metrics, by route class and status class, so a 500 is
counted like any other. An exception nothing else handled (a bug, a ``RecursionError``) is
logged once and answered with a problem+json 500. Credentials in a query string are refused
on every route, known or not, and ``OPTIONS`` is answered with the methods the path really
has (Starlette's 405 names only the first route matching the path; fixed here too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server._problems import problem_response
from server._routes import Routes

log = logging.getLogger("signage.server")
FORBIDDEN_QUERY_KEYS = {"token", "access_token"}
WARN_PEERS_MAX = 100
ROUTE_CLASSES = ("pairing", "device", "events", "assets", "admin", "operations", "other")


def route_class(path: str) -> str:
    """The label /metrics counts a path under: a handful of classes, never an id."""
    if path in ("/api/v1/device/events", "/api/v1/admin/events"):
        return "events"
    for prefix, name in (
        ("/api/v1/pairings", "pairing"),
        ("/api/v1/device/", "device"),
        ("/api/v1/assets/", "assets"),
        ("/api/v1/admin/", "admin"),
    ):
        if path.startswith(prefix):
            return name
    if path in ("/healthz", "/metrics", "/openapi.json"):
        return "operations"
    return "other"


class Front:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Routes,
        count: Callable[[str, str], None],
    ) -> None:
        self.app = app
        self.routes = routes
        self.count = count
        self._warned: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        kind = route_class(path)
        status: int | None = None

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status == 405:
                    message = _with_allow(message, self.routes.methods(path))
                self.count(kind, f"{status // 100}xx")
            await send(message)

        self._check_forwarding(scope)
        try:
            query = scope.get("query_string", b"").decode("latin-1")
            keys = {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)} if query else ()
            if FORBIDDEN_QUERY_KEYS.intersection(keys):
                response = problem_response(
                    400,
                    "token_in_query",
                    "credentials go in the Authorization header, never in the URL",
                    instance=path,
                )
                await response(scope, receive, counting_send)
                return
            if scope["method"] == "OPTIONS":
                await self._options(scope, receive, counting_send)
                return
            await self.app(scope, receive, counting_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], path)
            if status is None:
                response = problem_response(500, "internal_error", instance=path)
                await response(scope, receive, counting_send)

    def _check_forwarding(self, scope: Scope) -> None:
        """Say once per peer when its X-Forwarded-For is ignored: a proxy nobody listed in
        server.forwarded_allow_ips makes every client look like the proxy to rate limits."""
        forwarded = next((v for k, v in scope["headers"] if k == b"x-forwarded-for"), None)
        client = scope.get("client")
        if forwarded is None or not client or len(self._warned) >= WARN_PEERS_MAX:
            return
        entries = {part.strip() for part in forwarded.decode("latin-1").split(",")}
        peer = str(client[0])
        if peer not in entries and peer not in self._warned:
            self._warned.add(peer)
            log.warning(
                "X-Forwarded-For from %s ignored: add the proxy's address to "
                "server.forwarded_allow_ips, or clients are all known as the proxy",
                peer,
            )

    async def _options(self, scope: Scope, receive: Receive, send: Send) -> None:
        methods = self.routes.methods(scope["path"])
        if not methods:
            await problem_response(404, "not_found", instance=scope["path"])(scope, receive, send)
            return
        allow = ", ".join(methods).encode()
        await send({"type": "http.response.start", "status": 204, "headers": [(b"allow", allow)]})
        await send({"type": "http.response.body", "body": b""})


def _with_allow(message: Message, methods: list[str]) -> Message:
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
    headers.append((b"allow", ", ".join(methods).encode()))
    return {**message, "headers": headers}
