"""The device API over an injected ``httpx.AsyncClient``: one method per endpoint of protocol v1.

Errors are translated at this boundary: 401 is ``DeviceRevoked``; any other non-success
answer is ``RequestFailed`` carrying the status, the problem+json ``code`` and the server's
``Retry-After``; a transport failure is ``RequestFailed`` with ``status=None``. A body the
contract does not allow is ``ProtocolError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, SSEError, aconnect_sse
from pydantic import BaseModel, TypeAdapter, ValidationError

from core import (
    DeviceRevoked,
    PairingExpired,
    ProtocolError,
    SyncError,
    parse_retry_after,
    register_secret,
)
from protocol import (
    CommandResult,
    HeartbeatResponse,
    ImpressionAck,
    ImpressionBatch,
    Manifest,
    Metrics,
    PairingCreated,
    PairingPaired,
    PairingPending,
    PairingRequest,
    PairingStatus,
    Problem,
    TokenRotated,
)

API = "/api/v1"
_Model = TypeVar("_Model", bound=BaseModel)
_STATUS = TypeAdapter[PairingPending | PairingPaired](PairingStatus)


class RequestFailed(SyncError):
    """A device call that did not succeed; ``transient`` failures are worth retrying."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def transient(self) -> bool:
        return self.status is None or self.status in (408, 425, 429) or self.status >= 500


def _problem_of(response: httpx.Response) -> Problem | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return Problem.model_validate_json(response.content)
    except ValidationError:
        return None


def failure_of(response: httpx.Response, what: str) -> SyncError:
    problem = _problem_of(response)
    if problem is not None:
        detail = f": {problem.detail}" if problem.detail else ""
        reason = f"{problem.title} [{problem.code}]{detail}"
    else:
        reason = response.reason_phrase or "error"
    message = f"{what}: HTTP {response.status_code} {reason}"
    if response.status_code == 401:
        return DeviceRevoked(message)
    return RequestFailed(
        message,
        status=response.status_code,
        code=problem.code if problem else None,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def parse_body(model: type[_Model], response: httpx.Response, what: str) -> _Model:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProtocolError(
            f"{what}: the server sent a body the protocol does not allow: {exc}"
        ) from exc


@dataclass(frozen=True)
class ManifestFetch:
    """A fetched manifest (``None`` when unchanged: 304) and the ETag it came with."""

    manifest: Manifest | None
    etag: str | None


class MalformedManifest(ProtocolError):
    """The server's manifest did not validate; ``etag`` identifies the rejected version."""

    def __init__(self, message: str, *, etag: str | None) -> None:
        self.etag = etag
        super().__init__(message)


class DeviceClient:
    """Calls of wire protocol v1. ``token`` is the device token (None before pairing)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, *, token: str | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token = token

    @property
    def token(self) -> str | None:
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        register_secret(value)
        self._token = value

    def _auth(self, token: str | None = None) -> dict[str, str]:
        token = token or self._token
        if token is None:
            raise DeviceRevoked("this device has no credentials: pair it first")
        return {"Authorization": f"Bearer {token}"}

    async def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        token: str | None = None,
        anonymous: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if not anonymous:
            headers.update(self._auth(token))
        try:
            response = await self.http.request(
                method, self.base_url + API + path, headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise RequestFailed(f"{what}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise failure_of(response, what)
        return response

    # --- pairing (unauthenticated) ---------------------------------------------------------

    async def create_pairing(self, request: PairingRequest) -> PairingCreated:
        response = await self._send(
            "POST",
            "/pairings",
            "pairing request",
            anonymous=True,
            json=request.model_dump(mode="json"),
        )
        created = parse_body(PairingCreated, response, "pairing request")
        register_secret(created.poll_token)
        return created

    async def pairing_status(
        self, pairing_id: str, poll_token: str, *, wait_s: float
    ) -> PairingPending | PairingPaired:
        """One long-poll for the claim; ``PairingExpired`` once the code is gone (410)."""
        try:
            response = await self._send(
                "GET",
                f"/pairings/{pairing_id}",
                "pairing status",
                token=poll_token,
                params={"wait": f"{wait_s:g}"},
                timeout=httpx.Timeout(wait_s + 15.0, connect=10.0),
            )
        except RequestFailed as exc:
            if exc.status in (404, 410):
                raise PairingExpired(str(exc)) from exc
            raise
        except DeviceRevoked as exc:
            raise PairingExpired(str(exc)) from exc
        try:
            status = _STATUS.validate_json(response.content)
        except ValidationError as exc:
            raise ProtocolError(f"pairing status: unexpected body: {exc}") from exc
        if isinstance(status, PairingPaired):
            register_secret(status.device_token)
        return status

    # --- device calls (Bearer device token) ------------------------------------------------

    async def manifest(self, etag: str | None = None) -> ManifestFetch:
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._send("GET", "/device/manifest", "manifest", headers=headers)
        new_etag = response.headers.get("etag") or etag
        if response.status_code == 304:
            return ManifestFetch(None, etag)
        try:
            manifest = Manifest.model_validate_json(response.content)
        except ValidationError as exc:
            raise MalformedManifest(
                f"manifest {new_etag or '?'} rejected: {exc.error_count()} problem(s): "
                + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
                ),
                etag=new_etag,
            ) from exc
        return ManifestFetch(manifest, new_etag)

    async def heartbeat(self, metrics: Metrics) -> tuple[HeartbeatResponse, httpx.Headers]:
        response = await self._send(
            "POST",
            "/device/heartbeat",
            "heartbeat",
            json={"metrics": metrics.model_dump(mode="json")},
        )
        return parse_body(HeartbeatResponse, response, "heartbeat"), response.headers

    async def command_result(self, command_id: str, result: CommandResult) -> None:
        await self._send(
            "POST",
            f"/device/commands/{command_id}/result",
            "command result",
            json=result.model_dump(mode="json"),
        )

    async def impressions(self, batch: ImpressionBatch) -> ImpressionAck:
        response = await self._send(
            "POST", "/device/impressions", "impressions", json=batch.model_dump(mode="json")
        )
        return parse_body(ImpressionAck, response, "impressions")

    async def rotate_token(self) -> TokenRotated:
        """A new device token; the current one keeps working until the new one is used."""
        response = await self._send("POST", "/device/token/rotate", "token rotation")
        rotated = parse_body(TokenRotated, response, "token rotation")
        register_secret(rotated.device_token)
        return rotated

    async def screenshot(self, png: bytes, *, command_id: str | None = None) -> None:
        params = {"command_id": command_id} if command_id else {}
        await self._send(
            "POST",
            "/device/screenshots",
            "screenshot upload",
            content=png,
            params=params,
            headers={"Content-Type": "image/png"},
        )

    @contextlib.asynccontextmanager
    async def events(
        self, *, last_event_id: str | None, read_timeout_s: float
    ) -> AsyncIterator[EventSource]:
        """The device's SSE stream; a read stalled longer than ``read_timeout_s`` raises."""
        headers = self._auth()
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(read_timeout_s, connect=min(read_timeout_s, 10.0))
        try:
            async with aconnect_sse(
                self.http,
                "GET",
                self.base_url + API + "/device/events",
                headers=headers,
                timeout=timeout,
            ) as source:
                if source.response.status_code >= 400:
                    await source.response.aread()
                    raise failure_of(source.response, "event stream")
                yield source
        except (httpx.HTTPError, SSEError) as exc:
            raise RequestFailed(f"event stream: {type(exc).__name__}: {exc}") from exc
