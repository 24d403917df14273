"""The Redis-backed shared state, with two replicas on one real Redis: what one does, the
other sees, and what must happen once happens once."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis

import server._redis_state
from core import ServerConfig
from server._bus import Wakeups
from server._hub import Event, Subscriber
from server._limits import RESERVATION_STALE_S
from server._manifests import CachedManifest
from server._outages import Outages
from server._redis_state import BATCH, open_redis
from server._shared import BEATS_PER_HALF_INTERVAL, Shared
from tools.bench import ScratchRedis

WAIT_S = 5.0


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def replicas(redis_server: ScratchRedis) -> AsyncIterator[tuple[Shared, Shared, Clock]]:
    redis_server.command("FLUSHALL")
    clock = Clock()
    config = ServerConfig.model_validate({"event_replay_size": 4})
    a = await open_redis(redis_server.url, config, clock, Outages())
    b = await open_redis(redis_server.url, config, clock, Outages())
    try:
        yield a, b, clock
    finally:
        await a.close()
        await b.close()
        redis_server.command("FLUSHALL")


async def _next(subscriber: Subscriber) -> Event:
    event = await asyncio.wait_for(subscriber.next(), WAIT_S)
    assert event is not None, "the stream closed"
    return event


async def _closed(subscriber: Subscriber) -> None:
    assert await asyncio.wait_for(subscriber.next(), WAIT_S) is None


async def test_an_event_published_on_one_replica_reaches_a_stream_on_the_other(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    held = await b.hub.subscribe("dev", None)
    assert held.gap and held.replay == []
    await a.hub.publish("dev", "manifest", {"etag": "1"})
    event = await _next(held.subscriber)
    assert (event.name, event.data) == ("manifest", {"etag": "1"})
    # B dies without a word; two more events while the device is away.
    b.hub.close_all()
    await a.hub.publish_many([("dev", "command", {"n": 2}), ("dev", "command", {"n": 3})])
    resumed = await a.hub.subscribe("dev", event.id)
    assert not resumed.gap
    assert [e.data for e in resumed.replay] == [{"n": 2}, {"n": 3}]
    assert resumed.last_id == resumed.replay[-1].id


async def test_a_stream_opened_on_one_replica_closes_the_one_on_the_other(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    old = await a.hub.subscribe("dev", None)
    new = await b.hub.subscribe("dev", None)
    await _closed(old.subscriber)
    assert not new.subscriber.closed
    assert a.hub.stream_count() == 0 and b.hub.stream_count() == 1


async def test_an_id_older_than_the_replay_buffer_is_a_gap(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    first = await a.hub.subscribe("dev", None)
    await a.hub.publish("dev", "command", {"n": 0})
    seen = await _next(first.subscriber)
    await a.hub.publish_many([("dev", "command", {"n": n}) for n in range(1, 10)])
    again = await b.hub.subscribe("dev", seen.id)
    assert again.gap and again.replay == []
    assert (await b.hub.subscribe("dev", "not-an-id")).gap


async def test_a_revoked_device_loses_its_stream_everywhere_and_its_events(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    held = await b.hub.subscribe("dev", None)
    await a.hub.publish("dev", "command", {"n": 1})
    event = await _next(held.subscriber)
    await a.hub.close_device("dev")
    await _closed(held.subscriber)
    assert (await a.hub.subscribe("dev", event.id)).gap


async def test_dashboard_events_reach_every_replica(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    dashboard = b.hub.dashboard_subscribe()
    for _ in range(100):  # the count crosses over the channel
        if a.hub.dashboards_open():
            break
        await asyncio.sleep(0.05)
    assert a.hub.dashboards_open()
    await a.hub.broadcast("device", {"device_id": "dev", "status": "online"})
    assert (await _next(dashboard)).data["status"] == "online"


async def test_presence_is_shared_and_a_silent_device_goes_offline_once(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, clock = replicas
    first = await a.presence.beat("dev", clock.now, {"cpu": 1})
    assert first.transition == "online"
    assert (await b.presence.seen("dev", clock.now + 1)).transition is None
    live = await b.presence.live(["dev", "other"])
    assert list(live) == ["dev"] and live["dev"].metrics == {"cpu": 1}
    assert await b.presence.online_count() == 1
    clock.now += a.presence.offline_after_s + 2
    swept = await asyncio.gather(a.presence.expired(clock.now), b.presence.expired(clock.now))
    assert sorted(len(s) for s in swept) == [0, 1], "offline once, whichever replica sweeps"
    assert await a.presence.online_count() == 0


async def test_heartbeats_are_limited_across_replicas(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, clock = replicas
    assert not (await a.presence.beat("dev", clock.now, {})).retry_after
    assert not (await b.presence.beat("dev", clock.now, {})).retry_after
    assert (await a.presence.beat("dev", clock.now, {})).retry_after > 0


def _evalsha_calls(redis_server: ScratchRedis) -> int:
    stats = redis_server.command("INFO", "commandstats").decode()
    match = re.search(r"cmdstat_evalsha:calls=(\d+)", stats)
    return int(match.group(1)) if match else 0


async def test_the_heartbeats_of_one_turn_share_one_call_and_keep_their_own_answers(
    replicas: tuple[Shared, Shared, Clock], redis_server: ScratchRedis
) -> None:
    a, b, clock = replicas
    # "busy" uses up its heartbeats (shared across replicas); "known" has a manifest stored.
    for _ in range(BEATS_PER_HALF_INTERVAL):
        assert not (await b.presence.beat("busy", clock.now, {})).retry_after
    manifest = CachedManifest(etag='"e1"', body=b"{}", version=1, assets=frozenset(), digest="d")
    await a.manifests.put_many({"known": manifest})
    calls = _evalsha_calls(redis_server)
    answers = await asyncio.gather(
        a.presence.beat("known", clock.now, {"cpu": 2}),
        a.presence.beat("busy", clock.now, {"cpu": 3}),
        a.presence.beat("new", clock.now, {}),
        a.presence.beat("new", clock.now, {}),
    )
    assert _evalsha_calls(redis_server) == calls + 1, "one script call for all of them"
    known, busy, new, again = answers
    assert known.transition == "online" and known.manifest_etag == '"e1"'
    assert not known.retry_after
    assert busy.retry_after > 0 and busy.transition is None and not busy.write_last_seen
    assert new.transition == "online" and new.manifest_etag is None
    assert again.transition is None and not again.retry_after, "in order, as one call each"
    live = await b.presence.live(["known", "busy", "new"])
    assert live["known"].metrics == {"cpu": 2}
    assert live["busy"].metrics == {}, "a refused heartbeat records nothing"


async def test_heartbeats_arriving_within_the_gather_window_share_one_call(
    replicas: tuple[Shared, Shared, Clock],
    redis_server: ScratchRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _, clock = replicas
    assert not (await a.presence.beat("warm", clock.now, {})).retry_after  # script loaded
    # A long window, so that a loaded machine cannot make the second one miss it.
    monkeypatch.setattr(server._redis_state, "BEAT_GATHER_S", 0.5)
    calls = _evalsha_calls(redis_server)
    first = asyncio.ensure_future(a.presence.beat("one", clock.now, {}))
    await asyncio.sleep(0.05)  # another turn of the event loop, another request
    assert not first.done(), "the first waits for the others of its window"
    second = await a.presence.beat("two", clock.now, {})
    assert (await first).transition == "online" and second.transition == "online"
    assert _evalsha_calls(redis_server) == calls + 1, "one script call for the window"


async def test_a_redis_that_stops_answering_fails_every_heartbeat_of_the_call(
    replicas: tuple[Shared, Shared, Clock], redis_server: ScratchRedis
) -> None:
    a, _, clock = replicas
    assert not (await a.presence.beat("warm", clock.now, {})).retry_after  # script loaded
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        beats = [a.presence.beat(f"dev-{n}", clock.now, {}) for n in range(3)]
        failures = await asyncio.gather(*beats, return_exceptions=True)
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert all(isinstance(f, redis.TimeoutError) for f in failures), failures
    assert len({id(f) for f in failures}) == 1, "the same failure, so the same 503 for each"
    # Redis may still run the call it had (a timed-out call is never retried): either way,
    # the next heartbeats are answered on their own.
    again = await asyncio.gather(*(a.presence.beat(f"dev-{n}", clock.now, {}) for n in range(3)))
    assert not any(seen.retry_after for seen in again)
    assert set(await a.presence.live([f"dev-{n}" for n in range(3)])) == {"dev-0", "dev-1", "dev-2"}


async def test_a_lockout_counts_failures_on_every_replica(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, clock = replicas
    on_a, on_b = a.window("claims", 3, 60.0), b.window("claims", 3, 60.0)
    results = await asyncio.gather(*(w.reserve("code") for w in [on_a, on_b] * 3))
    assert sorted(wait == 0 for wait, _ in results) == [False] * 3 + [True] * 3
    token = next(t for wait, t in results if wait == 0)
    await on_b.release("code", token)  # that claim succeeded: it is not a failure
    assert await on_a.count("code") == 2
    clock.now += 61
    assert await on_b.hit("code") == 0


async def test_lookups_in_flight_on_one_replica_are_not_failures_on_the_other(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, clock = replicas
    on_a, on_b = a.window("auth", 4, 300.0), b.window("auth", 4, 300.0)
    assert await on_b.hit("ip") == 0
    wait, reserved = await on_a.reserve_many("ip", 10)
    assert wait == 0 and len(reserved) == 3, "as many as the window has room for"
    assert await on_b.reserve_many("ip", 2) == (0, []), "full with lookups in flight: ask again"
    assert await on_b.retry_after("ip") == 0
    await on_a.settle("ip", released=reserved[:2], kept=reserved[2:])
    assert await on_b.count("ip") == 2
    wait, more = await on_b.reserve_many("ip", 5)
    assert wait == 0 and len(more) == 2
    await on_b.settle("ip", released=[], kept=more[:1])  # one never settled: its replica died
    assert await on_a.reserve_many("ip", 1) == (0, [])
    clock.now += RESERVATION_STALE_S
    wait, none = await on_a.reserve_many("ip", 1)
    assert wait > 0 and none == [], "a reservation never settled counts as a failure"
    assert await on_a.retry_after("ip") > 0


async def test_one_replica_holds_a_lease_until_it_lapses(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas
    assert await a.leases.hold("sweeper", 0.3)
    assert not await b.leases.hold("sweeper", 0.3)
    assert await a.leases.hold("sweeper", 0.3)  # renewed by its holder
    await asyncio.sleep(0.5)
    assert await b.leases.hold("sweeper", 0.3)


async def test_a_wake_up_on_one_replica_ends_a_long_poll_on_the_other(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b = Wakeups(replicas[0].bus), Wakeups(replicas[1].bus)
    with a.listen("pairing:p1") as claimed:
        await b.wake("pairing:p1")
        await asyncio.wait_for(claimed.wait(), WAIT_S)
    assert len(a) == 0


async def test_a_stored_manifest_is_never_replaced_by_an_older_one(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    a, b, _ = replicas

    def manifest(version: int) -> CachedManifest:
        return CachedManifest(f'"{version}"', b"{}", version, frozenset({"ab", "cd"}), "d")

    await a.manifests.put_many({"dev": manifest(3)})
    await b.manifests.put_many({"dev": manifest(2)})  # committed first, stored last
    assert await b.manifests.get("dev") == manifest(3)
    await b.manifests.drop("dev")
    assert await a.manifests.get("dev") is None


async def test_a_fan_out_reaches_streams_on_every_replica_and_replays_exactly(
    replicas: tuple[Shared, Shared, Clock],
) -> None:
    """More devices than one script call takes: each stream, whichever replica holds it, gets
    its own event once; a device that was away replays it from its stream."""
    a, b, _ = replicas
    count = BATCH + BATCH // 2
    devices = [f"dev-{n}" for n in range(count)]
    held = {
        d: (await (a, b)[n % 2].hub.subscribe(d, None)).subscriber
        for n, d in enumerate(devices[:40])
    }
    held[devices[-1]] = (await b.hub.subscribe(devices[-1], None)).subscriber
    away = await b.hub.subscribe(devices[-2], None)
    await a.hub.publish("dev-x", "command", {"n": 0})  # unrelated: not for the away device
    b.hub.unsubscribe(devices[-2], away.subscriber)
    await a.hub.publish_many((d, "manifest", {"etag": f'"{d}"'}) for d in devices)
    for device_id, subscriber in held.items():
        event = await _next(subscriber)
        assert (event.name, event.data) == ("manifest", {"etag": f'"{device_id}"'})
        assert subscriber.take() == []  # exactly once
    resumed = await a.hub.subscribe(devices[-2], away.last_id)
    assert not resumed.gap
    assert [(e.name, e.data) for e in resumed.replay] == [
        ("manifest", {"etag": f'"{devices[-2]}"'})
    ]
