"""Scenario files: what happens during a simulation, when, and what must hold afterwards.

A scenario is TOML (docs/simulator.md has the reference)::

    description = "The server goes away for a minute; the screen keeps playing from cache."

    [run]                      # defaults for the run; command-line options win
    duration = 180             # seconds of media time
    speed = "max"              # 1 (real time), any factor, or "max"
    start = 2026-11-23T09:00:00+01:00

    [[events]]
    at = 30                    # seconds of media time since the start
    action = "stop_server"
    seconds = 60

    [expect]
    max_errors = 0
    items_played = ["welcome", "offline"]

Actions: ``publish`` (playlists/layouts/schedule replacing those with the same id, or a whole
``content`` folder), ``stop_server`` (for ``seconds``), ``break_sse`` (only the server's event
streams fail, for ``seconds``), ``corrupt_asset`` (flip bytes of an
item's cached file on a device's disk), ``revoke`` (the device goes back to pairing; with
``repair`` the simulator claims its new code), ``step_clock`` (the device's wall clock jumps by
``seconds``, which may be negative), ``restart_device`` (a power cut, ``off_seconds`` long),
``interrupt`` (an admin interrupt: ``layout`` over everything, for ``seconds`` or until
cleared), ``clear_interrupts``, ``display_off``/``display_on`` (the commands, for ``seconds``
or until the power schedule next changes) and ``power`` (the devices' power schedule: ``on``
windows; none: always on).
A ``[settings]`` table configures the simulated devices like their TOML file would, and a
``[server]`` table the in-process server's ``[server]`` section. ``[sync]`` makes the simulated
group play in step (its epoch, and the network its time exchanges cross); ``[[devices]]`` gives
each device, in order, its own hardware: a system clock ``clock_offset_s`` off, an oscillator
``drift_ppm`` fast or slow, and when it is first powered on (``join_at``). Bad files fail with
every problem listed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import ConfigError, load_settings

Seconds = Annotated[float, Field(ge=0, le=31 * 86_400)]
DeviceSelector = Annotated[str, Field(min_length=1, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunDefaults(_Strict):
    duration: Annotated[float, Field(gt=0, le=31 * 86_400)] | None = None
    speed: float | Literal["max"] | None = None
    devices: Annotated[int, Field(ge=1, le=64)] | None = None
    content: str | None = None
    start: dt.datetime | None = None
    frames: str | None = None

    @model_validator(mode="after")
    def _checks(self) -> RunDefaults:
        if isinstance(self.speed, float | int) and self.speed <= 0:
            raise ValueError('speed must be positive, or "max"')
        if self.start is not None and self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset, e.g. 2026-11-23T09:00:00+01:00")
        return self


class Publish(_Strict):
    """Publish content changes; ``expect_items`` name the items that prove the update arrived."""

    at: Seconds
    action: Literal["publish"]
    content: str | None = None
    playlists: list[dict[str, Any]] = Field(default_factory=list)
    layouts: list[dict[str, Any]] = Field(default_factory=list)
    schedule: list[dict[str, Any]] = Field(default_factory=list)
    default_layout: str | None = None
    expect_items: list[str] | None = None

    @model_validator(mode="after")
    def _something(self) -> Publish:
        parts = (self.playlists, self.layouts, self.schedule, self.default_layout)
        if self.content is None and not any(parts):
            raise ValueError("publish needs 'content' or playlists/layouts/schedule/default_layout")
        if self.content is not None and any(parts):
            raise ValueError("publish takes either 'content' or individual changes, not both")
        return self


class StopServer(_Strict):
    at: Seconds
    action: Literal["stop_server"]
    seconds: Annotated[float, Field(gt=0, le=86_400)]


class BreakSse(_Strict):
    """The server's event streams fail for ``seconds`` (the rest of its API keeps working)."""

    at: Seconds
    action: Literal["break_sse"]
    seconds: Annotated[float, Field(gt=0, le=86_400)]


class CorruptAsset(_Strict):
    at: Seconds
    action: Literal["corrupt_asset"]
    item: str
    device: DeviceSelector = "*"


class Revoke(_Strict):
    at: Seconds
    action: Literal["revoke"]
    device: DeviceSelector = "*"
    repair: bool = True


class StepClock(_Strict):
    at: Seconds
    action: Literal["step_clock"]
    seconds: Annotated[float, Field(ge=-366 * 86_400, le=366 * 86_400)]
    device: DeviceSelector = "*"

    @model_validator(mode="after")
    def _moves(self) -> StepClock:
        if self.seconds == 0:
            raise ValueError("step_clock needs a non-zero 'seconds'")
        return self


