"""Assembling each device's manifest from the content it is assigned, and publishing changes.

A device (or its group) is assigned a content set: schedule entry ids and a default layout.
Its manifest holds exactly the layouts, playlists and assets those reference, plus the
interrupts sent to it or its group that have not ended or been cleared (and their layouts),
and its power schedule (its own, else its group's). The version goes up only when that
content changes; the strong ETag is over the canonical JSON.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from protocol import (
    DAYS,
    Asset,
    ImageItem,
    Interrupt,
    Layout,
    Manifest,
    ManifestConfig,
    Playlist,
    PowerSchedule,
    ScheduleEntry,
    SyncGroup,
    VideoItem,
    minutes_of,
    open_ended_items,
    shared_items,
)
from server._db import (
    devices,
    group_sync,
    groups,
    interrupts,
    layouts,
    media,
    playlists,
    power_schedules,
    schedules,
)
from server._manifests import CachedManifest
from server._problems import ApiError
from server._state import ServerState

WEEK_MIN = 7 * 1440


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_config(state: ServerState) -> ManifestConfig:
    return ManifestConfig(
        heartbeat_interval_s=state.heartbeat_interval(),
        poll_interval_s=max(5, round(state.config.poll_interval_s)),
        sse_ping_s=max(1, min(300, round(state.config.sse_ping_s))),
    )


# A sync group and its epoch (UNIX seconds), when the device's group plays in step.
Sync = tuple[str, float] | None
Own = tuple[tuple[str, ...], str | None, str, Sync]


def assignment_of(device: Any, group: Any | None, sync: Sync = None) -> Own:
    """(schedule ids, default layout, timezone, sync): the device's own set wins over its
    group's; playing in step comes with membership of a sync group, whichever set it plays
    (each screen of a video wall has its own layout, cropping its tile of the clip)."""
    if device.schedule is not None or device.default_layout is not None:
        source = device
    elif group is not None:
        source = group
    else:
        return (), None, device.timezone or "UTC", sync
    timezone = device.timezone or source.timezone or "UTC"
    return tuple(source.schedule or []), source.default_layout, timezone, sync


# (schedule ids, default layout, timezone, interrupt ids, power schedule's target, sync)
Assignment = tuple[tuple[str, ...], str | None, str, tuple[str, ...], str | None, Sync]


def interrupt_model(row: Any) -> Interrupt:
    return Interrupt(
        id=row.id,
        layout=row.layout,
        starts_at=dt.datetime.fromtimestamp(row.starts_at, dt.UTC),
        ends_at=None if row.ends_at is None else dt.datetime.fromtimestamp(row.ends_at, dt.UTC),
        priority=row.priority,
    )


def live_interrupts(now: float) -> Any:
    """The query for interrupts still in force or to come (neither cleared nor ended)."""
    return select(interrupts).where(
        interrupts.c.cleared_at.is_(None),
        or_(interrupts.c.ends_at.is_(None), interrupts.c.ends_at > now),
    )


@dataclass
class _Content:
    """Validated manifest content (version 0) and its digest, shared by same-set devices."""

    body: dict[str, Any]
    digest: str
    assets: frozenset[str]


class ContentSnapshot:
    """All content tables read once, so rebuilding many manifests costs a handful of queries;
    devices with the same content set share one assembly."""

    def __init__(
        self,
        state: ServerState,
        tables: dict[str, dict[str, Any]],
        media_rows: dict[str, Asset],
        group_rows: dict[str, Any],
        interrupt_rows: list[Any] | None = None,
        power_rows: dict[str, PowerSchedule] | None = None,
        sync_epochs: dict[str, float] | None = None,
    ) -> None:
        self._state = state
        self._tables = tables
        self._media = media_rows
        self.groups = group_rows
        self._interrupts = {r.id: r for r in interrupt_rows or []}
        self._power = power_rows or {}
        self.sync_epochs = sync_epochs or {}
        self._memo: dict[Assignment, _Content] = {}

    @classmethod
    async def load(cls, conn: AsyncConnection, state: ServerState) -> ContentSnapshot:
        tables = {}
        for name, table in (
            ("schedules", schedules),
            ("layouts", layouts),
            ("playlists", playlists),
        ):
            tables[name] = {
                r.id: r.body for r in await conn.execute(select(table.c.id, table.c.body))
            }
        media_rows = {r.sha256: _asset(r) for r in await conn.execute(select(media))}
        group_rows = {r.id: r for r in await conn.execute(select(groups))}
        epochs = {r.group_id: r.epoch for r in await conn.execute(select(group_sync))}
        interrupt_rows = list(await conn.execute(live_interrupts(state.clock())))
        power_rows = {
            r.target: PowerSchedule.model_validate(r.body)
            for r in await conn.execute(select(power_schedules))
        }
        return cls(state, tables, media_rows, group_rows, interrupt_rows, power_rows, epochs)

    def sync_of(self, group_id: str | None) -> Sync:
        epoch = self.sync_epochs.get(group_id) if group_id else None
        return None if group_id is None or epoch is None else (group_id, epoch)

    def assignment(self, device: Any) -> Assignment:
        """What ``device`` plays: its content set (or its group's), the interrupts sent to
        it or its group, its power schedule (or its group's), and its sync group."""
        group = self.groups.get(device.group_id) if device.group_id else None
        sync = self.sync_of(device.group_id)
        schedule_ids, default_layout, timezone, sync = assignment_of(device, group, sync)
        sent = sorted(
            r.id
            for r in self._interrupts.values()
            if r.device_id == device.id
            or (r.group_id is not None and r.group_id == device.group_id)
        )
        power = None
        for target in (f"device:{device.id}", f"group:{device.group_id}"):
            if target in self._power:
                power = target
                break
        return schedule_ids, default_layout, timezone, tuple(sent), power, sync

    def _models(self, name: str, model: Any, ids: Iterable[str]) -> list[Any]:
        table = self._tables[name]
        return [model.model_validate(table[i]) for i in sorted(set(ids)) if i in table]

    def content(self, assignment: Assignment) -> _Content:
        cached = self._memo.get(assignment)
        if cached is None:
            cached = self._memo[assignment] = self._assemble(*assignment)
        return cached

    def _assemble(
        self,
        schedule_ids: tuple[str, ...],
        default_layout: str | None,
        timezone: str,
        interrupt_ids: tuple[str, ...] = (),
        power: str | None = None,
        sync: Sync = None,
    ) -> _Content:
        entries = self._models("schedules", ScheduleEntry, schedule_ids)
        sent = [interrupt_model(self._interrupts[i]) for i in interrupt_ids]
        layout_ids = {e.layout for e in entries} | ({default_layout} if default_layout else set())
        layout_ids |= {i.layout for i in sent}
        layout_models = self._models("layouts", Layout, layout_ids)
        playlist_ids = {zone.playlist for layout in layout_models for zone in layout.zones}
        playlist_models = self._models("playlists", Playlist, playlist_ids)
        shas = {
            i.asset
            for p in playlist_models
            for i in p.items
            if isinstance(i, ImageItem | VideoItem)
        }
        if sync is not None:
            _check_sync(
                sync[0], playlist_models, [self._media[sha] for sha in shas if sha in self._media]
            )
        manifest = Manifest(
            version=0,
            timezone=timezone,
            config=manifest_config(self._state),
            assets=[self._media[sha] for sha in sorted(shas) if sha in self._media],
            playlists=playlist_models,
            layouts=layout_models,
            schedule=entries,
            default_layout=default_layout
            if default_layout in {x.id for x in layout_models}
            else None,
            interrupts=[i for i in sent if i.layout in {x.id for x in layout_models}],
            power=self._power.get(power) if power is not None else None,
            sync=None
            if sync is None
            else SyncGroup(group=sync[0], epoch=dt.datetime.fromtimestamp(sync[1], dt.UTC)),
        )
        body = manifest.model_dump(mode="json", by_alias=True)
        digest = hashlib.sha256(canonical_json(body)).hexdigest()
        return _Content(body, digest, frozenset(a.sha256 for a in manifest.assets))


def _check_sync(
    group_id: str, playlist_models: Sequence[Playlist], assets: Sequence[Asset]
) -> None:
    """A sync group's screens compute one cycle: every item's length must be known, and no
    item may ask for a share of the hour."""
    if open_ended := open_ended_items(playlist_models, assets):
        raise ApiError(
            409,
            "sync_needs_durations",
            f"group {group_id!r} plays in sync, so every item needs a known length "
            "(duration_ms, or for a video a file whose length the server could probe); "
            f"without one: {', '.join(open_ended[:10])}",
        )
    if shared := shared_items(playlist_models):
        raise ApiError(
            409,
            "sync_refuses_shares",
            f"group {group_id!r} plays in sync, so no item may have a share (every screen "
            "plays the same fixed cycle from group time); with one: "
            f"{', '.join(shared[:10])}",
        )


def _asset(row: Any) -> Asset:
    probe = row.probe or {}
    return Asset(
        sha256=row.sha256,
        size=row.size,
        mime=row.mime,
        width=probe.get("width"),
        height=probe.get("height"),
        duration_ms=probe.get("duration_ms"),
    )


@dataclass(frozen=True)
class Refreshed:
    """Manifests rebuilt in a transaction; ``announce`` them after it commits."""

    manifests: dict[str, CachedManifest]
    changed: list[str]  # devices whose version went up


class _Versions:
    """The bodies of one content at each version, built by splicing the version into its
    canonical JSON rather than serialising the manifest again: devices that share content
    (a group) cost one serialisation, and one hash per version they are at."""

    def __init__(self, content: _Content) -> None:
        self.content = content
        marker = canonical_json({"version": _MARKER})[1:-1]  # "version":"<marker>"
        template = canonical_json(content.body | {"version": _MARKER})
        head, found, tail = template.partition(marker)
        if not found or marker in tail:
            raise AssertionError("the version marker must appear exactly once")
        self._head = head + b'"version":'
        self._tail = tail
        self._built: dict[int, tuple[str, bytes]] = {}

    def at(self, version: int) -> tuple[str, bytes]:
        """(ETag, body) at ``version``: the canonical JSON of the content with that version."""
        built = self._built.get(version)
        if built is None:
            body = self._head + str(version).encode() + self._tail
            etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
            built = self._built[version] = (etag, body)
        return built


# A string no content holds: where the version goes in the canonical JSON.
_MARKER = "\x00version:" + hashlib.sha256(b"signage manifest version").hexdigest()
BATCH = 1000  # rows per statement (SQLite binds at most 32 766 parameters)


async def refresh_devices(
    conn: AsyncConnection, state: ServerState, device_ids: Sequence[str] | None = None
) -> Refreshed:
    """Rebuild the manifests of the given (default: all live) devices and bump the version of
    each whose content changed, inside the caller's transaction (a content transaction).

    The stored manifests of the changed devices are dropped before the commit: should this
    replica die before ``announce``, they are rebuilt from the database, not served stale."""
    query = select(devices).where(devices.c.revoked_at.is_(None))
    rows: list[Any] = []
    if device_ids is None:
        rows = list((await conn.execute(query)).all())
    else:
        wanted = list(dict.fromkeys(device_ids))  # once each, whatever the chunks
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            rows += (await conn.execute(query.where(devices.c.id.in_(chunk)))).all()
    if not rows:
        return Refreshed({}, [])
    snapshot = await ContentSnapshot.load(conn, state)
    versions: dict[str, _Versions] = {}
    bumped: dict[str, list[str]] = {}  # digest → devices whose content became it
    built: dict[str, CachedManifest] = {}
    for device in rows:
        content = snapshot.content(snapshot.assignment(device))
        shared = versions.get(content.digest)
        if shared is None:
            shared = versions[content.digest] = _Versions(content)
        version = device.manifest_version
        if content.digest != device.manifest_digest:
            version += 1
            bumped.setdefault(content.digest, []).append(device.id)
        etag, body = shared.at(version)
        built[device.id] = CachedManifest(etag, body, version, content.assets, content.digest)
    changed = [device_id for ids in bumped.values() for device_id in ids]
    # One statement per distinct content (and thousand devices), not one per device; the
    # content lock makes "version + 1" here what it was computed as above.
    for digest, ids in bumped.items():
        for start in range(0, len(ids), BATCH):
            await conn.execute(
                update(devices)
                .where(devices.c.id.in_(ids[start : start + BATCH]))
                .values(manifest_version=devices.c.manifest_version + 1, manifest_digest=digest)
            )
    if changed:
        await state.manifests.drop_many(changed)
    return Refreshed(built, changed)


async def announce(state: ServerState, refreshed: Refreshed) -> None:
    """After the commit: store the manifests (any replica then serves them), then tell each
    device whose version went up."""
    await state.manifests.put_many(refreshed.manifests)
    await state.hub.publish_many(
        (device_id, "manifest", {"etag": refreshed.manifests[device_id].etag})
        for device_id in refreshed.changed
    )


# --- schedule conflicts ----------------------------------------------------------------------


def _windows(entry: ScheduleEntry) -> list[tuple[int, int]]:
    """Minute intervals on a weekly circle (Monday 00:00 = 0) the entry covers."""
    days = range(7) if entry.days is None else [DAYS.index(d) for d in entry.days]
    if entry.from_ is None or entry.to is None:
        start_min, end_min = 0, 1440
    else:
        start_min, end_min = minutes_of(entry.from_), minutes_of(entry.to)
        if end_min <= start_min:
            end_min += 1440  # crosses midnight: belongs to the day it starts on
    spans = []
    for day in days:
        start, end = day * 1440 + start_min, day * 1440 + end_min
        if end > WEEK_MIN:
            spans += [(start, WEEK_MIN), (0, end - WEEK_MIN)]
        else:
            spans.append((start, end))
    return spans


def _dates_overlap(a: ScheduleEntry, b: ScheduleEntry) -> bool:
    if a.end is not None and b.start is not None and a.end < b.start:
        return False
    return not (b.end is not None and a.start is not None and b.end < a.start)


def conflicts(a: ScheduleEntry, b: ScheduleEntry) -> bool:
    """Same priority and overlapping in time: which one plays would be arbitrary."""
    if a.id == b.id or a.priority != b.priority or not _dates_overlap(a, b):
        return False
    return any(s1 < e2 and s2 < e1 for s1, e1 in _windows(a) for s2, e2 in _windows(b))


def first_conflict(entries: Sequence[ScheduleEntry]) -> tuple[str, str] | None:
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if conflicts(a, b):
                return a.id, b.id
    return None
