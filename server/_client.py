"""``AdminClient``: the admin API from Python (the ``signage admin`` command uses it).

Synchronous on purpose: scripts, installers and the command line call it; async code runs
it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from core import ServerError

CHUNK_SIZE = 8 * 1024 * 1024
HASH_CHUNK = 1024 * 1024
Progress = Callable[[int, int], None]


class AdminApiError(ServerError):
    """The server answered with a problem; ``code`` is its stable name."""

    def __init__(self, status: int, code: str, detail: str | None) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(f"{status} {code}: {detail or ''}".rstrip(": "))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _missing(received: list[list[int]], size: int) -> list[tuple[int, int]]:
    gaps, cursor = [], 0
    for lo, hi in received:
        if lo > cursor:
            gaps.append((cursor, lo))
        cursor = max(cursor, hi)
    if cursor < size:
        gaps.append((cursor, size))
    return gaps


class AdminClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            raise AdminApiError(
                response.status_code, problem.get("code", "error"), problem.get("detail")
            )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # --- devices ---------------------------------------------------------------------------

    def claim(self, code: str, name: str) -> str:
        body = self.request(
            "POST", "/api/v1/admin/pairings/claim", json={"code": code, "name": name}
        )
        return str(body["device_id"])

    def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/admin/devices")
        return result

    def rename(self, device_id: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PATCH", f"/api/v1/admin/devices/{device_id}", json={"name": name}
        )
        return result

    def assign(
        self,
        device_id: str,
        *,
        default_layout: str | None = None,
        schedule: list[str] | None = None,
        timezone: str | None = None,
        group: bool = False,
    ) -> dict[str, Any]:
        """Give a device (or, with ``group=True``, a group) its content set."""
        kind = "groups" if group else "devices"
        body = {"default_layout": default_layout, "schedule": schedule or [], "timezone": timezone}
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/admin/{kind}/{device_id}/content", json=body
        )
        return result

    def put_group(self, group_id: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/admin/groups/{group_id}", json={"name": name}
        )
        return result

    def set_group_sync(
        self, group_id: str, *, enabled: bool = True, epoch: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Make a group play in step from ``epoch`` (default: now), or stop it doing so."""
        path = f"/api/v1/admin/groups/{group_id}/sync"
        if not enabled:
            gone: dict[str, Any] = self.request("DELETE", path)
            return gone
        body = {"epoch": epoch.isoformat()} if epoch is not None else {}
        result: dict[str, Any] = self.request("PUT", path, json=body)
        return result

    def set_group(self, device_id: str, group_id: str | None) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PATCH", f"/api/v1/admin/devices/{device_id}", json={"group": group_id}
        )
        return result

    def command(
        self, device_id: str, name: str, args: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/admin/devices/{device_id}/commands",
            json={"name": name, "args": dict(args or {})},
        )
        return result

    def revoke(self, device_id: str) -> None:
        self.request("DELETE", f"/api/v1/admin/devices/{device_id}")

    # --- content ---------------------------------------------------------------------------

    def _put(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/admin/{kind}/{body['id']}", json=dict(body)
        )
        return result

    def put_playlist(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put("playlists", body)

    def put_layout(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put("layouts", body)

    def put_schedule(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._put("schedules", body)

    # --- media -----------------------------------------------------------------------------

    def upload(
        self,
        path: Path,
        *,
        upload_id: str | None = None,
        progress: Progress | None = None,
        on_session: Callable[[str], None] | None = None,
        retries: int = 5,
        chunk_size: int = CHUNK_SIZE,
    ) -> str:
        """Upload a file in chunks and return its sha256; resumes ``upload_id`` when given.

        A cut connection is retried (``retries`` times per chunk, with backoff): the session's
        status says which ranges arrived, so only the missing ones are sent again.
        """
        path = Path(path)
        size = path.stat().st_size
        sha = file_sha256(path)
        if upload_id is None:
            session = self.request(
                "POST",
                "/api/v1/admin/uploads",
                json={"size": size, "sha256": sha, "name": path.name},
            )
            upload_id = str(session["upload_id"])
            if on_session is not None:
                on_session(upload_id)
        failures = 0
        while True:
            try:
                status = self.request("GET", f"/api/v1/admin/uploads/{upload_id}")
                if status["status"] == "open":
                    self._send_missing(path, upload_id, status, size, chunk_size, progress)
                media = self.request("POST", f"/api/v1/admin/uploads/{upload_id}/complete")
                return str(media["sha256"])
            except httpx.TransportError:
                failures += 1
                if failures > retries:
                    raise
                time.sleep(min(10.0, 0.2 * 2**failures))

    def _send_missing(
        self,
        path: Path,
        upload_id: str,
        status: dict[str, Any],
        size: int,
        chunk_size: int,
        progress: Progress | None,
    ) -> None:
        done = int(status["received_bytes"])
        if progress is not None:
            progress(done, size)
        with open(path, "rb") as handle:
            for lo, hi in _missing(status["received"], size):
                for start in range(lo, hi, chunk_size):
                    end = min(hi, start + chunk_size)
                    handle.seek(start)
                    data = handle.read(end - start)
                    self.request(
                        "PUT",
                        f"/api/v1/admin/uploads/{upload_id}",
                        content=data,
                        headers={"Content-Range": f"bytes {start}-{end - 1}/{size}"},
                    )
                    done += end - start
                    if progress is not None:
                        progress(done, size)