class RestartDevice(_Strict):
    """A power cut: the device stops (nothing is flushed specially) and boots again."""

    at: Seconds
    action: Literal["restart_device"]
    device: DeviceSelector = "*"
    off_seconds: Annotated[float, Field(ge=0, le=86_400)] = 0.0


class SendInterrupt(_Strict):
    """The admin puts ``layout`` over everything on the devices (``device``: one of them; by
    default all, through their group) for ``seconds``, or until cleared."""

    at: Seconds
    action: Literal["interrupt"]
    layout: str
    seconds: Annotated[int, Field(ge=1, le=31 * 86_400)] | None = None
    priority: Annotated[int, Field(ge=0, le=1_000)] = 0
    device: DeviceSelector = "*"


class ClearInterrupts(_Strict):
    """The admin clears every interrupt still in force."""

    at: Seconds
    action: Literal["clear_interrupts"]


class DisplayPower(_Strict):
    """The ``display_off``/``display_on`` command, for ``seconds`` or until the power schedule
    next changes."""

    at: Seconds
    action: Literal["display_off", "display_on"]
    device: DeviceSelector = "*"
    seconds: Annotated[int, Field(ge=1, le=31 * 86_400)] | None = None


class SetPower(_Strict):
    """The devices' power schedule: the screen is on inside the ``on`` windows (manifest
    ``Window`` tables); an empty list removes it (always on)."""

    at: Seconds
    action: Literal["power"]
    on: list[dict[str, Any]] = Field(default_factory=list)


Event = Annotated[
    Publish
    | StopServer
    | BreakSse
    | CorruptAsset
    | Revoke
    | StepClock
    | RestartDevice
    | SendInterrupt
    | ClearInterrupts
    | DisplayPower
    | SetPower,
    Field(discriminator="action"),
]
EVENT_MODELS: dict[str, type[BaseModel]] = {
    "publish": Publish,
    "stop_server": StopServer,
    "break_sse": BreakSse,
    "corrupt_asset": CorruptAsset,
    "revoke": Revoke,
    "step_clock": StepClock,
    "restart_device": RestartDevice,
    "interrupt": SendInterrupt,
    "clear_interrupts": ClearInterrupts,
    "display_off": DisplayPower,
    "display_on": DisplayPower,
    "power": SetPower,
}
ACTIONS = tuple(EVENT_MODELS)


class SyncRun(_Strict):
    """The simulated group plays in step; its devices' time exchanges cross this network."""

    epoch: dt.datetime | None = None  # default: the run's start, to the second
    latency_ms: Annotated[float, Field(ge=0, le=10_000)] = 1.0
    jitter_ms: Annotated[float, Field(ge=0, le=10_000)] = 2.0
    seed: int = 1

    @model_validator(mode="after")
    def _aware(self) -> SyncRun:
        if self.epoch is not None and self.epoch.tzinfo is None:
            raise ValueError("epoch needs a UTC offset, e.g. 2026-11-23T00:00:00+01:00")
        return self


class DeviceHardware(_Strict):
    """One simulated device's own clock, and when it is first powered on."""

    clock_offset_s: Annotated[float, Field(ge=-366 * 86_400, le=366 * 86_400)] = 0.0
    drift_ppm: Annotated[float, Field(ge=-500, le=500)] = 0.0
    join_at: Seconds = 0.0


class PlayedAfter(_Strict):
    """Each of ``items`` started (on every device) at or after ``at`` seconds."""

    at: Seconds
    items: list[str] = Field(min_length=1)


class Expect(_Strict):
    """Checks made on the finished run; each one that fails is reported by name."""

    max_errors: Annotated[int, Field(ge=0)] | None = None
    max_black_frames: Annotated[int, Field(ge=0)] | None = None
    max_late_ms_p99: Annotated[float, Field(ge=0)] | None = None
    max_missed_deadlines: Annotated[int, Field(ge=0)] | None = None
    max_update_latency_s: Annotated[float, Field(gt=0)] | None = None
    min_switches: Annotated[int, Field(ge=0)] | None = None
    items_played: list[str] = Field(default_factory=list)
    items_not_played: list[str] = Field(default_factory=list)
    layouts_played: list[str] = Field(default_factory=list)
    states_seen: list[str] = Field(default_factory=list)
    min_repairs: Annotated[int, Field(ge=0)] | None = None
    min_manifest_polls: Annotated[int, Field(ge=0)] | None = None
    min_sse_connects: Annotated[int, Field(ge=0)] | None = None
    played_after: list[PlayedAfter] = Field(default_factory=list)
    # A sync group: the spread of each boundary's presentation across the screens, in ms.
    max_sync_spread_ms_p99: Annotated[float, Field(ge=0)] | None = None
    max_sync_spread_ms: Annotated[float, Field(ge=0)] | None = None
    min_sync_boundaries: Annotated[int, Field(ge=0)] | None = None
    min_standby_s: Annotated[float, Field(ge=0)] | None = None
    max_frames_in_standby: Annotated[int, Field(ge=0)] | None = None
    min_interrupts: Annotated[int, Field(ge=0)] | None = None
    max_interrupt_latency_s: Annotated[float, Field(gt=0)] | None = None
    shares_within_one_item: bool = False


