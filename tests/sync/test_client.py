"""DeviceClient over httpx.MockTransport: headers, error translation, manifest handling."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import httpx
import pytest

from core import DeviceRevoked, PairingExpired, ProtocolError, configure_logging
from protocol import Metrics
from sync import DeviceClient, MalformedManifest, RequestFailed
from tests.sync.device_fakes import manifest_dict

TOKEN = "device-token-0123456789abcdef"

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, token: str | None = TOKEN) -> DeviceClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DeviceClient(http, "http://server.test/", token=token)


def problem(status: int, code: str, detail: str, **headers: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "Refused", "status": status, "code": code}
    body["detail"] = detail
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **headers}
    )


def metrics() -> Metrics:
    return Metrics(
        cpu_percent=1.0,
        memory_percent=2.0,
        memory_used_bytes=3,
        disk_free_bytes=4,
        disk_total_bytes=5,
        uptime_s=6.0,
        player_version="0.1.0",
        state="idle",
    )


async def test_device_calls_carry_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=manifest_dict(), headers={"ETag": '"v1"'})

    fetched = await client_for(handler).manifest()
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.path == "/api/v1/device/manifest"
    assert fetched.etag == '"v1"'
    assert fetched.manifest is not None and fetched.manifest.version == 1


async def test_unchanged_manifest_is_a_304_with_if_none_match() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["if-none-match"] == '"v1"'
        return httpx.Response(304, headers={"ETag": '"v1"'})

    fetched = await client_for(handler).manifest('"v1"')
    assert fetched.manifest is None
    assert fetched.etag == '"v1"'


async def test_401_means_revoked() -> None:
    client = client_for(lambda r: problem(401, "invalid_token", "token revoked"))
    with pytest.raises(DeviceRevoked, match="invalid_token"):
        await client.heartbeat(metrics())


async def test_429_carries_retry_after_and_is_transient() -> None:
    client = client_for(
        lambda r: problem(429, "heartbeat_too_frequent", "slow down", **{"Retry-After": "7"})
    )
    with pytest.raises(RequestFailed) as caught:
        await client.heartbeat(metrics())
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "heartbeat_too_frequent"
    assert caught.value.transient
    assert "slow down" in str(caught.value)


async def test_problem_json_becomes_a_readable_error() -> None:
    client = client_for(lambda r: problem(422, "invalid_body", "metrics.cpu_percent: too big"))
    with pytest.raises(RequestFailed) as caught:
        await client.heartbeat(metrics())
    message = str(caught.value)
    assert "HTTP 422" in message and "[invalid_body]" in message and "cpu_percent" in message
    assert not caught.value.transient


async def test_plain_text_error_still_reads_well() -> None:
    client = client_for(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(RequestFailed, match="HTTP 502 Bad Gateway") as caught:
        await client.manifest()
    assert caught.value.transient and caught.value.code is None


async def test_connection_refused_is_transient_without_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RequestFailed) as caught:
        await client_for(handler).manifest()
    assert caught.value.status is None and caught.value.transient


async def test_malformed_manifest_is_rejected_with_its_etag() -> None:
    bad = manifest_dict()
    bad["default_layout"] = "nope"
    client = client_for(lambda r: httpx.Response(200, json=bad, headers={"ETag": '"bad"'}))
    with pytest.raises(MalformedManifest) as caught:
        await client.manifest('"v1"')
    assert caught.value.etag == '"bad"'
    assert "default_layout" in str(caught.value)
    assert isinstance(caught.value, ProtocolError)


async def test_unexpected_body_is_a_protocol_error() -> None:
    client = client_for(lambda r: httpx.Response(200, json={"server_time": "yesterday"}))
    with pytest.raises(ProtocolError):
        await client.heartbeat(metrics())


async def test_pairing_gone_is_pairing_expired() -> None:
    client = client_for(lambda r: problem(410, "pairing_expired", "request a new one"), token=None)
    with pytest.raises(PairingExpired):
        await client.pairing_status("p1", "poll-token-0123456789", wait_s=1)


async def test_no_credentials_is_revoked_before_any_request() -> None:
    client = client_for(lambda r: httpx.Response(200), token=None)
    with pytest.raises(DeviceRevoked, match="pair it first"):
        await client.manifest()


async def test_token_never_reaches_a_log_line() -> None:
    stream = io.StringIO()
    handler = configure_logging("debug", stream=stream)
    try:
        client_for(lambda r: httpx.Response(204))
        logging.getLogger("test").info("sending %s", json.dumps({"value": TOKEN}))
    finally:
        logging.getLogger().removeHandler(handler)
    assert TOKEN not in stream.getvalue()
    assert "***" in stream.getvalue()
