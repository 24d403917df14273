"""Waiting for things the devices do: conditions checked against timeline events as they come."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from player import TimelineEvent

Predicate = Callable[[TimelineEvent], bool]


@dataclass
class _Pending:
    devices: set[str]
    predicate: Predicate
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # Host monotonic time at which each device matched (update latency is real time).
    matched_at: dict[str, float] | None = None


class Watch:
    """Feed it every device's events; ``each_device(...)`` is set once all of them matched."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self.states: dict[str, str] = {}
        self.started: dict[str, int] = {}

    def __call__(self, event: TimelineEvent) -> None:
        if event.event == "state" and event.state is not None:
            self.states[event.device] = event.state
        elif event.event == "start":
            self.started[event.device] = self.started.get(event.device, 0) + 1
        for pending in list(self._pending):
            if event.device in pending.devices and pending.predicate(event):
                pending.devices.discard(event.device)
                if pending.matched_at is not None:
                    pending.matched_at[event.device] = time.monotonic()
                if not pending.devices:
                    pending.done.set()
                    self._pending.remove(pending)

    def each_device(
        self,
        devices: Collection[str],
        predicate: Predicate,
        matched_at: dict[str, float] | None = None,
    ) -> asyncio.Event:
        """Set once every device produced an event matching ``predicate``."""
        pending = _Pending(set(devices), predicate, matched_at=matched_at)
        if not pending.devices:
            pending.done.set()
        else:
            self._pending.append(pending)
        return pending.done

    def playing(self, devices: Collection[str], *, after_t: float) -> asyncio.Event:
        """Each device started an item after ``after_t``."""
        return self.each_device(devices, lambda e: e.event == "start" and e.t >= after_t)

    def updated(
        self,
        devices: Collection[str],
        *,
        after_t: float,
        items: Collection[str],
        matched_at: dict[str, float] | None = None,
    ) -> asyncio.Event:
        """Each device started one of ``items`` (or, with none named, reloaded and started)."""
        if items:
            wanted = frozenset(items)
            return self.each_device(
                devices,
                lambda e: e.event == "start" and e.t >= after_t and e.item in wanted,
                matched_at,
            )
        reloaded: set[str] = set()

        def predicate(event: TimelineEvent) -> bool:
            if event.t < after_t:
                return False
            if event.event == "state":
                reloaded.add(event.device)
            return event.event == "start" and event.device in reloaded

        return self.each_device(devices, predicate, matched_at)