class Scenario(_Strict):
    description: str = ""
    run: RunDefaults = RunDefaults()
    events: list[Event] = Field(default_factory=list)
    expect: Expect = Expect()
    # Device configuration for this scenario (the player's TOML sections), e.g. shorter backoff.
    settings: dict[str, Any] = Field(default_factory=dict)
    # The in-process server's [server] section (docs/configuration.md), e.g. its heartbeat.
    server: dict[str, Any] = Field(default_factory=dict)
    sync: SyncRun | None = None
    devices: list[DeviceHardware] = Field(default_factory=list, max_length=64)
    # Where relative paths in the file (content folders, media files) are resolved from.
    base: Path = Path()

    def sorted_events(self) -> list[Event]:
        return sorted(self.events, key=lambda e: e.at)


_KNOWN = {
    "": set(Scenario.model_fields) - {"base"},
    "run": set(RunDefaults.model_fields),
    "expect": set(Expect.model_fields),
    "sync": set(SyncRun.model_fields),
    "devices": set(DeviceHardware.model_fields),
}


def _hint(loc: tuple[str | int, ...]) -> str:
    if loc and loc[0] == "events":
        if len(loc) > 2 and loc[2] in ACTIONS:
            known = set(EVENT_MODELS[str(loc[2])].model_fields)
        else:
            return ""
    else:
        known = _KNOWN.get(str(loc[0]) if len(loc) > 1 else "", set())
    match = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else f"; known keys: {', '.join(sorted(known))}"


def _path(loc: tuple[str | int, ...]) -> str:
    """``events[2].seconds (stop_server)``, not pydantic's ``events.2.stop_server.seconds``."""
    if len(loc) >= 2 and loc[0] == "events":
        rest = loc[3:] if len(loc) > 2 and loc[2] in ACTIONS else loc[2:]
        action = f" ({loc[2]})" if len(loc) > 2 and loc[2] in ACTIONS else ""
        return "".join([f"events[{loc[1]}]", *(f".{p}" for p in rest), action])
    return ".".join(str(p) for p in loc)


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _path(loc)
        if error["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown key{_hint(loc)}")
        elif error["type"] == "union_tag_invalid":
            problems.append(f"{path}: unknown action; use one of {', '.join(ACTIONS)}")
        elif error["type"] == "union_tag_not_found":
            problems.append(f"{path}: every event needs an 'action' ({', '.join(ACTIONS)})")
        else:
            problems.append(f"{path}: {error['msg']}")
    return problems


def parse_scenario(text: str, *, base: Path = Path(), source: str | None = None) -> Scenario:
    """Validate scenario TOML; ConfigError lists every problem with its path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=source) from exc
    if "base" in data:
        raise ConfigError(["base: unknown key"], source=source)
    try:
        scenario = Scenario.model_validate(data | {"base": base})
    except ValidationError as exc:
        raise ConfigError(_problems(exc), source=source) from exc
    if scenario.run.devices is not None and len(scenario.devices) > scenario.run.devices:
        raise ConfigError(
            [f"devices: {len(scenario.devices)} entries for {scenario.run.devices} device(s)"],
            source=source,
        )
    if scenario.run.duration is not None:
        check_events_fit(scenario, scenario.run.duration, source=source)
    if scenario.settings:
        try:
            load_settings(None, env={}, overrides=scenario.settings)
        except ConfigError as exc:
            raise ConfigError([f"settings.{p}" for p in exc.problems], source=source) from exc
    if scenario.server:
        try:
            load_settings(None, env={}, overrides={"server": scenario.server})
        except ConfigError as exc:
            raise ConfigError([str(p) for p in exc.problems], source=source) from exc
    return scenario


def load_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"file not found: {path}"], source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc}"], source=str(path)) from exc
    return parse_scenario(text, base=path.resolve().parent, source=str(path))


def check_events_fit(scenario: Scenario, duration_s: float, *, source: str | None = None) -> None:
    """Events must happen before the run ends (the duration may come from the command line)."""
    late = [
        f"event at {e.at:g} s ({e.action}) falls after the run's {duration_s:g} s"
        for e in scenario.events
        if e.at >= duration_s
    ]
    late += [
        f"devices[{i}].join_at {d.join_at:g} s falls after the run's {duration_s:g} s"
        for i, d in enumerate(scenario.devices)
        if d.join_at >= duration_s
    ]
    if late:
        raise ConfigError(late, source=source)
