"""Built manifests, kept so that a heartbeat or a manifest request costs no database query.

A manifest is rebuilt when content changes (``server._content.refresh_devices``) and stored
here after the change is committed, before devices are told: whichever replica a device then
asks answers with the new one. ``LocalManifests`` keeps them in this process;
``server._redis_state.RedisManifests`` in Redis for several replicas, behind the same interface.
A device missing from the store (first request, expired) is rebuilt from the database.

A change drops the manifests it replaces inside its transaction, before the commit: a replica
that dies between its commit and its store leaves them to be rebuilt, never the old ones served
(a rebuild waits for the content lock, so it reads the committed change).

Two changes committed one after the other may store their manifests in the other order (each
replica stores after its own commit): a store never replaces a manifest by one of a lower
version, since a device's version goes up with every change of its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CachedManifest:
    etag: str
    body: bytes
    version: int
    assets: frozenset[str]
    digest: str  # of the content, whatever the version: devices with the same content share it


class ManifestStore(Protocol):
    async def get(self, device_id: str) -> CachedManifest | None: ...

    async def etag(self, device_id: str) -> str | None:
        """The stored manifest's ETag alone (what every heartbeat answers with)."""
        ...

    async def put_many(self, manifests: Mapping[str, CachedManifest]) -> None:
        """Store each, unless a newer version is stored already."""
        ...

    async def drop(self, device_id: str) -> None: ...

    async def drop_many(self, device_ids: Iterable[str]) -> None:
        """Forget them: the next request rebuilds each from the database."""
        ...


class LocalManifests:
    """A ``ManifestStore`` in this process's memory."""

    def __init__(self) -> None:
        self._manifests: dict[str, CachedManifest] = {}

    async def get(self, device_id: str) -> CachedManifest | None:
        return self._manifests.get(device_id)

    async def etag(self, device_id: str) -> str | None:
        found = self._manifests.get(device_id)
        return None if found is None else found.etag

    async def put_many(self, manifests: Mapping[str, CachedManifest]) -> None:
        for device_id, manifest in manifests.items():
            known = self._manifests.get(device_id)
            if known is None or known.version <= manifest.version:
                self._manifests[device_id] = manifest

    async def drop(self, device_id: str) -> None:
        self._manifests.pop(device_id, None)

    async def drop_many(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            self._manifests.pop(device_id, None)
