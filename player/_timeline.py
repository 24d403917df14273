"""Timeline events: what the player presented, when, and how late (DESIGN section 12).

One JSON object per line, a contract other tools read::

    {"t": 12.5, "wall": "2026-11-21T10:00:12.500000+00:00", "device": "lobby",
     "layout": "l1", "zone": "main", "item": "i2", "event": "start", "due": 12.5, "late_ms": 0.8}

``t`` and ``due`` are seconds on the media clock since the player started; ``late_ms`` is the
instant the frame was handed to the display (its present call returned) minus ``due``.
``start`` events also carry ``"load_ms"``, how long preparing the item took. On a virtual
clock both are null: media time stands still while that work happens. ``state`` events carry
``"state"``; ``error`` events carry ``"error"`` (the reason). ``interrupt`` events carry
``"interrupt"`` (its id) and ``"state"`` (``start``: its first frame; ``end``: the first frame
after it); ``due`` is when it was to take over (its start, or when the player learned of it)
or to end. ``power`` events carry ``"state"`` (``on``, ``off``) and ``"reason"``
(``schedule``, ``command``); ``due`` is the scheduled instant. On a device of a sync group,
``start`` and ``end`` events with a deadline also carry ``"group_due"``: that deadline in group
time (seconds since the Unix epoch), the same on every screen of the group for the same switch.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

EventKind = Literal["start", "end", "error", "state", "interrupt", "power"]


@dataclass(frozen=True)
class TimelineEvent:
    t: float
    wall: dt.datetime
    device: str
    layout: str | None
    zone: str | None
    item: str | None
    event: EventKind
    due: float | None = None
    late_ms: float | None = None
    load_ms: float | None = None
    state: str | None = None
    error: str | None = None
    group_due: float | None = None  # a sync group's deadline, in s since the Unix epoch
    interrupt: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "t": round(self.t, 6),
            "wall": self.wall.isoformat(),
            "device": self.device,
            "layout": self.layout,
            "zone": self.zone,
            "item": self.item,
            "event": self.event,
            "due": None if self.due is None else round(self.due, 6),
            "late_ms": None if self.late_ms is None else round(self.late_ms, 3),
        }
        if self.event == "start":
            record["load_ms"] = None if self.load_ms is None else round(self.load_ms, 3)
        if self.group_due is not None:
            record["group_due"] = round(self.group_due, 6)
        if self.event in ("state", "interrupt", "power"):
            record["state"] = self.state
        if self.event == "interrupt":
            record["interrupt"] = self.interrupt
        if self.event == "power":
            record["reason"] = self.reason
        if self.event == "error":
            record["error"] = self.error
        return record

    def to_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)


class TimelineWriter:
    """Appends events as JSON lines; usable directly as a player listener.

    Each line is flushed as it is written, so a reader tailing the file (or a power cut) sees
    whole lines only.
    """

    def __init__(self, target: Path | str | TextIO) -> None:
        self._lock = threading.Lock()
        if isinstance(target, str | Path):
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file: TextIO = path.open("a", encoding="utf-8")
            self._owned = True
        else:
            self._file = target
            self._owned = False
        self.count = 0

    def write(self, event: TimelineEvent) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.write(event.to_line() + "\n")
            self._file.flush()
            self.count += 1

    __call__ = write

    def close(self) -> None:
        with self._lock:
            if self._owned and not self._file.closed:
                self._file.close()


def read_timeline(path: Path | str) -> list[dict[str, Any]]:
    """The events of a timeline file, in order (for tools and tests)."""
    with Path(path).open(encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
