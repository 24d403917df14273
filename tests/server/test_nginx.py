"""The nginx site of docs/server.md, run by a real nginx on 127.0.0.1 in front of a real server:
pairing (long poll), event streams, a chunked upload, and rate limits per client address."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from server import AdminClient, RunningServer, run_in_thread
from tests.server.conftest import make_settings
from tools.bench import Proxy, nginx

PAIRINGS_PER_IP = 3


@pytest.fixture
def live(tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(
        forwarded_allow_ips="127.0.0.1",
        pairing_requests_per_ip=PAIRINGS_PER_IP,
        pairing_requests_per_hardware_id=100,
        sse_ping_s=1.0,
    )
    with run_in_thread(settings, tmp_path / "srv") as running:
        yield running


@pytest.fixture
def proxy(live: RunningServer, tmp_path: Path) -> Iterator[Proxy]:
    port = int(live.url.rsplit(":", 1)[1])
    with nginx(port, tmp_path / "nginx") as running:
        yield running


def _client(proxy: Proxy, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(verify=proxy.trust, local_address=source)
    return httpx.Client(base_url=proxy.url, transport=transport, timeout=30)


def _pair(proxy: Proxy, admin_token: str, hardware_id: str) -> str:
    """Pair through the proxy with the device's long poll; return the device token."""
    with _client(proxy) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": hardware_id})
        assert created.status_code == 201, created.text
        body = created.json()
        poll = {"Authorization": f"Bearer {body['poll_token']}"}
        pending = client.get(
            f"/api/v1/pairings/{body['pairing_id']}", params={"wait": 1}, headers=poll
        )
        assert pending.json()["status"] == "pending"
        claimed = client.post(
            "/api/v1/admin/pairings/claim",
            json={"code": body["code"], "name": hardware_id},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        assert claimed.status_code == 201, claimed.text
        paired = client.get(
            f"/api/v1/pairings/{body['pairing_id']}", params={"wait": 5}, headers=poll
        )
        token: str = paired.json()["device_token"]
        return token


def test_pairing_events_and_commands_pass_the_proxy_unbuffered(
    live: RunningServer, proxy: Proxy
) -> None:
    token = _pair(proxy, live.admin_token, "hw-nginx")
    device_id = next(d["id"] for d in _devices(proxy, live.admin_token))
    device = {"Authorization": f"Bearer {token}"}
    with (
        _client(proxy) as client,
        client.stream("GET", "/api/v1/device/events", headers=device) as events,
    ):
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        lines = events.iter_lines()
        assert next(lines).startswith((": connected", "retry:", "event:", "id:"))
        sent_at = time.monotonic()
        with AdminClient(
            proxy.url, live.admin_token, transport=httpx.HTTPTransport(verify=proxy.trust)
        ) as admin:
            command = admin.command(device_id, "identify", {"seconds": 5})
        for line in lines:
            if line.startswith("data:") and command["id"] in line:
                break
        # An event is not held in a buffer: it arrives well before the next ping flushes it.
        assert time.monotonic() - sent_at < 0.9


def _devices(proxy: Proxy, admin_token: str) -> list[dict[str, str]]:
    with _client(proxy) as client:
        listed: list[dict[str, str]] = client.get(
            "/api/v1/admin/devices", headers={"Authorization": f"Bearer {admin_token}"}
        ).json()
    return listed


def test_an_upload_in_8_mib_chunks_passes_the_proxy(
    live: RunningServer, proxy: Proxy, tmp_path: Path
) -> None:
    # A real picture (the server decodes what it stores) that noise keeps above 20 MiB: three
    # chunks through the proxy.
    side = 2_700
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        tmp_path / "noise.png", compress_level=1
    )
    path = tmp_path / "noise.png"
    data = path.read_bytes()
    assert len(data) > 20 * 1024 * 1024
    transport = httpx.HTTPTransport(verify=proxy.trust)
    with AdminClient(proxy.url, live.admin_token, transport=transport) as admin:
        sha = admin.upload(path)
        media = admin.request("GET", f"/api/v1/admin/media/{sha}")
    assert media["size"] == len(data)


def test_rate_limits_key_on_each_client_not_on_the_proxy(live: RunningServer, proxy: Proxy) -> None:
    def pairings(source: str, forwarded: str | None = None) -> list[int]:
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        with _client(proxy, source) as client:
            return [
                client.post(
                    "/api/v1/pairings", json={"hardware_id": f"{source}-{n}"}, headers=headers
                ).status_code
                for n in range(PAIRINGS_PER_IP + 1)
            ]

    assert pairings("127.0.0.2") == [201] * PAIRINGS_PER_IP + [429]
    # Another client behind the same proxy has its own budget...
    assert pairings("127.0.0.3") == [201] * PAIRINGS_PER_IP + [429]
    # ...and a client cannot buy a new one by sending its own X-Forwarded-For.
    assert pairings("127.0.0.2", forwarded="198.51.100.9")[0] == 429


def test_forwarding_from_an_untrusted_peer_is_ignored_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(forwarded_allow_ips="", pairing_requests_per_ip=PAIRINGS_PER_IP)
    with (
        run_in_thread(settings, tmp_path / "srv") as running,
        httpx.Client(base_url=running.url) as client,
    ):
        statuses = [
            client.post(
                "/api/v1/pairings",
                json={"hardware_id": f"hw-{n}"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(PAIRINGS_PER_IP + 1)
        ]
    assert statuses == [201] * PAIRINGS_PER_IP + [429]
    warnings = [r.getMessage() for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(warnings) == 1 and "server.forwarded_allow_ips" in warnings[0]
