"""In-process server for tests: the ASGI app with its lifespan, a fake clock, helpers."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core import Settings
from server import create_app
from server._state import ServerState
from tests.conftest import Backend

ADMIN_TOKEN = "test-admin-token-0123456789"
# A real 1x1 PNG: the server sniffs types from bytes.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Ctx:
    client: httpx.AsyncClient
    state: ServerState
    clock: FakeClock
    data_dir: Path
    app: FastAPI

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def pair(self, hardware_id: str = "hw-1", name: str = "Lobby") -> tuple[str, str]:
        """Pair a device; return (device_id, device_token)."""
        created = (
            await self.client.post("/api/v1/pairings", json={"hardware_id": hardware_id})
        ).json()
        claim = await self.client.post(
            "/api/v1/admin/pairings/claim",
            json={"code": created["code"], "name": name},
            headers=self.admin,
        )
        assert claim.status_code == 201, claim.text
        paired = await self.client.get(
            f"/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        )
        body = paired.json()
        return body["device_id"], body["device_token"]

    async def upload(self, data: bytes, name: str = "x.png") -> str:
        response = await self.client.post(
            "/api/v1/admin/media", params={"name": name}, content=data, headers=self.admin
        )
        assert response.status_code == 201, response.text
        sha: str = response.json()["sha256"]
        assert sha == hashlib.sha256(data).hexdigest()
        return sha

    async def publish_image(self, device_id: str, data: bytes = PNG, suffix: str = "1") -> str:
        """Upload an image, build playlist/layout around it, assign it; return the sha."""
        sha = await self.upload(data)
        playlist = {"id": f"p{suffix}", "items": [{"id": "i1", "type": "image", "asset": sha}]}
        layout = {
            "id": f"l{suffix}",
            "zones": [{"id": "main", "w": 1920, "h": 1080, "playlist": f"p{suffix}"}],
        }
        for kind, body in (("playlists", playlist), ("layouts", layout)):
            r = await self.client.put(
                f"/api/v1/admin/{kind}/{body['id']}", json=body, headers=self.admin
            )
            assert r.status_code in (200, 201), r.text
        r = await self.client.put(
            f"/api/v1/admin/devices/{device_id}/content",
            json={"default_layout": f"l{suffix}"},
            headers=self.admin,
        )
        assert r.status_code == 200, r.text
        return sha


def device_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_settings(**server: Any) -> Settings:
    return Settings.model_validate({"server": {"admin_token": ADMIN_TOKEN, **server}})


@pytest.fixture
async def ctx(tmp_path: Path, backend: Backend) -> AsyncIterator[Ctx]:
    clock = FakeClock()
    app = create_app(make_settings(**backend.settings()), tmp_path / "srv", clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Ctx(client, app.state.signage, clock, tmp_path / "srv", app)
