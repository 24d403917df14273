"""When things play, beyond the layout schedule: windows, shares of airtime, interrupts, power.

These fields joined protocol v1 additively. Each is left out of a serialized manifest while it
is unused (``exclude_if``), so content that does not use a feature reads exactly as before and
every v1 player accepts it; a player that predates a field refuses a manifest that uses it
(unknown fields are an error) with a readable manifest error, and keeps playing the last good
manifest (docs/protocol.md, "Compatibility").
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Annotated, Any, Protocol

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from protocol._types import Day, Id, TimeOfDay, WireModel, minutes_of

HOUR_MS = 3_600_000


def unused(value: Any) -> bool:
    """An additive field at its default: left out when serialized (older players refuse it)."""
    return value is None or value == []


def _repeated(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


class Window(WireModel):
    """Local dates, days of the week and a time of day, in the manifest's time zone.

    ``to`` earlier than ``from`` crosses midnight: the window belongs to the day it starts on.
    ``start``/``end`` are inclusive dates; None means open-ended. ``days`` None means every day.
    Without ``from``/``to`` the window is the whole day.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: dt.date | None = None
    end: dt.date | None = None
    days: list[Day] | None = Field(None, min_length=1, max_length=7)
    from_: TimeOfDay | None = Field(None, alias="from")
    to: TimeOfDay | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Window:
        check_window(self, "window")
        return self


class WindowFields(Protocol):
    """What a window is made of (``Window``, ``ScheduleEntry``)."""

    @property
    def start(self) -> dt.date | None: ...
    @property
    def end(self) -> dt.date | None: ...
    @property
    def days(self) -> list[Day] | None: ...
    @property
    def from_(self) -> str | None: ...
    @property
    def to(self) -> str | None: ...


def check_window(window: WindowFields, label: str) -> None:
    """The rules every window obeys, with ``label`` naming it in the messages."""
    if window.start and window.end and window.end < window.start:
        raise ValueError(f"{label} ends ({window.end}) before it starts ({window.start})")
    if (window.from_ is None) != (window.to is None):
        raise ValueError(f"{label} needs both 'from' and 'to', or neither")
    if window.from_ == "24:00":
        raise ValueError(f"{label}: 'from' cannot be 24:00 (use 00:00)")
    if (
        window.from_ is not None
        and window.to is not None
        and minutes_of(window.from_) == minutes_of(window.to) % 1440
    ):
        raise ValueError(f"{label}: 'from' equals 'to'; leave both out for all day")
    if window.days and (dup := _repeated(list(window.days))):
        raise ValueError(f"{label} repeats days {dup}")


class Share(WireModel):
    """A share of each hour's airtime for a playlist item: ``percent`` of the hour, or
    ``per_hour`` plays. The player spreads the plays evenly over each local hour."""

    percent: float | None = Field(None, gt=0, le=100)
    per_hour: int | None = Field(None, strict=True, ge=1, le=3_600)

    @model_validator(mode="after")
    def _one_of(self) -> Share:
        if (self.percent is None) == (self.per_hour is None):
            raise ValueError("a share needs exactly one of 'percent' or 'per_hour'")
        return self

    def plays_per_hour(self, duration_ms: int) -> int:
        """Plays per hour of an item lasting ``duration_ms``: ``per_hour``, or the whole
        number of plays nearest to ``percent`` of the hour (at least one)."""
        if self.per_hour is not None:
            return self.per_hour
        assert self.percent is not None
        return max(1, round(self.percent / 100 * HOUR_MS / duration_ms))


class LayoutShare(Share):
    """A schedule entry's share of each hour: its layout takes over for ``slot_ms`` at a time,
    ``per_hour`` times an hour (or as many slots as make ``percent`` of it), the slots spread
    evenly over each local hour, while the entry's window is open."""

    slot_ms: Annotated[int, Field(strict=True, ge=1_000, le=HOUR_MS)]

    @model_validator(mode="after")
    def _fits(self) -> LayoutShare:
        slots = self.slots_per_hour()
        if slots * self.slot_ms > HOUR_MS:
            raise ValueError(f"{slots} slots of {self.slot_ms / 1000:g} s do not fit in an hour")
        return self

    def slots_per_hour(self) -> int:
        return self.plays_per_hour(self.slot_ms)


class Interrupt(WireModel):
    """A layout that takes over the screen from ``starts_at`` until ``ends_at`` (None: until
    cleared), above every schedule entry. Among interrupts active at once the highest
    ``priority`` wins, then the one that started last."""

    id: Id
    layout: Id
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    priority: int = Field(0, strict=True, ge=0, le=1_000)

    @model_validator(mode="after")
    def _ordered(self) -> Interrupt:
        if self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError(
                f"interrupt {self.id!r} ends ({self.ends_at.isoformat()}) before it starts "
                f"({self.starts_at.isoformat()})"
            )
        return self

    def active(self, when: dt.datetime) -> bool:
        return self.starts_at <= when and (self.ends_at is None or when < self.ends_at)


class PowerSchedule(WireModel):
    """When the screen is on: inside any of the ``on`` windows; off (standby) outside them."""

    on: Annotated[list[Window], Field(min_length=1, max_length=100)]
