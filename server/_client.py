"""``AdminClient``: the admin API from Python (the ``signage admin`` command uses it).

Synchronous on purpose: scripts, installers and the command line call it; async code runs
it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from core import RetryPolicy, ServerError, parse_retry_after, retrying_blocking

CHUNK_SIZE = 8 * 1024 * 1024
HASH_CHUNK = 1024 * 1024
Progress = Callable[[int, int], None]


class AdminApiError(ServerError):
    """The server answered with a problem; ``code`` is its stable name, ``errors`` the
    invalid fields of a 422 (``loc``, ``msg``), ``retry_after`` its Retry-After in seconds."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None,
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        fields = "".join(f"\n  {line}" for line in self.field_lines())
        super().__init__(f"{status} {code}: {detail or ''}".rstrip(": ") + fields)

    def field_lines(self) -> list[str]:
        """``body.items.0.asset: <what is wrong>``, one per invalid field."""
        return [f"{field_path(e)}: {e.get('msg', 'invalid')}" for e in self.errors]


class ServerUnreachable(ServerError):
    """No answer a signage server would give: nothing listens, the network or TLS failed, or
    something else answers at that address. ``transient``: worth trying again as is."""

    def __init__(self, message: str, *, url: str, transient: bool) -> None:
        self.url = url
        self.transient = transient
        super().__init__(message)


def field_path(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ())) or "body"


def _errno_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection, without the errno number."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^\]\)]+)", text)
    if match:
        return match.group(1).strip().lower().removesuffix(".")
    return text.lower() or type(exc).__name__


