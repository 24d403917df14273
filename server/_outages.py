"""When an engine the server needs (the database, Redis) goes away and comes back.

A request that fails because an engine is unreachable (refused, reset, timed out) is answered
503 problem+json with ``Retry-After``, never a 500 with a stack trace (``OutageGuard``). The
first such failure marks the engine down and logs one line; from then on a watcher probes it
every ``PROBE_S`` until it answers, logs one line that it is back and runs what must be redone
after an outage (``on_back``: caches dropped, missed messages made up for). ``/healthz`` reports
an engine down until then.

Which exceptions mean "unreachable" is registered by whoever owns the engine's client, so this
module imports neither driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server._problems import problem_response

log = logging.getLogger("signage.server")
PROBE_S = 1.0
PROBE_TIMEOUT_S = 3.0
RETRY_AFTER_S = 5  # told to clients refused while an engine is down

Probe = Callable[[], Awaitable[bool]]


@dataclass
class _Engine:
    name: str
    lost: Callable[[BaseException], bool]
    probe: Probe
    busy: Callable[[BaseException], bool]
    on_back: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    down_since: float | None = None
    watcher: asyncio.Task[None] | None = None


class Outages:
    def __init__(self) -> None:
        self._engines: dict[str, _Engine] = {}

    def register(
        self,
        name: str,
        lost: Callable[[BaseException], bool],
        probe: Probe,
        busy: Callable[[BaseException], bool] = lambda _exc: False,
    ) -> None:
        """``lost(exc)``: whether ``exc`` from the engine's client says it cannot reach it;
        ``probe()``: True once it is usable again (raising or False: still down);
        ``busy(exc)``: one of those that says the client is overloaded (all connections in
        use), not the engine lost: answered 503 too, without marking the engine down."""
        self._engines[name] = _Engine(name, lost, probe, busy)

    def on_back(self, name: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` each time ``name`` is back after an outage."""
        self._engines[name].on_back.append(action)

    def _classify(self, exc: BaseException) -> tuple[str, bool] | None:
        """The engine whose loss ``exc`` reports (searched through causes and groups), and
        whether it says the client is only busy."""
        seen: set[int] = set()
        pending: list[BaseException | None] = [exc]
        while pending:
            current = pending.pop()
            if current is None or id(current) in seen:
                continue
            seen.add(id(current))
            for engine in self._engines.values():
                if engine.lost(current):
                    return engine.name, engine.busy(current)
            if isinstance(current, BaseExceptionGroup):
                pending.extend(current.exceptions)
            pending.extend((current.__cause__, current.__context__))
        return None

    def noted(self, exc: BaseException) -> str | None:
        """If ``exc`` is an engine's loss, mark that engine down (logged once) and name it."""
        found = self._classify(exc)
        if found is None:
            return None
        name, busy = found
        if not busy:
            self.down(name, exc)
        return name

    def down(self, name: str, exc: BaseException | None = None) -> None:
        engine = self._engines[name]
        if engine.down_since is not None:
            return
        engine.down_since = time.monotonic()
        reason = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        log.warning("%s unavailable%s: answering 503 until it is back", name, reason)
        engine.watcher = asyncio.get_running_loop().create_task(self._watch(engine))

    def is_down(self, name: str) -> bool:
        engine = self._engines.get(name)
        return engine is not None and engine.down_since is not None

    def names(self) -> list[str]:
        """The engines that can be lost, in the order they were registered."""
        return list(self._engines)

    async def check(self, name: str) -> bool:
        """Probe ``name`` now (bounded); marks it down when it does not answer."""
        engine = self._engines.get(name)
        if engine is None:
            return True
        if engine.down_since is not None:
            return False
        try:
            if await asyncio.wait_for(engine.probe(), PROBE_TIMEOUT_S):
                return True
            self.down(name)
        except Exception as exc:
            self.down(name, exc)
        return False

    @staticmethod
    async def _answers(engine: _Engine) -> bool:
        try:
            return await asyncio.wait_for(engine.probe(), PROBE_TIMEOUT_S)
        except Exception:  # still down: said once already
            return False

    async def _watch(self, engine: _Engine) -> None:
        answered = False
        while not answered:
            await asyncio.sleep(PROBE_S)
            answered = await self._answers(engine)
        for action in engine.on_back:
            try:
                await action()
            except Exception:
                log.exception("catching up after %s came back failed", engine.name)
        since = engine.down_since or time.monotonic()
        engine.down_since = None
        engine.watcher = None
        log.warning("%s is back after %.1f s", engine.name, time.monotonic() - since)

    async def close(self) -> None:
        for engine in self._engines.values():
            if engine.watcher is not None:
                engine.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await engine.watcher


def unavailable(name: str, path: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return problem_response(
        503,
        f"{name}_unavailable",
        f"the server cannot reach its {name} at the moment; try again shortly",
        instance=path,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class OutageGuard:
    """Answers 503 for a request that failed because an engine is unreachable; a response
    already under way (an event stream) is ended cleanly instead. Nothing else is touched."""

    def __init__(self, app: ASGIApp, *, outages_of: Callable[[], Outages | None]) -> None:
        self.app = app
        self.outages_of = outages_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = finished = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            outages = self.outages_of()
            name = outages.noted(exc) if outages is not None else None
            if name is None:
                raise
            if not started:
                await unavailable(name, scope["path"])(scope, receive, send)
            elif not finished:
                with contextlib.suppress(Exception):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
