"""sd_notify without libsystemd: readiness, status, watchdog and stopping, as datagrams.

systemd passes ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket) to a
``Type=notify`` service (the player, the server); each message is one datagram of
``KEY=value`` lines. Outside systemd the variable is unset and every call is a cheap no-op
returning False, so a service runs the same from a terminal.

The player's watchdog is pinged from the frame loop, never from a timer thread: a thread would keep
pinging while the renderer is frozen, which is exactly the failure ``WatchdogSec=`` is there to
catch. ``Watchdog.feed(now)`` is called once per loop iteration with ``time.monotonic()`` and
sends ``WATCHDOG=1`` at most every half ``WATCHDOG_USEC`` (sd_watchdog_enabled(3)'s advice), and
only while ``now`` moves forward. The loop must therefore wake at least that often, even when
nothing is redrawn: ``seconds_until_due(now)`` bounds its sleep.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


def notify_address(value: str) -> str:
    """The socket address of a ``$NOTIFY_SOCKET`` value; ``@name`` is the abstract ``\\0name``."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    raise ValueError(f"unsupported NOTIFY_SOCKET {value!r}: expected an absolute path or @name")


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None when the watchdog is off.

    ``$WATCHDOG_PID`` names the process systemd watches; in any other process (a child that
    inherited the environment) the watchdog is off, as in sd_watchdog_enabled(3).
    """
    raw_usec = env.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID", "").strip()
    try:
        usec = int(raw_usec)
        watched_pid = int(raw_pid) if raw_pid else pid
    except ValueError:
        log.warning(
            "ignoring a malformed watchdog setting",
            extra={"fields": {"WATCHDOG_USEC": raw_usec, "WATCHDOG_PID": raw_pid}},
        )
        return None
    if usec <= 0 or watched_pid != pid:
        return None
    return usec / 2_000_000


class Watchdog:
    """Sends ``WATCHDOG=1`` from the frame loop, at most every ``interval_s`` seconds."""

    def __init__(self, ping: Callable[[], bool], interval_s: float | None) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval_s!r}")
        self._ping = ping
        self.interval_s = interval_s
        self._last_feed: float | None = None
        self._last_ping: float | None = None
        self.pings = 0

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None

    def due(self, now: float) -> bool:
        """Whether a ``feed(now)`` would ping (ignoring whether ``now`` moved forward)."""
        if self.interval_s is None:
            return False
        return self._last_ping is None or now - self._last_ping >= self.interval_s

    def seconds_until_due(self, now: float) -> float | None:
        """How long the loop may sleep before it must feed again; None when disabled."""
        if self.interval_s is None:
            return None
        if self._last_ping is None:
            return 0.0
        return max(0.0, self._last_ping + self.interval_s - now)

    def feed(self, now: float) -> bool:
        """Record one loop iteration at monotonic time ``now``; True when a ping was sent.

        A ``now`` that does not move past the previous feed is not progress and never pings.
        """
        if self.interval_s is None:
            return False
        advanced = self._last_feed is None or now > self._last_feed
        self._last_feed = now if advanced else self._last_feed
        if not advanced or not self.due(now):
            return False
        # Counted as pinged even when the send fails: retrying every frame would flood the log.
        self._last_ping = now
        sent = self._ping()
        self.pings += int(sent)
        return sent


class SdNotifier:
    """One process's channel to systemd; inert (every call returns False) without a socket."""

    def __init__(self, address: str | None, *, watchdog_interval_s: float | None = None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        self._ready_sent = False
        self._last_status: str | None = None
        self._failures_logged: set[int | None] = set()
        interval = watchdog_interval_s if address is not None else None
        self.watchdog = Watchdog(self.watchdog_ping, interval)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, pid: int | None = None
    ) -> SdNotifier:
        """The notifier systemd asked for through ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC``."""
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        if not raw:
            return cls(None)
        try:
            address = notify_address(raw)
        except ValueError as exc:
            log.warning("not notifying systemd", extra={"fields": {"reason": str(exc)}})
            return cls(None)
        interval = watchdog_interval(env, os.getpid() if pid is None else pid)
        return cls(address, watchdog_interval_s=interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments in one datagram; True when systemd got it."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8")
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message, _SEND_FLAGS, self.address)
        except OSError as exc:
            # Logged once per kind of failure: the watchdog retries every few seconds.
            if exc.errno not in self._failures_logged:
                self._failures_logged.add(exc.errno)
                log.warning(
                    "could not notify systemd",
                    extra={"fields": {"socket": self.address, "error": str(exc)}},
                )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``, sent once (the first presented frame); later calls only update status."""
        if self._ready_sent:
            return self.status(status) if status is not None else False
        assignments = ["READY=1"]
        if status is not None:
            assignments.append(_status_assignment(status))
        sent = self.notify(*assignments)
        if sent:
            self._ready_sent = True
            self._last_status = status if status is not None else self._last_status
        return sent

    def status(self, text: str) -> bool:
        """``STATUS=text`` (one line, shown by ``systemctl status``); repeats are not resent."""
        if text == self._last_status:
            return False
        sent = self.notify(_status_assignment(text))
        if sent:
            self._last_status = text
        return sent

    def stopping(self, status: str | None = None) -> bool:
        assignments = ["STOPPING=1"]
        if status is not None:
            assignments.append(_status_assignment(status))
        return self.notify(*assignments)

    def watchdog_ping(self) -> bool:
        return self.notify("WATCHDOG=1")

    def watchdog_due(self, now: float) -> bool:
        return self.watchdog.due(now)

    def feed(self, now: float) -> bool:
        """The frame loop's per-iteration call; see ``Watchdog.feed``."""
        return self.watchdog.feed(now)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SdNotifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _status_assignment(text: str) -> str:
    # A newline would start another assignment (text could forge READY=1 or WATCHDOG=1).
    return "STATUS=" + " ".join(text.split())
