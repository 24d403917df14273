"""When the screen is on: the manifest's power schedule, interrupts and ``display_on``/``off``.

``decide`` is a pure function of the manifest, the standing command and the instant:

1. a ``display_on``/``display_off`` command holds until its ``seconds`` run out, or else until
   the power schedule next changes (an operator who switches a screen off at night does not
   keep it off the next morning); a command that agrees with the schedule only ends any other;
2. an active interrupt keeps the screen on (an emergency must reach a screen in standby);
3. the manifest's ``power`` schedule: on inside its ``on`` windows, off outside;
4. no schedule: always on.

The standing command is kept in the state directory (``power.json``, written atomically), so a
restart during a night switched off by hand stays off; it ends on time offline like the rest.

``PowerController`` applies the decisions through a ``zones.ScreenPower`` backend in a worker
thread and reads the screen's state back: a TV that ignores the command is reported as such
(``display`` is what the screen said, ``error`` why it did not confirm), never assumed off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from core import SignageError, atomic_write_text
from player._windows import Windows
from protocol import Manifest
from zones import BackendName, NoPower, ScreenPower, ScreenState

log = logging.getLogger(__name__)

POWER_FILE = "power.json"
Reason = Literal["schedule", "command", "interrupt"]


@dataclass(frozen=True)
class Command:
    """A standing ``display_on``/``display_off``: ``on`` until ``until`` (None: until the
    opposite command)."""

    on: bool
    until: dt.datetime | None


@dataclass(frozen=True)
class Decision:
    on: bool
    reason: Reason
    next_change: dt.datetime | None  # the next instant the answer may change


@dataclass(frozen=True)
class PowerStatus:
    """What the heartbeat reports (``protocol.PowerMetrics``)."""

    wanted: Literal["on", "off"]
    reason: Reason
    backend: BackendName
    display: ScreenState
    error: str | None = None


def scheduled(manifest: Manifest | None, when: dt.datetime) -> Decision:
    """The power schedule alone at ``when``."""
    if manifest is None or manifest.power is None:
        return Decision(True, "schedule", None)
    windows = Windows(ZoneInfo(manifest.timezone))
    on = windows.any_active(manifest.power.on, when)
    return Decision(on, "schedule", windows.next_change(manifest.power.on, when))


def decide(
    manifest: Manifest | None,
    command: Command | None,
    when: dt.datetime,
    *,
    interrupted: bool = False,
) -> Decision:
    """Whether the screen is on at ``when`` (see the module docstring)."""
    base = scheduled(manifest, when)
    if command is not None and (command.until is None or when < command.until):
        return Decision(command.on, "command", command.until)
    if interrupted and not base.on:
        return Decision(True, "interrupt", base.next_change)
    return base


def command_for(
    manifest: Manifest | None, on: bool, when: dt.datetime, seconds: float | None
) -> Command | None:
    """The standing command ``display_on`` (``on``) or ``display_off`` makes at ``when``."""
    if seconds is not None:
        return Command(on, when + dt.timedelta(seconds=seconds))
    base = scheduled(manifest, when)
    if base.on == on:
        return None  # what the schedule says anyway: only ends an earlier command
    return Command(on, base.next_change)


class PowerController:
    """The standing command (persisted), the backend and what the screen last said."""

    def __init__(self, backend: ScreenPower | None, state_dir: Path | None = None) -> None:
        """``backend`` None: the player picks one (``zones.choose_power``) once it has opened
        its screen, and nothing is switched until then."""
        self.backend: ScreenPower = backend or NoPower()
        self.choose = backend is None
        self._path = None if state_dir is None else Path(state_dir) / POWER_FILE
        self.command = self._load()
        self.applied: bool | None = None  # what the backend was last told (None: nothing yet)
        self.display: ScreenState = "unknown"
        self.error: str | None = None
        self.reason: Reason = "schedule"

    def _load(self) -> Command | None:
        if self._path is None:
            return None
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            until = data["until"]
            return Command(
                bool(data["on"]), None if until is None else dt.datetime.fromisoformat(until)
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            log.error(
                "power state file is unreadable; ignoring it", extra={"fields": {"error": str(exc)}}
            )
            return None

    def _save(self) -> None:
        if self._path is None:
            return
        if self.command is None:
            self._path.unlink(missing_ok=True)
            return
        until = self.command.until
        body = {"on": self.command.on, "until": None if until is None else until.isoformat()}
        atomic_write_text(self._path, json.dumps(body))

    def decide(
        self, manifest: Manifest | None, when: dt.datetime, *, interrupted: bool
    ) -> Decision:
        command = self.command
        if command is not None and command.until is not None and when >= command.until:
            self.command = command = None  # ran out: the schedule rules again
            self._save()
        decision = decide(manifest, command, when, interrupted=interrupted)
        self.reason = decision.reason
        return decision

    def on_at(self, manifest: Manifest | None, when: dt.datetime, *, interrupted: bool) -> bool:
        """Whether the screen will be on at ``when`` (nothing changes meanwhile)."""
        return decide(manifest, self.command, when, interrupted=interrupted).on

    def set_command(
        self, manifest: Manifest | None, on: bool, when: dt.datetime, seconds: float | None
    ) -> None:
        self.command = command_for(manifest, on, when, seconds)
        self._save()

    async def apply(self, on: bool) -> None:
        """Tell the backend (in a worker thread) and read the screen's state back."""
        if self.applied is on:
            return
        self.applied = on
        if self.backend.name == "none":
            return  # nothing to switch, nothing to read back
        try:
            await asyncio.to_thread(self.backend.set, on)
            self.error = None
        except SignageError as exc:
            self.error = str(exc)[:500]
            log.error("screen power failed", extra={"fields": {"on": on, "error": self.error}})
        self.display = await asyncio.to_thread(self.backend.read)
        wanted: ScreenState = "on" if on else "standby"
        if self.error is None and self.display != wanted:
            said = "does not answer" if self.display == "unknown" else f"reports {self.display}"
            self.error = f"the screen did not confirm {'on' if on else 'standby'}: it {said}"
            log.warning("screen power not confirmed", extra={"fields": {"error": self.error}})

    def status(self) -> PowerStatus:
        wanted: Literal["on", "off"] = "off" if self.applied is False else "on"
        return PowerStatus(wanted, self.reason, self.backend.name, self.display, self.error)
