"""Request and response bodies of wire protocol v1 (docs/protocol.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from protocol._manifest import ManifestConfig
from protocol._scheduling import unused
from protocol._types import Id, PairingCode, Sha256, ShortText, Token, WireModel

PROTOCOL_VERSION = 1
CommandName = Literal[
    "reload",
    "screenshot",
    "restart",
    "reboot",
    "clear_cache",
    "identify",
    "display_on",
    "display_off",
]
# Commands a player that predates them would refuse (the whole heartbeat answer with them):
# the server sends them only to players that report ``metrics.power``.
POWER_COMMANDS: frozenset[str] = frozenset({"display_on", "display_off"})
Scalar = str | int | float | bool | None
Uuid = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F-]{8,64}$")]


# --- pairing ---------------------------------------------------------------------------------


class PairingRequest(WireModel):
    hardware_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    model: ShortText | None = None
    resolution: (
        Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$")] | None
    ) = None
    player_version: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None


class PairingCreated(WireModel):
    pairing_id: Id
    code: PairingCode
    expires_at: dt.datetime
    poll_token: Token
    poll_after_s: float = Field(ge=0, le=60)


class PairingPending(WireModel):
    status: Literal["pending"]
    expires_at: dt.datetime | None = None


class PairingPaired(WireModel):
    status: Literal["paired"]
    device_id: Id
    device_token: Token


PairingStatus = Annotated[PairingPending | PairingPaired, Field(discriminator="status")]


class ClaimRequest(WireModel):
    code: PairingCode
    # Optional: a re-paired device keeps its name unless one is given; a new device without
    # one takes the name it asked for, else its hardware id.
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class ClaimResponse(WireModel):
    device_id: Id
    re_paired: bool = Field(False, description="the hardware was known: same device record")
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class TokenRotated(WireModel):
    device_token: Token


# --- heartbeat -------------------------------------------------------------------------------


class CacheMetrics(WireModel):
    ready: int = Field(0, ge=0)
    total: int = Field(0, ge=0)
    bytes_used: int = Field(0, ge=0)
    errors: int = Field(0, ge=0)
    disk_full: bool = False


class TimeStatus(WireModel):
    """Which clock the device's group time comes from, and how well it knows it.

    ``source``: ``server`` (offset estimated from time exchanges with the server), ``system``
    (the NTP-synchronised system clock) or ``unsynced`` (neither yet: the device's own clock).
    ``offset_ms``: group time minus the device's system clock. ``error_ms``: the estimate's
    uncertainty. ``drift_ppm``: how fast the device's clock runs against group time.
    """

    source: Literal["server", "system", "unsynced"]
    offset_ms: float | None = Field(None, ge=-1e13, le=1e13)
    error_ms: float | None = Field(None, ge=0, le=1e13)
    drift_ppm: float | None = Field(None, ge=-1e6, le=1e6)
    samples: int = Field(0, ge=0)


class PowerMetrics(WireModel):
    """The screen's power: what the player wants and why, and what the screen says."""

    wanted: Literal["on", "off"]
    reason: Literal["schedule", "command", "interrupt"] = "schedule"
    backend: Literal["cec", "drm", "x11", "none"]
    display: Literal["on", "standby", "unknown"] = "unknown"
    error: Annotated[str, StringConstraints(max_length=500)] | None = None


class QuarantinedItem(WireModel):
    """An item the player skips: it was playing when the player died abnormally."""

    asset: Sha256
    zone: Id
    item: Id
    since: dt.datetime
    until: dt.datetime  # or until the item's asset changes
    reason: Annotated[str, StringConstraints(max_length=300)]


class Metrics(WireModel):
    cpu_percent: float = Field(ge=0, le=100 * 1024)
    memory_percent: float = Field(ge=0, le=100)
    memory_used_bytes: int = Field(ge=0)
    disk_free_bytes: int = Field(ge=0)
    disk_total_bytes: int = Field(ge=0)
    temperature_c: float | None = Field(None, ge=-100, le=200)
    uptime_s: float = Field(ge=0)
    player_version: Annotated[str, StringConstraints(max_length=32)]
    python_version: Annotated[str, StringConstraints(max_length=32)] | None = None
    state: Literal["stopping", "idle", "loading", "playing"]
    layout: Id | None = None
    items: dict[Id, Id] = Field(default_factory=dict, max_length=64)
    cache: CacheMetrics = CacheMetrics()
    dropped_frames: int = Field(0, ge=0)
    impressions_dropped: int = Field(0, ge=0)
    manifest_version: int | None = Field(None, ge=0)
    manifest_error: Annotated[str, StringConstraints(max_length=500)] | None = None
    quarantined: list[QuarantinedItem] = Field(default_factory=list, max_length=64)
    time: TimeStatus | None = Field(
        None, description="sent by devices of a sync group", exclude_if=unused
    )
    power: PowerMetrics | None = Field(None, exclude_if=unused)
    interrupt: Id | None = Field(None, exclude_if=unused)


class Heartbeat(WireModel):
    metrics: Metrics


class Command(WireModel):
    id: Id
    name: CommandName
    args: dict[Annotated[str, StringConstraints(max_length=64)], Scalar] = Field(
        default_factory=dict, max_length=32
    )
    expires_at: dt.datetime | None = None


class HeartbeatResponse(WireModel):
    server_time: dt.datetime
    manifest_etag: Annotated[str, StringConstraints(max_length=128)]
    heartbeat_interval_s: int = Field(ge=5, le=3_600)
    commands: list[Command] = Field(default_factory=list, max_length=100)
    # When the token used for this call stops working, and from when the device should rotate
    # it (compared with ``server_time``, not the device's clock).
    token_expires_at: dt.datetime | None = None
    token_refresh_at: dt.datetime | None = None


class CommandResult(WireModel):
    ok: bool
    message: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    data: dict[Annotated[str, StringConstraints(max_length=64)], Scalar] = Field(
        default_factory=dict, max_length=32
    )


# --- time -----------------------------------------------------------------------------------


class TimeResponse(WireModel):
    """One time exchange: the server's clock when the request arrived and when it answered.

    With the device's own instants of sending (t1) and receiving (t4), the offset is
    ``((received_at - t1) + (sent_at - t4)) / 2`` and the round trip
    ``(t4 - t1) - (sent_at - received_at)``, as in NTP.
    """

    received_at: dt.datetime
    sent_at: dt.datetime


# --- events ----------------------------------------------------------------------------------


class ManifestEvent(WireModel):
    etag: Annotated[str, StringConstraints(max_length=128)]


ConfigEvent = ManifestConfig
CommandEvent = Command
EventName = Literal["manifest", "command", "config"]


# --- proof of play ---------------------------------------------------------------------------


class Impression(WireModel):
    id: Uuid
    layout: Id
    zone: Id
    item: Id
    event: Literal["start", "end"]
    at: dt.datetime
    duration_ms: int | None = Field(None, ge=0)


class ImpressionBatch(WireModel):
    impressions: list[Impression] = Field(min_length=1, max_length=1_000)


class ImpressionAck(WireModel):
    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)


# --- errors ----------------------------------------------------------------------------------


class FieldProblem(WireModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class Problem(WireModel):
    """RFC 9457 problem details, with a stable machine-readable ``code``."""

    type: str = "about:blank"
    title: str
    status: int = Field(ge=400, le=599)
    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
