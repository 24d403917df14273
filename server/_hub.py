"""Event fan-out: per-device channels with ids and a replay buffer, and a dashboard bus.

Ids come from one counter that starts at the boot time in milliseconds, so they keep
increasing across server restarts and a ``Last-Event-ID`` from an earlier run is recognised
as unknown rather than silently matched.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 256


@dataclass(frozen=True)
class Event:
    id: int
    name: str
    data: dict[str, Any]


@dataclass(eq=False)
class Subscriber:
    """One open stream. ``closed`` is set when it is replaced, revoked or overflows."""

    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A reader this far behind reconnects and replays; holding more would grow memory.
            self.closed.set()


@dataclass
class _Channel:
    buffer: deque[Event]
    evicted_upto: int = 0
    subscriber: Subscriber | None = None


@dataclass(frozen=True)
class Subscription:
    subscriber: Subscriber
    replay: list[Event]
    gap: bool  # the replay cannot be complete: the client must re-fetch the manifest
    last_id: int


class EventHub:
    def __init__(self, replay_size: int = 64) -> None:
        self._replay_size = replay_size
        self._next_id = int(time.time() * 1000)
        self._channels: dict[str, _Channel] = {}
        self._dashboards: set[Subscriber] = set()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    @property
    def last_id(self) -> int:
        return self._next_id

    def _channel(self, device_id: str) -> _Channel:
        channel = self._channels.get(device_id)
        if channel is None:
            channel = _Channel(buffer=deque())
            self._channels[device_id] = channel
        return channel

    def publish(self, device_id: str, name: str, data: dict[str, Any]) -> Event:
        channel = self._channel(device_id)
        event = Event(self._new_id(), name, data)
        channel.buffer.append(event)
        while len(channel.buffer) > self._replay_size:
            channel.evicted_upto = channel.buffer.popleft().id
        if channel.subscriber is not None:
            channel.subscriber.offer(event)
        return event

    def subscribe(self, device_id: str, last_event_id: str | None) -> Subscription:
        """Open a device stream, replacing (closing) the one already open."""
        channel = self._channel(device_id)
        if channel.subscriber is not None:
            channel.subscriber.closed.set()
        subscriber = Subscriber()
        channel.subscriber = subscriber
        replay: list[Event] = []
        gap = True
        if last_event_id is not None and last_event_id.strip().isdigit():
            last = int(last_event_id)
            if channel.evicted_upto <= last <= self._next_id:
                replay = [e for e in channel.buffer if e.id > last]
                gap = False
        return Subscription(subscriber, replay, gap, self._next_id)

    def unsubscribe(self, device_id: str, subscriber: Subscriber) -> bool:
        """Drop the stream if it is still the current one; False if it was replaced."""
        channel = self._channels.get(device_id)
        if channel is None or channel.subscriber is not subscriber:
            return False
        channel.subscriber = None
        return True

    def close_device(self, device_id: str) -> None:
        channel = self._channels.pop(device_id, None)
        if channel is not None and channel.subscriber is not None:
            channel.subscriber.closed.set()

    def close_all(self) -> None:
        """End every stream (shutdown): clients reconnect to the next server."""
        for device_id in list(self._channels):
            self.close_device(device_id)
        for subscriber in list(self._dashboards):
            subscriber.closed.set()

    def stream_count(self) -> int:
        return sum(1 for c in self._channels.values() if c.subscriber is not None)

    # --- dashboards --------------------------------------------------------------------------

    def dashboard_subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._dashboards.add(subscriber)
        return subscriber

    def dashboard_unsubscribe(self, subscriber: Subscriber) -> None:
        self._dashboards.discard(subscriber)

    def broadcast(self, name: str, data: dict[str, Any]) -> None:
        event = Event(self._new_id(), name, data)
        for subscriber in list(self._dashboards):
            subscriber.offer(event)

    def dashboard_count(self) -> int:
        return len(self._dashboards)