def unreachable(exc: httpx.HTTPError, url: str) -> ServerUnreachable:
    """What a transport failure means to someone pointing a command at ``url``."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ServerUnreachable(
            f"{url} is not an http:// or https:// address", url=url, transient=False
        )
    if isinstance(exc, httpx.TimeoutException):
        what = "accept the connection" if isinstance(exc, httpx.ConnectTimeout) else "answer"
        return ServerUnreachable(
            f"the server at {url} did not {what} in time: is it overloaded, or is a firewall "
            "dropping the connection?",
            url=url,
            transient=True,
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return ServerUnreachable(
            f"something at {url} does not speak HTTP ({str(exc).lower() or 'no answer'}): "
            "is this the signage server's port?",
            url=url,
            transient=True,
        )
    reason = _errno_reason(exc)
    if "certificate" in reason or "ssl" in reason or "tls" in reason:
        return ServerUnreachable(
            f"cannot reach the server at {url} (TLS failed: {reason}): check the address and "
            "that the certificate is valid for it",
            url=url,
            transient=False,
        )
    return ServerUnreachable(
        f'cannot reach the server at {url} ({reason}): is "signage server" running, and is '
        "this its address?",
        url=url,
        transient=True,
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _segment(value: object) -> str:
    """An id as one path segment: a slash, a question mark or a control character in it
    cannot change which route is called."""
    return quote(str(value), safe="")


def _problem(response: httpx.Response) -> dict[str, Any] | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "code" in body else None


def _transient(exc: Exception) -> bool:
    return isinstance(exc, ServerUnreachable) and exc.transient


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

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The answer to one request; transport failures as ``ServerUnreachable``, problems
        as ``AdminApiError``, anything a signage server would not say as ``ServerUnreachable``."""
        base = self.base_url.rstrip("/")
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(exc, base) from exc
        except httpx.InvalidURL as exc:  # not an HTTPError: the address itself is unusable
            raise ServerUnreachable(
                f"{base} is not a usable address ({exc})", url=base, transient=False
            ) from exc
        if response.status_code >= 400:
            problem = _problem(response)
            if problem is None:
                raise ServerUnreachable(
                    f"the server at {base} is not a signage server: it answered "
                    f"{response.status_code} {response.reason_phrase} to {method} {url}, "
                    "without a problem body (check --server and the port)",
                    url=base,
                    transient=False,
                )
            raise AdminApiError(
                response.status_code,
                str(problem.get("code", "error")),
                problem.get("detail"),
                errors=[e for e in problem.get("errors") or [] if isinstance(e, dict)],
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        return response

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._send(method, url, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            base = self.base_url.rstrip("/")
            raise ServerUnreachable(
                f"the server at {base} is not a signage server: its answer to {method} {url} "
                "is not JSON (check --server and the port)",
                url=base,
                transient=False,
            ) from None

    # --- devices ---------------------------------------------------------------------------

    def claim_device(self, code: str, name: str | None = None) -> dict[str, Any]:
        """Claim a pairing code: ``{"device_id", "re_paired", "name"}``. A screen paired
        before (same hardware) keeps its record, group and content, and its name unless
        ``name`` is given."""
        body = {"code": code} if name is None else {"code": code, "name": name}
        result: dict[str, Any] = self.request("POST", "/api/v1/admin/pairings/claim", json=body)
        return result

    def claim(self, code: str, name: str | None = None) -> str:
        return str(self.claim_device(code, name)["device_id"])

    def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/v1/admin/devices")
        return result

    def rename(self, device_id: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PATCH", f"/api/v1/admin/devices/{_segment(device_id)}", json={"name": name}
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
            "PUT", f"/api/v1/admin/{kind}/{_segment(device_id)}/content", json=body
        )
        return result

    def put_group(self, group_id: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/admin/groups/{_segment(group_id)}", json={"name": name}
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
            "PATCH", f"/api/v1/admin/devices/{_segment(device_id)}", json={"group": group_id}
        )
        return result

    def command(
        self, device_id: str, name: str, args: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/admin/devices/{_segment(device_id)}/commands",
            json={"name": name, "args": dict(args or {})},
        )
        return result

    def device(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/admin/devices/{_segment(device_id)}")
        return result

    def commands(self, device_id: str) -> list[dict[str, Any]]:
        """The device's last 100 commands, newest first, with their results."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/api/v1/admin/devices/{_segment(device_id)}/commands"
        )
        return result

    def screenshot(self, device_id: str) -> bytes:
        """The latest screenshot the device sent (PNG bytes)."""
        return self._send("GET", f"/api/v1/admin/devices/{_segment(device_id)}/screenshot").content

    def revoke(self, device_id: str) -> None:
        self.request("DELETE", f"/api/v1/admin/devices/{_segment(device_id)}")

    # --- interrupts and power ---------------------------------------------------------------

    def interrupt(
        self,
        layout: str,
        *,
        device: str | None = None,
        group: str | None = None,
        seconds: int | None = None,
        starts_at: str | None = None,
        ends_at: str | None = None,
        priority: int = 0,
    ) -> dict[str, Any]:
        """Send ``layout`` over everything on a device (or every device of a group)."""
        body = {
            "layout": layout,
            "device": device,
            "group": group,
            "seconds": seconds,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "priority": priority,
        }
        result: dict[str, Any] = self.request("POST", "/api/v1/admin/interrupts", json=body)
        return result

    def interrupts(self, *, device: str | None = None, live: bool = False) -> list[dict[str, Any]]:
        params: dict[str, str] = {"live": "true" if live else "false"}
        if device is not None:
            params["device"] = device
        result: list[dict[str, Any]] = self.request(
            "GET", "/api/v1/admin/interrupts", params=params
        )
        return result

    def clear_interrupt(self, interrupt_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/admin/interrupts/{interrupt_id}")
        return result

    def set_power(
        self, target: str, schedule: Mapping[str, Any] | None, *, group: bool = False
    ) -> dict[str, Any] | None:
        """Set (None: remove) the power schedule of a device, or of a group."""
        url = f"/api/v1/admin/{'groups' if group else 'devices'}/{target}/power"
        if schedule is None:
            self.request("DELETE", url)
            return None
        result: dict[str, Any] = self.request("PUT", url, json=dict(schedule))
        return result

    def power(self, target: str, *, group: bool = False) -> dict[str, Any]:
        url = f"/api/v1/admin/{'groups' if group else 'devices'}/{target}/power"
        result: dict[str, Any] = self.request("GET", url)
        return result

    # --- content ---------------------------------------------------------------------------

    def _put(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "PUT", f"/api/v1/admin/{kind}/{_segment(body['id'])}", json=dict(body)
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

        A cut connection is retried (``retries`` times, with the retry policy's back-off): the
        session's status says which ranges arrived, so only the missing ones are sent again.
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
        policy = RetryPolicy(initial_s=0.4, max_s=10.0, attempts=retries + 1)
        for attempt in retrying_blocking(policy, retry_on=_transient):
            with attempt:
                status = self.request("GET", f"/api/v1/admin/uploads/{upload_id}")
                if status["status"] == "open":
                    self._send_missing(path, upload_id, status, size, chunk_size, progress)
                media = self.request("POST", f"/api/v1/admin/uploads/{upload_id}/complete")
        return str(media["sha256"])

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
