"""The crash guard: an item playing when the player died is skipped at the next start.

libmpv decodes video inside the player's process. A file that makes it abort (a failed
assertion, a segfault in a decoder) takes the player down, systemd restarts it, and without
this guard the restarted player would load the same file and die again, forever. So:

- Before a video item's file is first handed to libmpv, its zone, item and asset are written
  to ``inflight.json`` in the state directory (an atomic replace, before loading starts); they
  are removed when the item is released. A clean stop removes the file.
- At start, a leftover ``inflight.json`` means the previous run ended abnormally while those
  items were loaded: each is quarantined (``quarantine.json``), i.e. skipped with an ``error``
  event naming zone and item, and reported in the heartbeat. A quarantine ends after
  ``player.quarantine_s``, or at once for an item whose asset changes (it is keyed by the
  asset's sha256: a new file is a new chance).
- A leftover file from an earlier *boot* (the kernel's boot id differs) is a power cut or a
  reboot, not the item's fault: nothing is quarantined. The in-flight record therefore only
  has to survive the process, not the machine, and is written without fsync (a playlist of
  short clips rewrites it every few seconds; an SD card need not pay for that). The
  quarantine list itself is written durably.

Every item loaded when the process died is a suspect (two per zone during a gapless switch):
all are quarantined, since there is no telling which one it was.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from core import ZoneError, atomic_write
from protocol import Item, QuarantinedItem

log = logging.getLogger(__name__)

INFLIGHT = "inflight.json"
QUARANTINE = "quarantine.json"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_REASON = "the player stopped abnormally while it was playing"
_ENTRIES = TypeAdapter(list[QuarantinedItem])


def boot_id() -> str | None:
    """This boot's id (Linux); None where there is none."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return None


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ItemQuarantine:
    """A ``zones.CrashGuard`` on files in ``directory``; all methods on the event loop but
    ``recover``, which reads and writes files (run it in a thread)."""

    def __init__(
        self,
        directory: Path,
        *,
        hold_s: float,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.directory = directory
        self.hold = dt.timedelta(seconds=hold_s)
        self._now = now
        self._entries: dict[str, QuarantinedItem] = {}
        self._running: dict[int, dict[str, str]] = {}
        self._tokens = 0
        self._lock: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[None]] = set()

    # -- start ----------------------------------------------------------------------------------
    def recover(self) -> list[QuarantinedItem]:
        """Quarantine what the previous run left in flight (if it died); the new entries."""
        self._entries = {e.asset: e for e in self._read_quarantine()}
        left = self._read_json(self.directory / INFLIGHT)
        added: list[QuarantinedItem] = []
        items = left.get("items") if isinstance(left, dict) else None
        if isinstance(items, list) and items:
            if left.get("boot_id") != boot_id():
                log.info("the previous run ended with the machine (reboot or power cut)")
            else:
                added = self._quarantine(items, left.get("pid"))
        self._expire()
        self._write_quarantine(list(self._entries.values()))
        (self.directory / INFLIGHT).unlink(missing_ok=True)
        return added

    def _quarantine(self, items: list[Any], pid: object) -> list[QuarantinedItem]:
        since = self._now()
        added = []
        for record in items:
            try:
                entry = QuarantinedItem(
                    asset=record["asset"],
                    zone=record["zone"],
                    item=record["item"],
                    since=since,
                    until=since + self.hold,
                    reason=_REASON,
                )
            except (KeyError, TypeError, ValidationError):
                continue  # not ours, or damaged: nothing to act on
            self._entries[entry.asset] = entry
            added.append(entry)
            log.error(
                "item quarantined after an abnormal exit",
                extra={"fields": {"zone": entry.zone, "item": entry.item, "pid": pid}},
            )
        return added

    # -- the CrashGuard interface --------------------------------------------------------------
    async def enter(self, zone: str, item: Item) -> object:
        asset = getattr(item, "asset", "")
        entry = self._entries.get(asset)
        if entry is not None:
            if self._now() < entry.until:
                raise ZoneError(
                    f"quarantined until {entry.until:%Y-%m-%d %H:%M} UTC ({entry.reason}, "
                    f"{entry.since:%Y-%m-%d %H:%M} UTC); a new file for it plays at once",
                    zone=zone,
                    item=item.id,
                )
            self._expire()
            await asyncio.to_thread(self._write_quarantine, list(self._entries.values()))
        self._tokens += 1
        token = self._tokens
        self._running[token] = {"zone": zone, "item": item.id, "asset": asset}
        await self._save_running()  # on disk before the file reaches the decoder
        return token

    def leave(self, token: object) -> None:
        if not isinstance(token, int) or self._running.pop(token, None) is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (shutting down): write here
            self._write_running(self._record())
            return
        task = loop.create_task(self._save_running())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # -- reporting and stop --------------------------------------------------------------------
    @property
    def items(self) -> list[QuarantinedItem]:
        """What is quarantined now (for the heartbeat)."""
        now = self._now()
        return [e for e in self._entries.values() if now < e.until]

    async def close(self) -> None:
        """A clean stop: nothing is in flight any more."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        self._running.clear()
        await asyncio.to_thread((self.directory / INFLIGHT).unlink, missing_ok=True)

    # -- files ---------------------------------------------------------------------------------
    async def _save_running(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # writes in order; each one writes the state of its time
            await asyncio.to_thread(self._write_running, self._record())

    def _record(self) -> bytes:
        items = list(self._running.values())
        return json.dumps({"boot_id": boot_id(), "pid": os.getpid(), "items": items}).encode()

    def _write_running(self, record: bytes) -> None:
        atomic_write(self.directory / INFLIGHT, record, durable=False)

    def _expire(self) -> None:
        now = self._now()
        self._entries = {a: e for a, e in self._entries.items() if now < e.until}

    def _read_quarantine(self) -> list[QuarantinedItem]:
        data = self._read_json(self.directory / QUARANTINE)
        try:
            return _ENTRIES.validate_python(data) if data is not None else []
        except ValidationError:
            log.warning("ignoring a damaged quarantine list")
            return []

    def _write_quarantine(self, entries: list[QuarantinedItem]) -> None:
        path = self.directory / QUARANTINE
        if not entries and not path.exists():
            return
        atomic_write(path, _ENTRIES.dump_json(entries, indent=1))

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            log.warning("ignoring an unreadable %s", path.name)
            return None
