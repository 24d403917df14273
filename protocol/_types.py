"""Constrained scalar types shared by the wire models."""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class WireModel(BaseModel):
    """Strict base: unknown fields are an error, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DURATION_MS = 7 * 24 * 3600 * 1000  # one week: longer is a mistake, not "forever"

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Colour = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
DurationMs = Annotated[int, Field(strict=True, ge=1, le=MAX_DURATION_MS)]
TransitionMs = Annotated[int, Field(strict=True, ge=0, le=10_000)]
Pixels = Annotated[int, Field(strict=True, ge=0, le=16_384)]
Extent = Annotated[int, Field(strict=True, ge=1, le=16_384)]
Token = Annotated[
    str, StringConstraints(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
]
PairingCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like 'Europe/Paris')"
        ) from exc
    return name


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"time of day must be HH:MM between 00:00 and 24:00, got {value!r}")
    return value


TimeZoneName = Annotated[str, StringConstraints(max_length=64), AfterValidator(_check_timezone)]
TimeOfDay = Annotated[str, AfterValidator(_check_hhmm)]


def minutes_of(value: str) -> int:
    """Minutes since midnight of an HH:MM string (24:00 is 1440)."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)
