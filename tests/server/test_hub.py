"""The in-process hub's subscribers: what a stream's writer takes, and when it is woken."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from server._hub import QUEUE_LIMIT, Event, EventHub, Subscriber

WAIT_S = 5.0


def _event(n: int) -> Event:
    return Event(str(n), "command", {"n": n}, (n, 0))


async def test_a_reader_too_far_behind_is_closed_and_holds_nothing() -> None:
    subscriber = Subscriber()
    for n in range(QUEUE_LIMIT):
        subscriber.offer(_event(n))
    full = subscriber.closed
    subscriber.offer(_event(QUEUE_LIMIT))
    assert (full, subscriber.closed) == (False, True)
    assert subscriber.take() == []
    subscriber.offer(_event(QUEUE_LIMIT + 1))  # offered after: dropped, not held
    assert await asyncio.wait_for(subscriber.next(), WAIT_S) is None


async def _woken_by(subscriber: Subscriber, wake: Callable[[], None]) -> None:
    waiting = asyncio.ensure_future(subscriber.wait())
    await asyncio.sleep(0)
    assert not waiting.done()
    wake()
    await asyncio.wait_for(waiting, WAIT_S)


async def test_a_waiting_writer_is_woken_by_an_event_a_wake_or_a_close() -> None:
    subscriber = Subscriber()
    await _woken_by(subscriber, lambda: subscriber.offer(_event(1)))
    assert [e.data["n"] for e in subscriber.take()] == [1]
    await _woken_by(subscriber, subscriber.wake)  # a ping due, or the client gone
    assert subscriber.take() == [] and not subscriber.closed
    await _woken_by(subscriber, subscriber.close)
    assert subscriber.closed


async def test_events_at_or_below_the_floor_are_skipped() -> None:
    subscriber = Subscriber()
    subscriber.floor = (5, 0)
    for n in (4, 5, 6):
        subscriber.offer(_event(n))
    assert [e.data["n"] for e in subscriber.take()] == [6]


async def test_a_second_stream_closes_the_first_and_replays_what_it_missed() -> None:
    hub = EventHub(replay_size=4)
    first = await hub.subscribe("dev", None)
    await hub.publish("dev", "command", {"n": 1})
    seen = await asyncio.wait_for(first.subscriber.next(), WAIT_S)
    assert seen is not None
    await hub.publish("dev", "command", {"n": 2})
    second = await hub.subscribe("dev", seen.id)
    assert first.subscriber.closed and not second.subscriber.closed
    assert [e.data for e in second.replay] == [{"n": 2}]
    assert not hub.unsubscribe("dev", first.subscriber), "the replaced stream is not current"
    assert hub.unsubscribe("dev", second.subscriber)
    assert hub.stream_count() == 0
