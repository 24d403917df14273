"""Assembling each device's manifest from the content it is assigned, and publishing changes.

A device (or its group) is assigned a content set: schedule entry ids and a default layout.
Its manifest holds exactly the layouts, playlists and assets those reference. The version
goes up only when that content changes; the strong ETag is over the canonical JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from server._db import devices, groups, layouts, media, playlists, schedules
from server._state import CachedManifest, ServerState
from sync import (
    DAYS,
    Asset,
    ImageItem,
    Layout,
    Manifest,
    ManifestConfig,
    Playlist,
    ScheduleEntry,
    VideoItem,
    minutes_of,
)

WEEK_MIN = 7 * 1440


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def manifest_config(state: ServerState) -> ManifestConfig:
    return ManifestConfig(
        heartbeat_interval_s=state.heartbeat_interval(),
        poll_interval_s=max(5, round(state.config.poll_interval_s)),
        sse_ping_s=max(1, min(300, round(state.config.sse_ping_s))),
    )


def assignment_of(device: Any, group: Any | None) -> tuple[list[str], str | None, str]:
    """(schedule ids, default layout, timezone): the device's own set wins over its group's."""
    if device.schedule is not None or device.default_layout is not None:
        source = device
    elif group is not None:
        source = group
    else:
        return [], None, device.timezone or "UTC"
    timezone = device.timezone or source.timezone or "UTC"
    return list(source.schedule or []), source.default_layout, timezone


async def _bodies(conn: AsyncConnection, table: Any, ids: Iterable[str]) -> dict[str, Any]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(select(table.c.id, table.c.body).where(table.c.id.in_(wanted)))
    return {row.id: row.body for row in rows}


async def assemble(
    conn: AsyncConnection, state: ServerState, device: Any, group: Any | None
) -> Manifest:
    """The manifest content for ``device`` at version 0 (the caller sets the version)."""
    schedule_ids, default_layout, timezone = assignment_of(device, group)
    entries = [
        ScheduleEntry.model_validate(body)
        for _, body in sorted((await _bodies(conn, schedules, schedule_ids)).items())
    ]
    layout_ids = {e.layout for e in entries} | ({default_layout} if default_layout else set())
    layout_models = [
        Layout.model_validate(body)
        for _, body in sorted((await _bodies(conn, layouts, layout_ids)).items())
    ]
    playlist_ids = {zone.playlist for layout in layout_models for zone in layout.zones}
    playlist_models = [
        Playlist.model_validate(body)
        for _, body in sorted((await _bodies(conn, playlists, playlist_ids)).items())
    ]
    shas = {
        item.asset
        for p in playlist_models
        for item in p.items
        if isinstance(item, ImageItem | VideoItem)
    }
    assets: list[Asset] = []
    if shas:
        rows = await conn.execute(select(media).where(media.c.sha256.in_(sorted(shas))))
        assets = [Asset(sha256=r.sha256, size=r.size, mime=r.mime) for r in rows]
    return Manifest(
        version=0,
        timezone=timezone,
        config=manifest_config(state),
        assets=sorted(assets, key=lambda a: a.sha256),
        playlists=playlist_models,
        layouts=layout_models,
        schedule=entries,
        default_layout=default_layout if default_layout in {x.id for x in layout_models} else None,
    )


def _dump(manifest: Manifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json", by_alias=True)


async def refresh_device(conn: AsyncConnection, state: ServerState, device: Any) -> bool:
    """Rebuild one device's manifest; bump its version when the content changed.

    Returns whether it changed (the caller publishes after committing).
    """
    group = None
    if device.group_id is not None:
        group = (await conn.execute(select(groups).where(groups.c.id == device.group_id))).first()
    content = await assemble(conn, state, device, group)
    digest = hashlib.sha256(canonical_json(_dump(content))).hexdigest()
    version = device.manifest_version
    changed = digest != device.manifest_digest
    if changed:
        version += 1
        await conn.execute(
            update(devices)
            .where(devices.c.id == device.id)
            .values(manifest_version=version, manifest_digest=digest)
        )
    # Validated again with its final version before anything serves it.
    manifest = Manifest.model_validate(_dump(content) | {"version": version})
    body = canonical_json(_dump(manifest))
    etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
    state.manifests[device.id] = CachedManifest(
        etag=etag, body=body, version=version, assets=frozenset(a.sha256 for a in manifest.assets)
    )
    return bool(changed)


async def refresh_devices(
    conn: AsyncConnection, state: ServerState, device_ids: Sequence[str] | None = None
) -> list[str]:
    """Rebuild the manifests of the given (default: all live) devices; return the changed ids."""
    query = select(devices).where(devices.c.revoked_at.is_(None))
    if device_ids is not None:
        query = query.where(devices.c.id.in_(list(device_ids)))
    changed = []
    for device in (await conn.execute(query)).all():
        if await refresh_device(conn, state, device):
            changed.append(device.id)
    return changed


def announce(state: ServerState, device_ids: Iterable[str]) -> None:
    for device_id in device_ids:
        cached = state.manifests.get(device_id)
        if cached is not None:
            state.hub.publish(device_id, "manifest", {"etag": cached.etag})


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
