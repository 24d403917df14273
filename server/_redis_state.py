"""The state several replicas share, in Redis (``server.redis_url``), behind the interfaces of
the in-process versions (``server._shared``).

- Events: one Redis stream per device (``XADD ... MAXLEN``), so a ``Last-Event-ID`` from any
  replica is replayed by any other; live events reach the replica that holds the stream
  through one Pub/Sub channel, a fan-out as one message per thousand devices that each
  replica expands to its own streams. A replica that loses that channel closes its streams:
  the devices reconnect and replay what they missed, rather than miss it silently.
- Manifests: each body once under its ETag, and per device a record naming it.
- Presence: a sorted set of online devices scored by last activity; the sweeper takes the
  silent ones out in one script, so each goes offline once, whichever replica sweeps.
- Rate limits and lockouts: a sorted set per key, checked and recorded in one script (and
  beside it the reservations of lookups in flight, so they are not taken for failures).
- The bus (wake-ups, revoked tokens, new commands): the same Pub/Sub channel.
- Leases: ``SET NX PX`` with this replica's id, renewed only by the holder.

When Redis is unreachable, commands fail within ``SOCKET_TIMEOUT_S`` (the requests get 503s,
``server._outages``). What could not be written meanwhile is made up for once it is back: the
devices whose events or manifests were lost get their stream and cached manifest dropped (so
they reconnect to a ``manifest`` hint, never to a silently incomplete replay), and every
replica is told to drop its caches, since revocations sent during the outage never arrived.

Times come from the server's clock (tests move it), never from Redis's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core import ServerConfig
from server._bus import Handlers
from server._hub import Event, Seq, Subscriber, Subscription
from server._limits import RESERVATION_STALE_S, Clock
from server._manifests import CachedManifest
from server._outages import Outages
from server._presence import LAST_SEEN_WRITE_S, DeviceLive, Seen

if TYPE_CHECKING:
    from server._shared import Shared

log = logging.getLogger("signage.server")
PREFIX = "signage:"
CHANNEL = PREFIX + "bus"
RECONNECT_S = 1.0
POOL_SIZE = 64  # connections to Redis per replica (one of them listens to the channel)
POOL_WAIT_S = 5.0  # for a free connection when all are busy (a hung Redis holds them all)
SOCKET_TIMEOUT_S = 3.0  # a command unanswered this long fails (a hung Redis, a lost route)
CONNECT_TIMEOUT_S = 2.0

# Retry-After of a full window: until its oldest event leaves it.
_WAIT_OF = """
local function wait_of(window, now, window_s)
  local oldest = redis.call('ZRANGE', window, 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(oldest[2]) + window_s - now))
end
"""
_WINDOW_HIT = (
    _WAIT_OF
    + """
local function window_hit(key, now, window, limit, token)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then
    if token ~= '' then
      redis.call('ZADD', key, now, token)
      redis.call('PEXPIRE', key, math.ceil(window * 1000) + 1000)
    end
    return 0
  end
  return wait_of(key, now, window)
end
"""
)
_RESERVATIONS = (
    _WAIT_OF
    + """
local function prune(window, pending, now, window_s, stale_s)
  redis.call('ZREMRANGEBYSCORE', window, '-inf', now - window_s)
  redis.call('ZREMRANGEBYSCORE', pending, '-inf', now - stale_s)
end
"""
)
# A batch's reservations: the window, and beside it those not settled yet (a failure is in
# the window only). KEYS: window, pending. ARGV: now, window_s, limit, stale_s, tokens...
# Returns {0, how many of the tokens (the first ones) were reserved}, {Retry-After} when full
# of failures, {0} when full with reservations in flight.
_RESERVE_MANY = (
    _RESERVATIONS
    + """
