"""Turning what the zones did into timeline events, for every listener."""

from __future__ import annotations

import logging
from collections.abc import Callable

from player._clock import NS_PER_MS, NS_PER_S, Clock
from player._presentation import Switch
from player._timeline import TimelineEvent
from player._wall import WallClock

log = logging.getLogger(__name__)

Listener = Callable[[TimelineEvent], None]


class EventSink:
    """Stamps events with media seconds since start and wall time; fans them out."""

    def __init__(
        self, device: str, clock: Clock, wall: WallClock, *, measured: bool = True
    ) -> None:
        """``measured`` False (a virtual clock): ``late_ms`` and ``load_ms`` are null, since
        media time stood still while the work they would measure happened."""
        self.device = device
        self.measured = measured
        self._clock = clock
        self._wall = wall
        self._listeners: list[Listener] = []
        self._t0 = clock.now_ns()

    def add(self, callback: Listener) -> None:
        self._listeners.append(callback)

    def restart(self) -> None:
        """``t`` counts from now (the player started)."""
        self._t0 = self._clock.now_ns()

    @property
    def t0_ns(self) -> int:
        """The media instant ``t`` counts from."""
        return self._t0

    def seconds(self, media_ns: int) -> float:
        return (media_ns - self._t0) / NS_PER_S

    def switches(self, switches: list[Switch], presented_ns: int, layout: str | None) -> None:
        """Report zone switches as presented at ``presented_ns`` (late_ms is measured from it)."""
        for switch in switches:
            if switch.kind == "interrupt":
                self._interrupt(switch, presented_ns, layout)
                continue
            late = load = None
            if self.measured and switch.due_ns is not None and switch.kind != "error":
                late = (presented_ns - switch.due_ns) / NS_PER_MS
            if self.measured and switch.load_ns is not None:
                load = switch.load_ns / NS_PER_MS
            self.emit(
                TimelineEvent(
                    t=self.seconds(presented_ns),
                    wall=self._wall.at(presented_ns),
                    device=self.device,
                    layout=switch.layout or layout,
                    zone=switch.zone,
                    item=switch.item,
                    event=switch.kind,  # type: ignore[arg-type]
                    due=None if switch.due_ns is None else self.seconds(switch.due_ns),
                    late_ms=late,
                    load_ms=load,
                    error=switch.error,
                    group_due=None
                    if switch.group_due_ns is None or switch.kind == "error"
                    else switch.group_due_ns / NS_PER_S,
                )
            )

    def _late_ms(self, due_ns: int | None, at_ns: int) -> float | None:
        return None if not self.measured or due_ns is None else (at_ns - due_ns) / NS_PER_MS

    def _interrupt(self, switch: Switch, presented_ns: int, layout: str | None) -> None:
        self.emit(
            TimelineEvent(
                t=self.seconds(presented_ns),
                wall=self._wall.at(presented_ns),
                device=self.device,
                layout=switch.layout or layout,
                zone=None,
                item=None,
                event="interrupt",
                due=None if switch.due_ns is None else self.seconds(switch.due_ns),
                late_ms=self._late_ms(switch.due_ns, presented_ns),
                state=switch.state,
                interrupt=switch.item,
            )
        )

    def power(self, state: str, reason: str, due_ns: int | None, at_ns: int) -> None:
        """The screen went ``state`` ("on" | "off") at ``at_ns`` (its frame, or the standby
        command), for ``reason`` ("schedule" | "command"), due at ``due_ns``."""
        self.emit(
            TimelineEvent(
                t=self.seconds(at_ns),
                wall=self._wall.at(at_ns),
                device=self.device,
                layout=None,
                zone=None,
                item=None,
                event="power",
                due=None if due_ns is None else self.seconds(due_ns),
                late_ms=self._late_ms(due_ns, at_ns),
                state=state,
                reason=reason,
            )
        )

    def state(self, state: str, layout: str | None, now_ns: int) -> None:
        self.emit(
            TimelineEvent(
                t=self.seconds(now_ns),
                wall=self._wall.at(now_ns),
                device=self.device,
                layout=layout,
                zone=None,
                item=None,
                event="state",
                state=state,
            )
        )

    def emit(self, event: TimelineEvent) -> None:
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                # Events flow upward fire-and-forget: a listener's bug must not stop playback.
                log.exception("timeline listener failed")
