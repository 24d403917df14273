"""The project's exceptions, one base and one branch per layer.

    SignageError
    ├── ConfigError            invalid configuration; carries every problem found
    ├── CacheError
    │   ├── HashMismatch       downloaded or stored bytes do not hash to the expected sha256
    │   └── DiskFull           the state directory ran out of space
    ├── SyncError
    │   ├── ProtocolError      a peer sent something the wire contract does not allow
    │   ├── PairingExpired     the pairing code lapsed before it was claimed
    │   └── DeviceRevoked      the server answered 401 to a device call
    ├── ZoneError              a zone renderer could not prepare or play an item
    ├── PlayerError            the daemon could not start or run
    └── ServerError            the reference server could not start or run

Lower-level errors are translated at the layer's boundary and raised ``from`` the original.
"""

from __future__ import annotations

from collections.abc import Sequence


class SignageError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(SignageError):
    """Configuration that does not validate. ``problems`` lists every one, in order."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} configuration problem(s){where}:\n{listing}")


class CacheError(SignageError):
    """The asset cache failed."""


class HashMismatch(CacheError):
    def __init__(self, expected: str, actual: str, *, source: str | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.source = source
        where = f" from {source}" if source else ""
        super().__init__(f"sha256 mismatch{where}: expected {expected}, got {actual}")


class DiskFull(CacheError):
    def __init__(self, path: str, *, needed: int | None = None) -> None:
        self.path = path
        self.needed = needed
        more = f" ({needed} bytes needed)" if needed is not None else ""
        super().__init__(f"no space left on the device holding {path}{more}")


class SyncError(SignageError):
    """Talking to the server failed."""


class ProtocolError(SyncError):
    """A body or event that the wire contract does not allow."""


class PairingExpired(SyncError):
    """The pairing code expired before anyone claimed it."""


class DeviceRevoked(SyncError):
    """The server no longer accepts this device's token."""


class ZoneError(SignageError):
    """A zone renderer could not prepare or play an item."""

    def __init__(self, message: str, *, zone: str | None = None, item: str | None = None) -> None:
        self.zone = zone
        self.item = item
        context = ", ".join(f"{k}={v}" for k, v in (("zone", zone), ("item", item)) if v)
        super().__init__(f"{message} ({context})" if context else message)


class PlayerError(SignageError):
    """The player daemon could not start or keep running."""


class ServerError(SignageError):
    """The reference server could not start or keep running."""
