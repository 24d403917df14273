"""Putting content on a server through its admin API, as an operator would.

Simulated devices join one group (``sim``) whose content set is the seeded schedule and default
layout, so a publication reaches every device the way a real fleet update does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core import ConfigError
from protocol import ImageItem, Manifest, VideoItem
from server import AdminClient
from tools.sim._content import (
    Content,
    MediaFile,
    build_manifest,
    convert_playlists,
    load_content,
    validation_problems,
)
from tools.sim._scenario import Publish

GROUP = "sim"


@dataclass
class SeededContent:
    """What the server holds for the simulated group; publications update it."""

    manifest: Manifest
    uploaded: set[str] = field(default_factory=set)

    def item_bodies(self) -> dict[str, dict[str, Any]]:
        return {
            item.id: item.model_dump(mode="json")
            for p in self.manifest.playlists
            for item in p.items
        }


def _dump(model: Any) -> dict[str, Any]:
    body: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return body


def upload_media(admin: AdminClient, media: Iterable[MediaFile], done: set[str]) -> None:
    for entry in media:
        if entry.sha256 in done:
            continue
        sha = admin.upload(entry.path)
        if sha != entry.sha256:
            raise ConfigError([f"{entry.path}: the server hashed it to {sha}, not {entry.sha256}"])
        done.add(entry.sha256)


def put_manifest_parts(admin: AdminClient, manifest: Manifest) -> None:
    """Playlists, then layouts, then schedules: each references the ones before."""
    for playlist in manifest.playlists:
        admin.put_playlist(_dump(playlist))
    for layout in manifest.layouts:
        admin.put_layout(_dump(layout))
    for entry in manifest.schedule:
        admin.put_schedule(_dump(entry))


def assign_group(admin: AdminClient, manifest: Manifest) -> None:
    admin.assign(
        GROUP,
        group=True,
        default_layout=manifest.default_layout,
        schedule=[e.id for e in manifest.schedule],
        timezone=manifest.timezone,
    )
    power = None if manifest.power is None else _dump(manifest.power)
    admin.set_power(GROUP, power, group=True)


def seed(admin: AdminClient, content: Content) -> SeededContent:
    """Upload the media and publish the content set to the ``sim`` group."""
    seeded = SeededContent(manifest=content.manifest)
    upload_media(admin, content.media.values(), seeded.uploaded)
    admin.put_group(GROUP, "Simulated devices")
    put_manifest_parts(admin, content.manifest)
    assign_group(admin, content.manifest)
    return seeded


def _merged(
    current: Manifest, publish: Publish, media: Mapping[str, MediaFile], playlists: list[Any]
) -> Manifest:
    """The current content with the publication's parts replacing those with the same id."""
    body = _dump(current)

    def replace(key: str, new: list[Any]) -> None:
        by_id = {part["id"]: part for part in body[key]}
        for part in new:
            by_id[part.get("id")] = part
        body[key] = list(by_id.values())

    replace("playlists", playlists)
    replace("layouts", list(publish.layouts))
    replace("schedule", list(publish.schedule))
    if publish.default_layout is not None:
        body["default_layout"] = publish.default_layout
    body.pop("assets")
    body.pop("version")
    body.pop("config")
    known = {a.sha256: MediaFile(Path(), a.sha256, a.size, a.mime) for a in current.assets}
    return build_manifest(body, known | dict(media))


def prepare_publication(
    current: SeededContent, publish: Publish, base: Path
) -> tuple[Manifest, dict[str, MediaFile]]:
    """Validate a publication against the current content before anything is sent."""
    if publish.content is not None:
        content = load_content(publish.content, base=base)
        return content.manifest, content.media
    problems: list[str] = []
    media: dict[str, MediaFile] = {}
    playlists = convert_playlists(list(publish.playlists), base, media, problems)
    if problems:
        raise ConfigError(problems)
    try:
        return _merged(current.manifest, publish, media, playlists), media
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc)) from exc


def changed_items(before: Manifest, after: Manifest) -> frozenset[str]:
    """Items that are new or differ: their first start proves the update arrived."""
    old = {item.id: item for p in before.playlists for item in p.items}
    return frozenset(
        item.id for p in after.playlists for item in p.items if old.get(item.id) != item
    )


def apply_publication(
    admin: AdminClient,
    current: SeededContent,
    manifest: Manifest,
    media: Mapping[str, MediaFile],
) -> None:
    upload_media(admin, media.values(), current.uploaded)
    put_manifest_parts(admin, manifest)
    assign_group(admin, manifest)
    current.manifest = manifest


def asset_of_item(manifest: Manifest, item_id: str) -> str:
    """The sha256 an item plays; ConfigError when it is not a media item of this content."""
    for playlist in manifest.playlists:
        for item in playlist.items:
            if item.id == item_id and isinstance(item, ImageItem | VideoItem):
                return item.asset
    media = sorted(
        i.id for p in manifest.playlists for i in p.items if isinstance(i, ImageItem | VideoItem)
    )
    raise ConfigError([f"no image or video item {item_id!r} (media items: {', '.join(media)})"])
