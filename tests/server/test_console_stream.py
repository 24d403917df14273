"""The console's live stream lives only as long as its session: signing out (in any tab)
ends it with a ``signed-out`` event, and the reconnection is refused."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import RunningServer, run_in_thread
from server import _console_devices as console_devices
from tests.server.conftest import make_settings

HTML = {"Accept": "text/html"}


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    monkeypatch.setattr(console_devices, "SESSION_RECHECK_S", 0.2)
    with run_in_thread(make_settings(sse_ping_s=1.0), tmp_path / "srv") as running:
        yield running


async def _events_until_closed(response: httpx.Response) -> list[str]:
    names: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            names.append(line[6:].strip())
    return names


async def test_signing_out_ends_the_live_stream(live: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as browser:
        signed_in = await browser.post("/signin", data={"token": live.admin_token}, headers=HTML)
        assert signed_in.status_code == 303
        page = (await browser.get("/devices", headers=HTML)).text
        match = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page)
        assert match is not None
        # A second tab of the same browser: same cookie, its own connection.
        async with httpx.AsyncClient(base_url=live.url, timeout=10, cookies=browser.cookies) as tab:
            async with tab.stream("GET", "/console/events") as stream:
                assert stream.status_code == 200
                reading = asyncio.create_task(_events_until_closed(stream))
                await asyncio.sleep(0.5)
                assert not reading.done()  # open while signed in (past several rechecks)
                signed_out = await browser.post(
                    "/signout", data={"csrf": match.group(1)}, headers=HTML
                )
                assert signed_out.status_code == 303
                names = await asyncio.wait_for(reading, timeout=5)
            assert names[-1:] == ["signed-out"]
            again = await tab.get("/console/events")
            assert again.status_code == 401
