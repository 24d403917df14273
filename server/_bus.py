"""What every replica of the server must hear: a claim that ends a long poll, a revoked token,
a new command. One process hears itself (``LocalBus``); several hear each other through a
Redis stream that each one reads in order (``server._redis_state.RedisBus``).

Also here, on top of the bus: wake-ups for long polls (``Wakeups``) and leases for work that
one replica at a time should do (``Leases``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Protocol

log = logging.getLogger("signage.server")
Handler = Callable[[dict[str, str]], None]


class Bus(Protocol):
    def on(self, kind: str, handler: Handler) -> None:
        """Call ``handler`` with the payload of every ``kind`` message, ours included."""
        ...

    async def send(self, kind: str, payload: dict[str, str]) -> None: ...


class Handlers:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def dispatch(self, kind: str, payload: dict[str, str]) -> None:
        for handler in self._handlers.get(kind, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("handling a %s message failed", kind)


class LocalBus(Handlers):
    """The bus of a server that is one process: a message is handled as it is sent."""

    async def send(self, kind: str, payload: dict[str, str]) -> None:
        self.dispatch(kind, payload)


class Wakeups:
    """Long polls waiting for something another request does, on this replica or another:
    ``listen(key)`` before looking, ``wake(key)`` after the change is committed."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._events: dict[str, asyncio.Event] = {}
        self._waiters: Counter[str] = Counter()
        bus.on("wake", self._woken)
        # After an outage of the bus, wake-ups may have been missed: every poll looks again.
        bus.on("resync", lambda _payload: self._wake_all())

    @contextlib.contextmanager
    def listen(self, key: str) -> Iterator[asyncio.Event]:
        event = self._events.setdefault(key, asyncio.Event())
        self._waiters[key] += 1
        try:
            yield event
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]
                if self._events.get(key) is event:
                    del self._events[key]

    async def wake(self, key: str) -> None:
        await self._bus.send("wake", {"key": key})

    def _woken(self, payload: dict[str, str]) -> None:
        event = self._events.get(payload["key"])
        if event is not None:
            event.set()

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    def __len__(self) -> int:
        return len(self._events)


class Leases(Protocol):
    async def hold(self, name: str, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl_s``; False while another replica has it."""
        ...


class LocalLeases:
    """One process holds every lease."""

    async def hold(self, name: str, ttl_s: float) -> bool:
        return True
