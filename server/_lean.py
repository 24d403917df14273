"""Lean routes: the busiest device operation served without FastAPI's per-request machinery.

Every screen sends a heartbeat every interval, so what one costs bounds how many screens a
process serves. Around the few microseconds of work a heartbeat does, FastAPI adds its own
error, telemetry, body-limit, exception and exit-stack layers, a match against every route,
dependency solving and response validation: several times the cost of the work itself.

A lean route is an ordinary route of the app (documented in /openapi.json, served by FastAPI
when called through it) whose endpoint takes only the request, the authenticated device and
the server state, and returns a finished ``Response``. ``Lanes`` sends its method and path
straight to that endpoint, behind the app's own layers (the front door, the authentication
gate, the body limit, the security headers: the same middleware, in the same order, as every
other route), and answers its errors with the problem+json the app's handlers send
(``server._problems.handled_problem``). So authentication, limits and error answers stay one
policy each; only FastAPI's plumbing is skipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import iter_route_contexts
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from server._auth import DEVICE_KEY
from server._problems import handled_problem
from server._state import AuthedDevice, ServerState

LeanEndpoint = Callable[[Request, AuthedDevice, ServerState], Awaitable[Response]]
_LEAN_MARK = "__signage_lean__"


def lean(endpoint: LeanEndpoint) -> LeanEndpoint:
    """Mark a device route's endpoint as lean (``Lanes`` serves it directly)."""
    setattr(endpoint, _LEAN_MARK, True)
    return endpoint


def _endpoint_app(endpoint: LeanEndpoint, state_of: Callable[[], ServerState | None]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            state = state_of()
            assert state is not None  # Lanes serves nothing before startup
            # The authentication gate in front has put its verdict here, or answered already.
            device: AuthedDevice = scope["state"][DEVICE_KEY]
            response = await endpoint(request, device, state)
        except Exception as exc:
            answer = handled_problem(exc, scope["path"])
            if answer is None:
                raise  # a bug: server._front logs it and answers 500
            response = answer
        await response(scope, receive, send)

    return app


class Lanes:
    """Dispatch the lean routes' requests past FastAPI, everything else through it.

    ``middleware``: the app's own (``app.user_middleware``), wrapped around each lean
    endpoint as FastAPI wraps it around its router.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Iterable[Any],
        middleware: list[Middleware],
        state_of: Callable[[], ServerState | None],
    ) -> None:
        self.app = app
        self.state_of = state_of
        self._lanes: dict[tuple[str, str], ASGIApp] = {}
        # Routes as FastAPI sees them after include_router (what /openapi.json lists too).
        for route in iter_route_contexts(list(routes)):
            endpoint = route.endpoint
            if endpoint is None or not getattr(endpoint, _LEAN_MARK, False):
                continue
            lane = _endpoint_app(endpoint, state_of)
            for cls, args, kwargs in reversed(middleware):
                lane = cls(lane, *args, **kwargs)
            for method in route.methods or ():
                self._lanes[method, str(route.path)] = lane

    def serves(self, method: str, path: str) -> bool:
        return (method, path) in self._lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.state_of() is not None:
            lane = self._lanes.get((scope["method"], scope["path"]))
            if lane is not None:
                await lane(scope, receive, send)
                return
        await self.app(scope, receive, send)
