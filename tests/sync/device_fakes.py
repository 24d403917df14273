"""A fake DeviceHost and manifest builders shared by the sync tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import Any

from PIL import Image

from player import MediaClock
from protocol import Manifest, PowerMetrics, QuarantinedItem
from sync import ClockEstimate, HostStatus


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (255, 0, 0)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


class FakeHost:
    """Records what the sync client asked of the device."""

    def __init__(self) -> None:
        self.manifests: list[Manifest] = []
        self.pairing_codes: list[str] = []
        self.server_times: list[dt.datetime] = []
        self.identified: list[tuple[str, float]] = []
        self.reloads = 0
        self.cache_clears = 0
        self.screenshots = 0
        self.state: Any = "playing"
        self.power: PowerMetrics | None = PowerMetrics(wanted="on", backend="none")
        self.display_commands: list[tuple[bool, float | None]] = []
        self.quarantined: list[QuarantinedItem] = []
        self.clock = MediaClock()
        self.estimates: list[ClockEstimate | None] = []

    def show_pairing(
        self, code: str, server_url: str, device_name: str, expires_at: dt.datetime
    ) -> None:
        self.pairing_codes.append(code)

    async def apply_manifest(self, manifest: Manifest) -> None:
        self.manifests.append(manifest)

    def status(self) -> HostStatus:
        layout = self.manifests[-1].default_layout if self.manifests else None
        return HostStatus(
            state=self.state,
            layout=layout,
            items={"main": "i1"} if layout else {},
            power=self.power,
            quarantined=self.quarantined,
        )

    def feed_server_time(self, server_time: dt.datetime) -> None:
        self.server_times.append(server_time)

    async def reload(self) -> None:
        self.reloads += 1

    async def screenshot(self) -> bytes:
        self.screenshots += 1
        return PNG

    async def clear_cache(self) -> None:
        self.cache_clears += 1

    def identify(self, text: str, seconds: float) -> None:
        self.identified.append((text, seconds))

    def system_time_ns(self) -> int | None:
        return None  # as a Pi without RTC or NTP: group time must come from the server

    def set_clock_estimate(self, estimate: ClockEstimate | None) -> None:
        self.estimates.append(estimate)

    async def display_power(self, on: bool, seconds: float | None) -> None:
        self.display_commands.append((on, seconds))
        if self.power is not None:
            self.power = self.power.model_copy(
                update={"wanted": "on" if on else "off", "reason": "command"}
            )


def manifest_dict(version: int = 1, text: str = "hello") -> dict[str, Any]:
    return {
        "version": version,
        "playlists": [{"id": "p1", "items": [{"id": "i1", "type": "text", "text": text}]}],
        "layouts": [
            {
                "id": "l1",
                "width": 640,
                "height": 360,
                "zones": [{"id": "main", "w": 640, "h": 360, "playlist": "p1"}],
            }
        ],
        "default_layout": "l1",
    }


def manifest(version: int = 1, text: str = "hello") -> Manifest:
    return Manifest.model_validate(manifest_dict(version, text))


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
