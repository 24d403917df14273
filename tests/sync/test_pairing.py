"""Pairing: show the code, long-poll for the claim, a fresh code when the old one lapses."""

from __future__ import annotations

import datetime as dt

import httpx

from core import RetryPolicy
from protocol import PairingCreated, PairingRequest
from sync import DeviceClient, pair

POLL_TOKEN = "poll_0123456789abcdefghij"
DEVICE_TOKEN = "dev_0123456789abcdefghijkl"
FAST_RETRY = RetryPolicy(initial_s=0.01, max_s=0.01)


def created(code: str, expires_in_s: float = 300) -> dict[str, object]:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in_s)
    return {
        "pairing_id": f"p{code}",
        "code": code,
        "expires_at": expires.isoformat(),
        "poll_token": POLL_TOKEN,
        "poll_after_s": 0,
    }


async def test_pairing_shows_the_code_then_returns_credentials() -> None:
    polls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=created("123456"))
        polls.append(request)
        if len(polls) < 3:
            return httpx.Response(200, json={"status": "pending"})
        return httpx.Response(
            200, json={"status": "paired", "device_id": "d1", "device_token": DEVICE_TOKEN}
        )

    client = DeviceClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://s")
    shown: list[PairingCreated] = []
    credentials = await pair(client, PairingRequest(hardware_id="hw"), shown.append)
    assert [c.code for c in shown] == ["123456"]
    assert credentials.device_id == "d1" and credentials.device_token == DEVICE_TOKEN
    assert credentials.server_url == "http://s"
    assert polls[0].headers["authorization"] == f"Bearer {POLL_TOKEN}"
    assert float(polls[0].url.params["wait"]) > 0


async def test_an_expired_code_is_replaced_by_a_new_one() -> None:
    codes = iter(["111111", "222222"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json=created(next(codes)))
        if request.url.path.endswith("/p111111"):
            problem = {"title": "Gone", "status": 410, "code": "pairing_expired"}
            return httpx.Response(410, json=problem)
        return httpx.Response(
            200, json={"status": "paired", "device_id": "d2", "device_token": DEVICE_TOKEN}
        )

    client = DeviceClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://s")
    shown: list[PairingCreated] = []
    credentials = await pair(client, PairingRequest(hardware_id="hw"), shown.append)
    assert [c.code for c in shown] == ["111111", "222222"]
    assert credentials.device_id == "d2"


async def test_a_code_past_its_expiry_is_renewed_without_asking() -> None:
    posts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal posts
        if request.method == "POST":
            posts += 1
            return httpx.Response(201, json=created(f"00000{posts}", -1 if posts == 1 else 300))
        return httpx.Response(
            200, json={"status": "paired", "device_id": "d3", "device_token": DEVICE_TOKEN}
        )

    client = DeviceClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://s")
    credentials = await pair(client, PairingRequest(hardware_id="hw"), lambda c: None)
    assert posts == 2 and credentials.device_id == "d3"


async def test_server_down_while_pairing_is_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("refused", request=request)
        if request.method == "POST":
            return httpx.Response(201, json=created("333333"))
        return httpx.Response(
            200, json={"status": "paired", "device_id": "d4", "device_token": DEVICE_TOKEN}
        )

    client = DeviceClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "http://s")
    credentials = await pair(
        client, PairingRequest(hardware_id="hw"), lambda c: None, retry=FAST_RETRY
    )
    assert credentials.device_id == "d4"
