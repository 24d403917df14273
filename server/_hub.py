"""Event fan-out: per-device channels with ids and a replay buffer, and a dashboard bus.

``Hub`` is the interface; ``EventHub`` keeps channels in this process, and
``server._redis_state.RedisHub`` keeps them in Redis streams so a device can reconnect to any
replica with its ``Last-Event-ID``. A device has one stream at a time: opening a second one,
on any replica, closes the first.

In this process, ids come from one counter that starts at the boot time in milliseconds, so
they keep increasing across server restarts and a ``Last-Event-ID`` from an earlier run is
recognised as unknown rather than silently matched.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

QUEUE_LIMIT = 256

Seq = tuple[int, int]  # an event's place in its device's order (Redis stream ids are two parts)


@dataclass(frozen=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]
    seq: Seq = (0, 0)


class Subscriber:
    """One open stream's inbox: the hub offers events, the stream's writer takes them.

    Light on purpose, since a replica holds one per screen: a list, and a future only while
    its writer waits. ``closed`` once it is replaced, revoked or too far behind. Events at or
    below ``floor`` were replayed already: the live ones that raced the replay are dropped
    when taken.
    """

    __slots__ = ("_events", "_waiter", "closed", "floor")

    def __init__(self) -> None:
        self.closed = False
        self.floor: Seq | None = None
        self._events: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._events) >= QUEUE_LIMIT:
            # A reader this far behind reconnects and replays; holding more would grow memory.
            self.close()
            return
        self._events.append(event)
        self.wake()

    def close(self) -> None:
        self.closed = True
        self._events = []
        self.wake()

    def wake(self) -> None:
        """End the writer's ``wait`` (also for a ping due, or the client gone)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self) -> list[Event]:
        """Every pending event, oldest first (none once closed)."""
        taken, self._events = self._events, []
        floor = self.floor
        return taken if floor is None else [e for e in taken if e.seq > floor]

    async def wait(self) -> None:
        """Until an event is offered, the subscriber closes, or ``wake``; at once when an
        event is pending or it is closed already."""
        if self._events or self.closed:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def next(self) -> Event | None:
        """The next event, or None once closed."""
        while not self.closed:
            if self._events:
                event = self._events.pop(0)
                if self.floor is None or event.seq > self.floor:
                    return event
                continue
            await self.wait()
        return None


@dataclass(frozen=True)
class Subscription:
    subscriber: Subscriber
    replay: list[Event]
    gap: bool  # the replay cannot be complete: the client must re-fetch the manifest
    last_id: str


class Hub(Protocol):
    async def publish(self, device_id: str, name: str, data: dict[str, Any]) -> None: ...

    async def publish_many(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """(device_id, name, data) each: a fan-out, sent in as few round trips as possible."""
        ...

    async def subscribe(self, device_id: str, last_event_id: str | None) -> Subscription:
        """Open a device stream, replacing (closing) the one already open, on any replica."""
        ...

    def unsubscribe(self, device_id: str, subscriber: Subscriber) -> bool:
        """Drop the stream if it is still the current one here; False if it was replaced."""
        ...

    async def close_device(self, device_id: str) -> None:
        """End the device's stream wherever it is open, and forget its events (revoked)."""
        ...

    def close_all(self) -> None:
        """End every stream of this process (shutdown): clients reconnect to another."""
        ...

    def stream_count(self) -> int: ...

    def dashboard_subscribe(self) -> Subscriber: ...

    def dashboard_unsubscribe(self, subscriber: Subscriber) -> None: ...

    async def broadcast(self, name: str, data: dict[str, Any]) -> None:
        """An event for every dashboard stream, on every replica."""
        ...

    def dashboards_open(self) -> bool:
        """Whether a dashboard listens anywhere (heartbeat events are sent only then)."""
        ...

    def dashboard_count(self) -> int:
        """Dashboard streams of this process."""
        ...


@dataclass(slots=True)
class _Channel:
    buffer: deque[Event]
    evicted_upto: int = 0
    subscriber: Subscriber | None = None


class EventHub:
    """A ``Hub`` in this process's memory."""

    def __init__(self, replay_size: int = 64) -> None:
        self._replay_size = replay_size
        self._next_id = int(time.time() * 1000)
        self._channels: dict[str, _Channel] = {}
        self._dashboards: set[Subscriber] = set()

    def _new_event(self, name: str, data: dict[str, Any]) -> Event:
        self._next_id += 1
        return Event(str(self._next_id), name, data, (self._next_id, 0))

    def _channel(self, device_id: str) -> _Channel:
        channel = self._channels.get(device_id)
        if channel is None:
            channel = _Channel(buffer=deque())
            self._channels[device_id] = channel
        return channel

    def _publish(self, device_id: str, name: str, data: dict[str, Any]) -> None:
        channel = self._channel(device_id)
        event = self._new_event(name, data)
        channel.buffer.append(event)
        while len(channel.buffer) > self._replay_size:
            channel.evicted_upto = channel.buffer.popleft().seq[0]
        if channel.subscriber is not None:
            channel.subscriber.offer(event)

    async def publish(self, device_id: str, name: str, data: dict[str, Any]) -> None:
        self._publish(device_id, name, data)

    async def publish_many(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        for device_id, name, data in events:
            self._publish(device_id, name, data)

    async def subscribe(self, device_id: str, last_event_id: str | None) -> Subscription:
        channel = self._channel(device_id)
        if channel.subscriber is not None:
            channel.subscriber.close()
        subscriber = Subscriber()
        channel.subscriber = subscriber
        replay: list[Event] = []
        gap = True
        if last_event_id is not None and last_event_id.strip().isdigit():
            last = int(last_event_id)
            if channel.evicted_upto <= last <= self._next_id:
                replay = [e for e in channel.buffer if e.seq[0] > last]
                gap = False
        return Subscription(subscriber, replay, gap, str(self._next_id))

    def unsubscribe(self, device_id: str, subscriber: Subscriber) -> bool:
        channel = self._channels.get(device_id)
        if channel is None or channel.subscriber is not subscriber:
            return False
        channel.subscriber = None
        return True

    async def close_device(self, device_id: str) -> None:
        channel = self._channels.pop(device_id, None)
        if channel is not None and channel.subscriber is not None:
            channel.subscriber.close()

    def close_all(self) -> None:
        for channel in self._channels.values():
            if channel.subscriber is not None:
                channel.subscriber.close()
        self._channels.clear()
        for subscriber in list(self._dashboards):
            subscriber.close()

    def stream_count(self) -> int:
        return sum(1 for c in self._channels.values() if c.subscriber is not None)

    # --- dashboards --------------------------------------------------------------------------

    def dashboard_subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._dashboards.add(subscriber)
        return subscriber

    def dashboard_unsubscribe(self, subscriber: Subscriber) -> None:
        self._dashboards.discard(subscriber)

    async def broadcast(self, name: str, data: dict[str, Any]) -> None:
        event = self._new_event(name, data)
        for subscriber in list(self._dashboards):
            subscriber.offer(event)

    def dashboards_open(self) -> bool:
        return bool(self._dashboards)

    def dashboard_count(self) -> int:
        return len(self._dashboards)
