"""The manifest: everything a device needs to play, validated before anything uses it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from protocol._scheduling import (
    HOUR_MS,
    Interrupt,
    LayoutShare,
    PowerSchedule,
    Share,
    Window,
    check_window,
    unused,
)
from protocol._types import (
    Colour,
    Day,
    DurationMs,
    Extent,
    Id,
    Pixels,
    Sha256,
    TimeOfDay,
    TimeZoneName,
    TransitionMs,
    WireModel,
)


def _duplicates(values: Iterable[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


class Transition(WireModel):
    type: Literal["cut", "fade", "crossfade"] = "cut"
    duration_ms: TransitionMs = 500


class ItemBase(WireModel):
    """What every item has: an id, and optionally its own validity window and share of airtime.

    ``valid``: the item plays only inside this window (like a schedule entry's, in the
    manifest's time zone); outside it the zone skips it. ``share``: the item asks for a share
    of each hour, spread evenly; it needs a ``duration_ms``.
    """

    id: Id
    valid: Window | None = Field(None, exclude_if=unused)
    share: Share | None = Field(None, exclude_if=unused)

    @model_validator(mode="after")
    def _share_needs_duration(self) -> ItemBase:
        if self.share is not None and getattr(self, "duration_ms", None) is None:
            raise ValueError(
                f"item {self.id!r} asks for a share of airtime but has no duration_ms "
                "(plays are spread by their length)"
            )
        return self

    def plays_per_hour(self) -> int:
        """The plays per hour its share asks for (0 without a share)."""
        duration = getattr(self, "duration_ms", None)
        if self.share is None or not isinstance(duration, int):
            return 0
        return self.share.plays_per_hour(duration)


class ImageItem(ItemBase):
    type: Literal["image"]
    asset: Sha256
    duration_ms: DurationMs = 10_000
    fit: Literal["contain", "cover", "stretch"] = "contain"
    transition: Transition | None = None


class VideoItem(ItemBase):
    type: Literal["video"]
    asset: Sha256
    duration_ms: DurationMs | None = Field(None, description="None: play to the end of the file")
    loop: bool = False
    audio: bool = False
    fit: Literal["contain", "cover", "stretch"] = "contain"
    transition: Transition | None = None

    @model_validator(mode="after")
    def _loop_needs_duration(self) -> VideoItem:
        if self.loop and self.duration_ms is None:
            raise ValueError("a looping video needs duration_ms (it would never end)")
        return self


class TextItem(ItemBase):
    type: Literal["text"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
    duration_ms: DurationMs = 10_000
    scroll: Literal["none", "left", "up"] = "none"
    speed_px_s: float = Field(120.0, gt=0, le=5_000)
    color: Colour = "#ffffff"
    background: Colour | None = None
    font_size: int | None = Field(None, ge=6, le=1_000, description="None: fit the zone")
    align: Literal["left", "center", "right"] = "center"
    transition: Transition | None = None


class ClockItem(ItemBase):
    type: Literal["clock"]
    format: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "%H:%M"
    timezone: TimeZoneName | None = Field(None, description="None: the manifest's timezone")
    duration_ms: DurationMs = 10_000
    color: Colour = "#ffffff"
    background: Colour | None = None
    transition: Transition | None = None

    @field_validator("format")
    @classmethod
    def _format_renders(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError("a clock format needs at least one strftime directive such as %H")
        try:
            dt.datetime(2026, 1, 2, 3, 4, 5).strftime(value)
        except ValueError as exc:
            raise ValueError(f"not a valid strftime format: {value!r}") from exc
        return value


Item = Annotated[ImageItem | VideoItem | TextItem | ClockItem, Field(discriminator="type")]


class Playlist(WireModel):
    id: Id
    items: list[Item] = Field(min_length=1, max_length=1_000)

    @model_validator(mode="after")
    def _unique_items(self) -> Playlist:
        if dup := _duplicates(i.id for i in self.items):
            raise ValueError(f"playlist {self.id!r} repeats item ids {dup}")
        shared_ms = sum(i.plays_per_hour() * (i.duration_ms or 0) for i in self.items)
        if shared_ms > HOUR_MS:
            raise ValueError(
                f"playlist {self.id!r}: its shares ask for {shared_ms / 1000:g} s of each hour "
                "(more than the hour)"
            )
        return self


Fraction = Annotated[float, Field(strict=True, ge=0, le=1)]


class Crop(WireModel):
    """The part of each picture a zone shows, in fractions of the picture's width and height.

    A video wall gives each screen's zone its own tile of one clip: the left screen of two
    ``{"x": 0, "y": 0, "w": 0.5, "h": 1}``, the right one ``{"x": 0.5, "y": 0, "w": 0.5, "h": 1}``.
    The tile is then fitted to the zone by the item's ``fit``. Image and video items only.
    """

    x: Fraction = 0.0
    y: Fraction = 0.0
    w: Fraction
    h: Fraction

    @model_validator(mode="after")
    def _inside(self) -> Crop:
        if self.w <= 0 or self.h <= 0:
            raise ValueError("a crop needs a width and a height above 0")
        # A millionth of slack: 1/3 + 2/3 written as decimals must still fit.
        if self.x + self.w > 1 + 1e-6 or self.y + self.h > 1 + 1e-6:
            raise ValueError(
                f"crop ({self.x}, {self.y}) {self.w}x{self.h} extends outside the picture"
            )
        return self


class Zone(WireModel):
    id: Id
    x: Pixels = 0
    y: Pixels = 0
    w: Extent
    h: Extent
    z: int = Field(0, strict=True, ge=-1_000, le=1_000)
    playlist: Id
    crop: Crop | None = Field(None, exclude_if=unused)


class Layout(WireModel):
    id: Id
    width: Extent = 1920
    height: Extent = 1080
    background: Colour = "#000000"
    zones: list[Zone] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _zones_fit(self) -> Layout:
        if dup := _duplicates(z.id for z in self.zones):
            raise ValueError(f"layout {self.id!r} repeats zone ids {dup}")
        for zone in self.zones:
            if zone.x + zone.w > self.width or zone.y + zone.h > self.height:
                raise ValueError(
                    f"zone {zone.id!r} ({zone.x},{zone.y} {zone.w}x{zone.h}) extends outside "
                    f"layout {self.id!r} ({self.width}x{self.height})"
                )
        return self


class ScheduleEntry(WireModel):
    """Plays ``layout`` on ``days`` between ``from`` and ``to`` local time, within the dates.

    The window fields mean what they mean in ``Window``: ``to`` earlier than ``from`` crosses
    midnight (the window belongs to the day it starts on), ``start``/``end`` are inclusive
    dates, None means open-ended, ``days`` None means every day. With ``share`` the entry
    plays its layout only in its slots of each hour (a campaign with a share of airtime).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: Id
    layout: Id
    priority: int = Field(0, strict=True, ge=0, le=1_000)
    start: dt.date | None = None
    end: dt.date | None = None
    days: list[Day] | None = Field(None, min_length=1, max_length=7)
    from_: TimeOfDay | None = Field(None, alias="from")
    to: TimeOfDay | None = None
    share: LayoutShare | None = Field(None, exclude_if=unused)

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleEntry:
        check_window(self, f"schedule {self.id!r}")
        return self


class Asset(WireModel):
    # Unknown probe figures are left out, not sent as null: a manifest of unprobed files is
    # byte for byte what it was before these fields existed.

    sha256: Sha256
    size: int = Field(strict=True, ge=0, le=1 << 40)
    mime: Annotated[str, StringConstraints(pattern=r"^(image|video)/[a-z0-9.+-]{1,64}$")]
    # What the server's probe found (optional: absent for files it has not probed).
    width: int | None = Field(None, strict=True, ge=1, le=1 << 20, exclude_if=unused)
    height: int | None = Field(None, strict=True, ge=1, le=1 << 20, exclude_if=unused)
    duration_ms: int | None = Field(None, strict=True, ge=0, le=1 << 40, exclude_if=unused)


class ManifestConfig(WireModel):
    heartbeat_interval_s: int = Field(30, strict=True, ge=5, le=3_600)
    poll_interval_s: int = Field(60, strict=True, ge=5, le=86_400)
    sse_ping_s: int = Field(15, strict=True, ge=1, le=300)


def item_length_ms(item: Item, assets: Mapping[str, Asset]) -> int | None:
    """How long an item plays: its ``duration_ms``, else (a video played to its end) the
    length the server's probe found for its asset; None when neither is known."""
    if item.duration_ms is not None:
        return item.duration_ms
    asset = assets.get(item.asset) if isinstance(item, VideoItem) else None
    return asset.duration_ms if asset is not None and asset.duration_ms else None


def open_ended_items(playlists: Iterable[Playlist], assets: Iterable[Asset] = ()) -> list[str]:
    """``playlist/item`` of the items whose length is not known (no ``duration_ms``, and for a
    video no probed length of its file): what a sync group cannot have, since every screen
    must know the cycle's length."""
    by_sha = {a.sha256: a for a in assets}
    return [
        f"{p.id}/{i.id}" for p in playlists for i in p.items if item_length_ms(i, by_sha) is None
    ]


def shared_items(playlists: Iterable[Playlist]) -> list[str]:
    """``playlist/item`` of the items with a ``share``: what a sync group cannot have, since a
    share's plays depend on what one screen played this hour, not on group time alone."""
    return [f"{p.id}/{i.id}" for p in playlists for i in p.items if i.share is not None]


class SyncGroup(WireModel):
    """The device plays in step with the other screens of ``group``.

    Each zone's playlist runs as a cycle anchored at ``epoch`` (group time, which is the
    server's clock): item boundaries fall at ``epoch + n * cycle + sum of the durations before
    the item`` on every screen of the group, whenever each one joined. An epoch in the future
    starts every playlist from its first item on every screen at that instant.
    """

    group: Id
    epoch: dt.datetime

    @field_validator("epoch")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("the epoch needs a UTC offset, e.g. 2026-11-21T00:00:00Z")
        return value


class Manifest(WireModel):
    version: int = Field(strict=True, ge=0)
    timezone: TimeZoneName = "UTC"
    config: ManifestConfig = ManifestConfig()
    assets: list[Asset] = Field(default_factory=list, max_length=10_000)
    playlists: list[Playlist] = Field(default_factory=list, max_length=1_000)
    layouts: list[Layout] = Field(default_factory=list, max_length=1_000)
    schedule: list[ScheduleEntry] = Field(default_factory=list, max_length=1_000)
    default_layout: Id | None = None
    sync: SyncGroup | None = Field(
        None, description="None: this device plays on its own", exclude_if=unused
    )
    interrupts: list[Interrupt] = Field(default_factory=list, max_length=100, exclude_if=unused)
    power: PowerSchedule | None = Field(None, exclude_if=unused)

    @model_validator(mode="after")
    def _references(self) -> Manifest:
        for kind, ids in (
            ("asset sha256", [a.sha256 for a in self.assets]),
            ("playlist ids", [p.id for p in self.playlists]),
            ("layout ids", [layout.id for layout in self.layouts]),
            ("schedule ids", [s.id for s in self.schedule]),
            ("interrupt ids", [i.id for i in self.interrupts]),
        ):
            if dup := _duplicates(ids):
                raise ValueError(f"repeated {kind}: {dup}")
        assets = {a.sha256: a for a in self.assets}
        for playlist in self.playlists:
            for item in playlist.items:
                if isinstance(item, ImageItem | VideoItem):
                    asset = assets.get(item.asset)
                    if asset is None:
                        raise ValueError(
                            f"item {playlist.id}/{item.id} uses asset {item.asset} "
                            "which is not in 'assets'"
                        )
                    if not asset.mime.startswith(f"{item.type}/"):
                        raise ValueError(
                            f"item {playlist.id}/{item.id} is a {item.type} but its asset is "
                            f"{asset.mime}"
                        )
        playlists = {p.id for p in self.playlists}
        for layout in self.layouts:
            for zone in layout.zones:
                if zone.playlist not in playlists:
                    raise ValueError(
                        f"zone {layout.id}/{zone.id} uses unknown playlist {zone.playlist!r}"
                    )
        layouts = {layout.id for layout in self.layouts}
        for entry in self.schedule:
            if entry.layout not in layouts:
                raise ValueError(f"schedule {entry.id!r} uses unknown layout {entry.layout!r}")
        for interrupt in self.interrupts:
            if interrupt.layout not in layouts:
                raise ValueError(
                    f"interrupt {interrupt.id!r} uses unknown layout {interrupt.layout!r}"
                )
        if self.default_layout is not None and self.default_layout not in layouts:
            raise ValueError(f"default_layout {self.default_layout!r} is not a layout")
        if self.sync is not None and (open_ended := open_ended_items(self.playlists, self.assets)):
            raise ValueError(
                "in a sync group every item needs a known length (duration_ms, or for a video "
                "the length its file was probed to have): the cycle must be known on every "
                f"screen; without one: {', '.join(open_ended[:10])}"
            )
        if self.sync is not None and (shared := shared_items(self.playlists)):
            raise ValueError(
                "in a sync group no item may have a share: its plays would depend on each "
                f"screen's own history, not on group time; with one: {', '.join(shared[:10])}"
            )
        return self

    def layout(self, layout_id: str) -> Layout:
        return next(layout for layout in self.layouts if layout.id == layout_id)

    def playlist(self, playlist_id: str) -> Playlist:
        return next(p for p in self.playlists if p.id == playlist_id)

    def assets_of(self, layout_id: str) -> list[Asset]:
        """The assets a layout needs, in first-use order."""
        by_sha = {a.sha256: a for a in self.assets}
        needed: dict[str, Asset] = {}
        for zone in self.layout(layout_id).zones:
            for item in self.playlist(zone.playlist).items:
                if isinstance(item, ImageItem | VideoItem):
                    needed.setdefault(item.asset, by_sha[item.asset])
        return list(needed.values())