local now, window_s, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
prune(KEYS[1], KEYS[2], now, window_s, tonumber(ARGV[4]))
local room = limit - redis.call('ZCARD', KEYS[1])
local granted = 0
for i = 5, math.min(#ARGV, 4 + room) do
  redis.call('ZADD', KEYS[1], now, ARGV[i])
  redis.call('ZADD', KEYS[2], now, ARGV[i])
  granted = granted + 1
end
if granted > 0 then
  local ttl = math.ceil(window_s * 1000) + 1000
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  return {0, granted}
end
if redis.call('ZCARD', KEYS[2]) > 0 then return {0} end
return {wait_of(KEYS[1], now, window_s)}
"""
)
# Retry-After of a window, reservations in flight not counted. KEYS, ARGV: as _RESERVE_MANY's.
_RETRY_AFTER = (
    _RESERVATIONS
    + """
local now, window_s, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
prune(KEYS[1], KEYS[2], now, window_s, tonumber(ARGV[4]))
if redis.call('ZCARD', KEYS[1]) - redis.call('ZCARD', KEYS[2]) < limit then return 0 end
return wait_of(KEYS[1], now, window_s)
"""
)
# KEYS: the window. ARGV: now, window_s, limit, token ('' checks without recording).
_WINDOW = (
    _WINDOW_HIT
    + """
return window_hit(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
"""
)

_SEEN_NOW = """
local function seen(online, written, metrics, device, now, write_s, metric)
  if metric ~= '' then redis.call('HSET', metrics, device, metric) end
  local before = redis.call('ZSCORE', online, device)
  if not before then
    redis.call('ZADD', online, now, device)
    redis.call('HSET', written, device, now)
    return 2
  end
  if now > tonumber(before) then redis.call('ZADD', online, now, device) end
  local last = tonumber(redis.call('HGET', written, device) or '0')
  if now - last >= write_s then
    redis.call('HSET', written, device, now)
    return 1
  end
  return 0
end
"""
# KEYS: online zset, written hash, metrics hash. ARGV: device, now, write_s, metrics or ''.
_SEEN = (
    _SEEN_NOW
    + """
return seen(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
"""
)
# Heartbeats, several in one round trip (those a replica gathered over BEAT_GATHER_S):
# for each, its rate limit, then (when allowed) presence and metrics, and the ETag of the
# device's stored manifest (what the heartbeat answers with); in order, as one call each would.
# KEYS: as _SEEN's, then the beat window and the manifest of each heartbeat's device.
# ARGV: write_s, window_s, limit, then device, now, metrics, token per heartbeat.
# Returns two values per heartbeat: -Retry-After and false when refused, else what _SEEN
# returns and the ETag (false: none stored).
_BEATS = (
    _WINDOW_HIT
    + _SEEN_NOW
    + """
local write_s, window_s, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, (#KEYS - 3) / 2 do
  local device, now = ARGV[4 * i], tonumber(ARGV[4 * i + 1])
  local wait = window_hit(KEYS[2 * i + 2], now, window_s, limit, ARGV[4 * i + 3])
  if wait > 0 then
    out[2 * i - 1], out[2 * i] = -wait, false
  else
    out[2 * i - 1] = seen(KEYS[1], KEYS[2], KEYS[3], device, now, write_s, ARGV[4 * i + 2])
    out[2 * i] = redis.call('HGET', KEYS[2 * i + 3], 'etag')
  end
end
return out
"""
)

_TOUCH = """
local before = redis.call('ZSCORE', KEYS[1], ARGV[1])
if before and tonumber(ARGV[2]) > tonumber(before) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return 0
"""

_EXPIRED = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES')
for i = 1, #gone, 2 do
  redis.call('ZREM', KEYS[1], gone[i])
  redis.call('HDEL', KEYS[2], gone[i])
  redis.call('HDEL', KEYS[3], gone[i])
end
return gone
"""

# Manifests are stored by content: a body once under its ETag (devices of one group share it),
# and per device a small hash naming it. A device's record is replaced only when its version
# is not lower. KEYS: the devices' records. ARGV: ttl, then version, etag, digest per device.
_PUT_MANIFESTS = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  local version = ARGV[3 * i - 1]
  local known = redis.call('HGET', key, 'version')
  if not known or tonumber(known) <= tonumber(version) then
    redis.call('HSET', key, 'version', version, 'etag', ARGV[3 * i], 'digest', ARGV[3 * i + 1])
    redis.call('EXPIRE', key, ttl)
  end
end
return 0
"""

# A device's record and the body it names, in one round trip (the heartbeat's hot path).
_GET_MANIFEST = """
local found = redis.call('HMGET', KEYS[1], 'version', 'etag', 'digest')
if not found[2] then return false end
local body = redis.call('HMGET', ARGV[1] .. found[2], 'body', 'assets')
if not body[1] then return false end
return {found[1], found[2], found[3], body[1], body[2]}
"""

# A fan-out: each device's event appended to its stream (replayable from any replica), and one
# message on the channel listing them all, which every replica expands to its own streams.
# Atomic, so a live event is never announced without its replayable copy, nor the reverse.
# KEYS: the devices' streams. ARGV: maxlen, channel, then device, name, data (JSON) per event.
_PUBLISH_MANY = """
local maxlen, events = ARGV[1], {}
for i, key in ipairs(KEYS) do
  local device, name, data = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  local id = redis.call('XADD', key, 'MAXLEN', '=', maxlen, '*', 'n', name, 'x', data)
  events[i] = {device, id, name, data}
end
redis.call('PUBLISH', ARGV[2], cjson.encode({k = 'events', p = events}))
return #events
"""
BATCH = 1000  # devices per script call: Redis is not held for more than a few milliseconds

_LEASE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

MANIFEST_TTL_S = 7 * 86_400  # rebuilt from the database when gone
BODY_PREFIX = PREFIX + "manifest-body:"  # + ETag


def _parse_seq(event_id: str) -> Seq | None:
    """A stream id (``ms-seq``; a bare ``ms`` means ``ms-0``, as Redis reads it)."""
    ms, dash, seq = event_id.strip().partition("-")
    if not dash:
        seq = "0"
    if not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


def _unreachable(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (redis.ConnectionError, redis.TimeoutError))


def _pool_exhausted(exc: BaseException) -> bool:
    """Every connection of the pool stayed in use for ``POOL_WAIT_S``: overload, not a loss."""
    return str(exc).startswith("No connection available")


def manifest_key(device_id: str) -> str:
    return PREFIX + "manifest:" + device_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisLink:
    """One connection pool, the Pub/Sub listener, and this replica's id."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.replica = secrets.token_hex(8)
        self._listeners: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.scripts: dict[str, Any] = {}
        self.subscribed = False  # the channel is heard: nothing sent to it is missed
        self.on_lost: list[Any] = []  # called with the exception when the channel is lost
        # Devices whose events or manifest could not be written: made up for when Redis is back.
        self.dirty: set[str] = set()

    def script(self, source: str) -> Any:
        found = self.scripts.get(source)
        if found is None:
            found = self.scripts[source] = self.client.register_script(source)
        return found

    def listen(self, listener: Any) -> None:
        """``listener(kind, payload)`` for every message; ``listener.lost()`` when the channel
        was lost (messages may be missing)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def _run(self) -> None:
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.subscribed = True
                self._ready.set()
                while True:
                    message = await pubsub.get_message(timeout=30)
                    if message is None:
                        continue
                    body = json.loads(message["data"])
                    for listener in self._listeners:
                        listener.message(body["k"], body["p"])
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as exc:  # a lost connection: let every listener recover
                if self.subscribed:
                    self.subscribed = False
                    for report in self.on_lost:
                        report(exc)
                    for listener in self._listeners:
                        listener.lost()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(RECONNECT_S)

    @staticmethod
    def message(kind: str, payload: dict[str, Any]) -> str:
        """What ``send`` publishes on the channel (for a pipeline that publishes it too)."""
        return json.dumps({"k": kind, "p": payload})

    async def send(self, kind: str, payload: dict[str, Any]) -> None:
        await self.client.publish(CHANNEL, self.message(kind, payload))

    async def probe(self) -> bool:
        """Redis answers and the channel is heard again."""
        await self.client.ping()
        return self.subscribed

    @contextlib.contextmanager
    def writing(self, device_ids: Iterable[str]) -> Iterator[None]:
        """Remember the devices of a write that failed (Redis unreachable), to make up for it."""
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError):
            self.dirty.update(device_ids)
            raise

    async def catch_up(self) -> None:
        """Redis is back: the devices whose writes failed lose their event stream and cached
        manifest (their next connect gets a ``manifest`` hint and a rebuilt manifest) and
        their open streams end, wherever they are."""
        dirty = sorted(self.dirty)
        for start in range(0, len(dirty), 1000):
            chunk = dirty[start : start + 1000]
            async with self.client.pipeline(transaction=False) as pipe:
                for device_id in chunk:
                    pipe.delete(PREFIX + "events:" + device_id, manifest_key(device_id))
                    pipe.publish(CHANNEL, json.dumps({"k": "closed", "p": {"d": device_id}}))
                await pipe.execute()
            self.dirty.difference_update(chunk)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()


class RedisBus(Handlers):
    """A ``Bus`` every replica hears (ours included, when the message comes back)."""

    def __init__(self, link: RedisLink) -> None:
        super().__init__()
        self._link = link
        link.listen(self)

    def message(self, kind: str, payload: Any) -> None:
        if kind.startswith("bus:"):
            self.dispatch(kind[4:], payload)

    def lost(self) -> None:
        return None

    async def send(self, kind: str, payload: dict[str, str]) -> None:
        await self._link.send("bus:" + kind, payload)


class RedisLeases:
    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def hold(self, name: str, ttl_s: float) -> bool:
        held = await self._link.script(_LEASE)(
            keys=[PREFIX + "lease:" + name], args=[self._link.replica, int(ttl_s * 1000)]
        )
        return bool(held)


class RedisWindow:
    """A ``Window`` in Redis: at most ``limit`` events per ``window_s`` per key, all replicas
    counted together."""

    def __init__(self, link: RedisLink, name: str, limit: int, window_s: float, clock: Clock):
        self.limit = limit
        self.window_s = window_s
        self._link = link
        self._prefix = f"{PREFIX}limit:{name}:"
        self._pending = f"{PREFIX}pending:{name}:"
        self._clock = clock

    def key(self, key: str) -> str:
        """The Redis key of ``key``'s window (for scripts that hit it along with more)."""
        return self._prefix + key

    async def _call(self, key: str, token: str) -> int:
        wait = await self._link.script(_WINDOW)(
            keys=[self.key(key)], args=[self._clock(), self.window_s, self.limit, token]
        )
        return int(wait)

    def _reservations(self, key: str, *tokens: str) -> dict[str, list[Any]]:
        stale_s = min(RESERVATION_STALE_S, self.window_s)
        return {
            "keys": [self.key(key), self._pending + key],
            "args": [self._clock(), self.window_s, self.limit, stale_s, *tokens],
        }

    async def retry_after(self, key: str) -> int:
        return int(await self._link.script(_RETRY_AFTER)(**self._reservations(key)))

    async def hit(self, key: str) -> int:
        return await self._call(key, secrets.token_hex(8))

    async def reserve(self, key: str) -> tuple[int, str]:
        token = secrets.token_hex(8)
        return await self._call(key, token), token

    async def release(self, key: str, token: str) -> None:
        await self._link.client.zrem(self._prefix + key, token)

    async def reserve_many(self, key: str, count: int) -> tuple[int, list[str]]:
        tokens = [secrets.token_hex(8) for _ in range(count)]
        result = await self._link.script(_RESERVE_MANY)(**self._reservations(key, *tokens))
        if len(result) > 1:
            return 0, tokens[: int(result[1])]
        return int(result[0]), []

    async def settle(self, key: str, released: Sequence[str], kept: Sequence[str]) -> None:
        if not released and not kept:
            return
        async with self._link.client.pipeline(transaction=True) as pipe:
            if released:
                pipe.zrem(self.key(key), *released)
            pipe.zrem(self._pending + key, *released, *kept)
            await pipe.execute()

    async def count(self, key: str) -> int:
        full = self._prefix + key
        async with self._link.client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(full, "-inf", self._clock() - self.window_s)
            pipe.zcard(full)
            _, count = await pipe.execute()
        return int(count)

    async def reset(self, key: str) -> None:
        await self._link.client.delete(self._prefix + key)


def _seen_of(result: int) -> Seen:
    """What ``seen()`` in the scripts returned: 2 came online, 1 last_seen is due, 0 neither."""
    if result == 2:
        return Seen("online", True)
    return Seen(None, result == 1)


def _beat_of(code: int, etag: bytes | str | None) -> Seen:
    """One heartbeat's answer from ``_BEATS``."""
    if code < 0:
        return Seen(None, False, retry_after=-code)
    seen = _seen_of(code)
    manifest_etag = None if etag is None else _text(etag)
    return Seen(seen.transition, seen.write_last_seen, manifest_etag=manifest_etag)


# A heartbeat waiting for its script call: device, now, metrics (JSON), its answer.
_Queued = tuple[str, float, str, "asyncio.Future[Seen]"]
# How long the first heartbeat waits for others to share its script call. Each call costs the
# replica a round trip through redis-py (about 100-150 µs of CPU here) whatever it carries:
# gathered over 10 ms, the heartbeats of a busy replica cost about a third less CPU each
# (``signage bench server --replicas``), for 10 ms more on an answer a device awaits once
# per interval.
BEAT_GATHER_S = 0.01


def _fail(queued: list[_Queued], exc: BaseException) -> None:
    for *_, answer in queued:
        if not answer.done():  # its request may have gone (cancelled)
            answer.set_exception(exc)


class RedisPresence:
    """A ``PresenceStore`` in Redis."""

    def __init__(
        self,
        link: RedisLink,
        offline_after_s: float,
        *,
        beats: int,
        beat_window_s: float,
        clock: Clock,
    ) -> None:
        self.offline_after_s = offline_after_s
        self._link = link
        self._keys = [PREFIX + "online", PREFIX + "written", PREFIX + "metrics"]
        self._beats = RedisWindow(link, "beats", beats, beat_window_s, clock)
        self._queued: list[_Queued] = []  # heartbeats gathered for the next script call
        self._sending: set[asyncio.Task[None]] = set()

    async def _seen(self, device_id: str, now: float, metrics: str) -> Seen:
        result = int(
            await self._link.script(_SEEN)(
                keys=self._keys, args=[device_id, now, LAST_SEEN_WRITE_S, metrics]
            )
        )
        return _seen_of(result)

    async def seen(self, device_id: str, now: float) -> Seen:
        return await self._seen(device_id, now, "")

    async def beat(self, device_id: str, now: float, metrics: dict[str, Any]) -> Seen:
        """Queued with the other heartbeats of the next ``BEAT_GATHER_S``, all sent in one
        script call (``_BEATS``) by the first one's ``_send``: one round trip, one command
        for Redis to parse. A call that fails fails every heartbeat of it alike (an
        unreachable Redis: the same 503 for each, ``server._outages``)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Seen] = loop.create_future()
        if not self._queued:
            sending = loop.create_task(self._send())
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)
        self._queued.append((device_id, now, json.dumps(metrics), answer))
        return await answer

    async def _send(self) -> None:
        try:
            await asyncio.sleep(BEAT_GATHER_S)  # the heartbeats meanwhile join this call
        except BaseException as exc:  # cancelled (the server stops): none is left waiting
            queued, self._queued = self._queued, []
            _fail(queued, exc)
            raise
        queued, self._queued = self._queued, []
        for start in range(0, len(queued), BATCH):
            chunk = queued[start : start + BATCH]
            try:
                result = await self._call_beats(chunk)
            except BaseException as exc:
                _fail(chunk, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for i, (*_, answer) in enumerate(chunk):
                if not answer.done():
                    answer.set_result(_beat_of(int(result[2 * i]), result[2 * i + 1]))

    async def _call_beats(self, chunk: list[_Queued]) -> Any:
        beats = self._beats
        keys = list(self._keys)
        args: list[Any] = [LAST_SEEN_WRITE_S, beats.window_s, beats.limit]
        for device_id, now, metrics, _ in chunk:
            keys += [beats.key(device_id), manifest_key(device_id)]
            args += [device_id, now, metrics, secrets.token_hex(8)]
        return await self._link.script(_BEATS)(keys=keys, args=args)

    async def touch(self, device_id: str, now: float) -> None:
        await self._link.script(_TOUCH)(keys=self._keys[:1], args=[device_id, now])

    async def expired(self, now: float) -> list[tuple[str, float]]:
        gone = await self._link.script(_EXPIRED)(keys=self._keys, args=[now - self.offline_after_s])
        return [(_text(gone[i]), float(gone[i + 1])) for i in range(0, len(gone), 2)]

    async def forget(self, device_id: str) -> None:
        async with self._link.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys[0], device_id)
            pipe.hdel(self._keys[1], device_id)
            pipe.hdel(self._keys[2], device_id)
            await pipe.execute()

    async def live(self, device_ids: Iterable[str]) -> dict[str, DeviceLive]:
        ids = list(device_ids)
        if not ids:
            return {}
        async with self._link.client.pipeline(transaction=False) as pipe:
            pipe.zmscore(self._keys[0], ids)
            pipe.hmget(self._keys[1], ids)
            pipe.hmget(self._keys[2], ids)
            scores, written, metrics = await pipe.execute()
        found = {}
        for device_id, score, wrote, metric in zip(ids, scores, written, metrics, strict=True):
            if score is not None:
                found[device_id] = DeviceLive(
                    last_seen=float(score),
                    last_written=float(wrote or score),
                    metrics=json.loads(metric) if metric else {},
                )
        return found

    async def online_count(self) -> int:
        return int(await self._link.client.zcard(self._keys[0]))

    async def restore(self, device_ids: Iterable[str], now: float) -> None:
        ids = list(device_ids)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            async with self._link.client.pipeline(transaction=False) as pipe:
                pipe.zadd(self._keys[0], dict.fromkeys(chunk, now), nx=True)
                for device_id in chunk:
                    pipe.hsetnx(self._keys[1], device_id, now)
                await pipe.execute()


class RedisManifests:
    """A ``ManifestStore`` in Redis: a body once per ETag (the devices of a group share it),
    a small hash per device naming it."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def get(self, device_id: str) -> CachedManifest | None:
        found = await self._link.script(_GET_MANIFEST)(
            keys=[manifest_key(device_id)], args=[BODY_PREFIX]
        )
        if not found:
            return None
        version, etag, digest, body, assets = found
        return CachedManifest(
            etag=_text(etag),
            body=bytes(body),
            version=int(version),
            assets=frozenset(_text(assets).split(",")) if assets else frozenset(),
            digest=_text(digest),
        )

    async def etag(self, device_id: str) -> str | None:
        found = await self._link.client.hget(manifest_key(device_id), "etag")
        return None if found is None else _text(found)

    async def put_many(self, manifests: Mapping[str, CachedManifest]) -> None:
        if not manifests:
            return
        with self._link.writing(manifests):
            await self._put_many(manifests)

    async def _put_many(self, manifests: Mapping[str, CachedManifest]) -> None:
        bodies = {m.etag: m for m in manifests.values()}
        script = self._link.script(_PUT_MANIFESTS)
        items = list(manifests.items())
        async with self._link.client.pipeline(transaction=False) as pipe:
            # Bodies first: a record never names a body that is not there.
            for etag, m in bodies.items():
                key = BODY_PREFIX + etag
                pipe.hset(key, mapping={"body": m.body, "assets": ",".join(sorted(m.assets))})
                pipe.expire(key, MANIFEST_TTL_S)
            for start in range(0, len(items), BATCH):
                chunk = items[start : start + BATCH]
                args: list[Any] = [MANIFEST_TTL_S]
                for _, m in chunk:
                    args += [m.version, m.etag, m.digest]
                await script(keys=[manifest_key(d) for d, _ in chunk], args=args, client=pipe)
            await pipe.execute()

    async def drop_many(self, device_ids: Iterable[str]) -> None:
        ids = list(device_ids)
        with self._link.writing(ids):
            for start in range(0, len(ids), BATCH):
                keys = [manifest_key(d) for d in ids[start : start + BATCH]]
                await self._link.client.delete(*keys)

    async def drop(self, device_id: str) -> None:
        with self._link.writing([device_id]):
            await self._link.client.delete(manifest_key(device_id))


class RedisHub:
    """A ``Hub`` in Redis: device events in streams (replayable from any replica), live
    delivery and dashboard events over the shared channel."""

    def __init__(self, link: RedisLink, replay_size: int) -> None:
        self._link = link
        self._replay_size = replay_size
        self._local: dict[str, Subscriber] = {}
        self._owner: dict[str, str] = {}  # device → the token of its local stream
        self._dashboards: set[Subscriber] = set()
        self._dashboards_anywhere = 0
        link.listen(self)

    @staticmethod
    def _key(device_id: str) -> str:
        return PREFIX + "events:" + device_id

    # --- the channel ---------------------------------------------------------------------

    def message(self, kind: str, payload: Any) -> None:
        if kind == "events":  # a fan-out: [device, id, name, data as JSON] each
            for device_id, event_id, name, data in payload:
                subscriber = self._local.get(device_id)
                if subscriber is not None:
                    seq = _parse_seq(event_id) or (0, 0)
                    subscriber.offer(Event(event_id, name, json.loads(data), seq))
        elif kind == "opened":  # a stream opened elsewhere (or here): older ones close
            device_id = payload["d"]
            if self._owner.get(device_id) not in (None, payload["t"]):
                self._close_local(device_id)
        elif kind == "closed":
            self._close_local(payload["d"])
        elif kind == "dashboard":
            event = Event(payload["i"], payload["n"], payload["x"])
            for subscriber in list(self._dashboards):
                subscriber.offer(event)
        elif kind == "dashboards" and payload["r"] != self._link.replica:
            self._dashboards_anywhere = max(0, self._dashboards_anywhere + int(payload["n"]))

    def lost(self) -> None:
        # Live events may be missing: the devices reconnect and replay from their streams.
        self.close_all()

    def _close_local(self, device_id: str) -> None:
        subscriber = self._local.pop(device_id, None)
        self._owner.pop(device_id, None)
        if subscriber is not None:
            subscriber.close()

    # --- devices -------------------------------------------------------------------------

    async def publish(self, device_id: str, name: str, data: dict[str, Any]) -> None:
        await self.publish_many([(device_id, name, data)])

    async def publish_many(self, events: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        batch = list(events)
        if not batch:
            return
        with self._link.writing(device_id for device_id, _, _ in batch):
            await self._publish_many(batch)

    async def _publish_many(self, batch: list[tuple[str, str, dict[str, Any]]]) -> None:
        script = self._link.script(_PUBLISH_MANY)
        # Every call in one round trip; each is atomic on its own.
        async with self._link.client.pipeline(transaction=False) as pipe:
            for start in range(0, len(batch), BATCH):
                chunk = batch[start : start + BATCH]
                args: list[Any] = [self._replay_size, CHANNEL]
                for device_id, name, data in chunk:
                    args += [device_id, name, json.dumps(data)]
                await script(keys=[self._key(d) for d, _, _ in chunk], args=args, client=pipe)
            await pipe.execute()

    async def subscribe(self, device_id: str, last_event_id: str | None) -> Subscription:
        old = self._local.pop(device_id, None)
        if old is not None:
            old.close()
        subscriber = Subscriber()
        token = secrets.token_hex(8)
        self._local[device_id] = subscriber
        self._owner[device_id] = token
        key = self._key(device_id)
        last = _parse_seq(last_event_id) if last_event_id else None
        # One round trip: the notice that closes this device's older stream (wherever it
        # is), the stream's bounds, and the events after ``last`` (used only when ``last``
        # turns out to be within the bounds).
        async with self._link.client.pipeline(transaction=False) as pipe:
            pipe.publish(CHANNEL, self._link.message("opened", {"d": device_id, "t": token}))
            pipe.exists(key)
            pipe.xinfo_stream(key)
            if last is not None:
                pipe.xrange(key, min=f"({last[0]}-{last[1]}", max="+")
            results = await pipe.execute(raise_on_error=False)
        if isinstance(results[0], Exception):
            raise results[0]  # the notice was not sent: an older stream could stay open
        exists = bool(results[1])
        info = results[2] if exists and isinstance(results[2], dict) else {}
        last_generated = _text(info.get("last-generated-id", b"0-0"))
        top = _parse_seq(last_generated) or (0, 0)
        # Events trimmed off the front (or deleted): a client that last saw one before the
        # first kept entry has missed some.
        trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
        first = info.get("first-entry")
        floor = (_parse_seq(_text(first[0])) or (0, 0)) if trimmed and first else (0, 0)
        replay: list[Event] = []
        gap = True
        if last is not None and floor <= last <= top:
            if isinstance(results[3], Exception):
                raise results[3]
            for event_id, fields in results[3]:
                fields = {_text(k): v for k, v in fields.items()}
                replay.append(
                    Event(
                        _text(event_id),
                        _text(fields["n"]),
                        json.loads(fields["x"]),
                        _parse_seq(_text(event_id)) or (0, 0),
                    )
                )
            gap = False
        if replay:
            subscriber.floor = replay[-1].seq
            last_id = replay[-1].id
        else:
            subscriber.floor = top
            last_id = last_generated
        return Subscription(subscriber, replay, gap, last_id)

    def unsubscribe(self, device_id: str, subscriber: Subscriber) -> bool:
        if self._local.get(device_id) is not subscriber:
            return False
        del self._local[device_id]
        self._owner.pop(device_id, None)
        return True

    async def close_device(self, device_id: str) -> None:
        self._close_local(device_id)
        with self._link.writing([device_id]):
            await self._link.client.delete(self._key(device_id))
            await self._link.send("closed", {"d": device_id})

    def close_all(self) -> None:
        for device_id in list(self._local):
            self._close_local(device_id)
        for subscriber in list(self._dashboards):
            subscriber.close()

    def stream_count(self) -> int:
        return len(self._local)

    # --- dashboards ----------------------------------------------------------------------

    def dashboard_subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._dashboards.add(subscriber)
        self._count_dashboards(1)
        return subscriber

    def dashboard_unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._dashboards:
            self._dashboards.discard(subscriber)
            self._count_dashboards(-1)

    def _count_dashboards(self, change: int) -> None:
        self._dashboards_anywhere = max(0, self._dashboards_anywhere + change)
        task = asyncio.get_running_loop().create_task(
            self._link.send("dashboards", {"n": change, "r": self._link.replica})
        )
        task.add_done_callback(lambda t: t.exception())

    async def broadcast(self, name: str, data: dict[str, Any]) -> None:
        await self._link.send("dashboard", {"i": secrets.token_hex(6), "n": name, "x": data})

    def dashboards_open(self) -> bool:
        return self._dashboards_anywhere > 0 or bool(self._dashboards)

    def dashboard_count(self) -> int:
        return len(self._dashboards)


async def open_redis(url: str, config: ServerConfig, clock: Clock, outages: Outages) -> Shared:
    """The ``Shared`` state of a replica, in Redis at ``url``."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from server._shared import BEATS_PER_HALF_INTERVAL, Shared, heartbeat_interval, offline_after_s

    # Requests beyond the pool wait for a connection (briefly) rather than fail. A command
    # whose connection was refused or reset is tried once more on a new one (a pooled one may
    # predate a Redis restart); one that timed out is not (a hung Redis may still run it).
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        health_check_interval=30,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    client = redis.asyncio.Redis.from_pool(pool)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        from core import ServerError

        raise ServerError(f"server.redis_url: cannot reach Redis ({exc})") from exc
    link = RedisLink(client)
    outages.register("redis", _unreachable, link.probe, _pool_exhausted)
    link.on_lost.append(lambda exc: outages.down("redis", exc))
    await link.start()
    bus = RedisBus(link)

    async def caught_up() -> None:
        await link.catch_up()
        bus.dispatch("resync", {})  # here at once, before requests are served as usual
        await bus.send("resync", {})  # and on every other replica: what it may have missed

    outages.on_back("redis", caught_up)
    interval = heartbeat_interval(config)
    return Shared(
        hub=RedisHub(link, config.event_replay_size),
        presence=RedisPresence(
            link,
            offline_after_s(config),
            beats=BEATS_PER_HALF_INTERVAL,
            beat_window_s=interval / 2,
            clock=clock,
        ),
        manifests=RedisManifests(link),
        bus=bus,
        leases=RedisLeases(link),
        window=lambda name, limit, window_s: RedisWindow(link, name, limit, window_s, clock),
        close=link.close,
    )
