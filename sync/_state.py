"""What the device remembers across restarts: its credentials and the last good manifest.

Both are written atomically (temp file, fsync, rename, fsync of the directory), so a power cut
leaves the old file or the new one, never a torn one. Credentials are mode 0600 and their token
is registered as a secret so it never reaches a log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from core import atomic_write_text, forget_secret, register_secret
from protocol import Id, Manifest, Token

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
MANIFEST_FILE = "manifest.json"


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str
    device_id: Id
    device_token: Token

    def __repr__(self) -> str:
        return f"Credentials(server_url={self.server_url!r}, device_id={self.device_id!r})"

    __str__ = __repr__


class CredentialStore:
    """``<state dir>/credentials.json``, mode 0600."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / CREDENTIALS_FILE

    def load(self) -> Credentials | None:
        """The stored credentials, or None when absent or unreadable (then the device pairs)."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            credentials = Credentials.model_validate_json(raw)
        except ValidationError as exc:
            log.error(
                "credentials file is unreadable; pairing again",
                extra={"fields": {"path": str(self.path), "problems": exc.error_count()}},
            )
            return None
        register_secret(credentials.device_token)
        return credentials

    def save(self, credentials: Credentials) -> None:
        register_secret(credentials.device_token)
        atomic_write_text(self.path, credentials.model_dump_json(), mode=0o600)

    def wipe(self) -> None:
        current = self.load()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if current is not None:
            forget_secret(current.device_token)


@dataclass(frozen=True)
class StoredManifest:
    manifest: Manifest
    etag: str | None


class ManifestStore:
    """The last manifest that validated, with its ETag: what the device plays when offline."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / MANIFEST_FILE

    def load(self) -> StoredManifest | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return StoredManifest(Manifest.model_validate(data["manifest"]), data.get("etag"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            # ValidationError is a ValueError: a file from an incompatible version, or damage.
            log.error(
                "stored manifest is unreadable; ignoring it",
                extra={"fields": {"path": str(self.path), "error": str(exc)[:200]}},
            )
            return None

    def save(self, manifest: Manifest, etag: str | None) -> None:
        payload = {"etag": etag, "manifest": manifest.model_dump(mode="json", by_alias=True)}
        atomic_write_text(self.path, json.dumps(payload, separators=(",", ":")), mode=0o600)

    def wipe(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
