"""The command line around a real device: ``signage play --server`` tells the installer its
pairing code and saves a screenshot, ``signage admin screenshot`` fetches one from a device."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync import SyncAgent
from tests.sync.device_fakes import PNG, FakeHost
from tests.sync.live_server import LiveServer, device_settings, publish, running, wait_for
from tools import main

REPO = Path(__file__).parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server").start()
    yield server
    server.stop()


def _admin(live: LiveServer, tmp_path: Path, *args: str) -> list[str]:
    return ["admin", *args, "--server", live.url, "--token", live.admin_token]


async def test_admin_screenshot_takes_and_fetches_one(
    live: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = FakeHost()
    async with httpx.AsyncClient() as http:
        agent = SyncAgent(
            device_settings(), tmp_path / "device", host, http=http, server_url=live.url
        )
        try:
            async with running(agent.run()):
                await wait_for(lambda: bool(host.pairing_codes), what="a pairing code")
                with live.admin() as admin:
                    device_id = await asyncio.to_thread(admin.claim, host.pairing_codes[0], "L")
                await wait_for(lambda: agent.watcher is not None, what="the session")
                out = tmp_path / "shot.png"
                args = _admin(live, tmp_path, "screenshot", device_id, "-o", str(out))
                assert await asyncio.to_thread(main, args) == 0
        finally:
            agent.close()
    assert out.read_bytes() == PNG
    assert host.screenshots == 1
    printed = capsys.readouterr().out
    assert str(out) in printed and "4x3" in printed


def test_admin_screenshot_of_a_silent_device_says_so(
    live: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(base_url=live.url) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": "hw-quiet"}).json()
    with live.admin() as admin:
        device_id = admin.claim(created["code"], "Quiet")
    out = tmp_path / "shot.png"
    args = _admin(live, tmp_path, "screenshot", device_id, "-o", str(out), "--timeout", "1")
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and not out.exists()
    assert f"no screenshot from {device_id} within 1 s" in err
    assert "offline" in err


def test_play_server_prints_the_code_and_saves_a_screenshot(
    live: LiveServer, tmp_path: Path
) -> None:
    shot = tmp_path / "last.png"
    command = [sys.executable, "-m", "tools", "play", "--server", live.url, "--headless"]
    command += ["--data-dir", str(tmp_path / "state"), "--duration", "12"]
    command += ["--screenshot", str(shot)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")}
    env |= {"SIGNAGE_DISPLAY__WIDTH": "320", "SIGNAGE_DISPLAY__HEIGHT": "180"}
    lines: list[str] = []
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    ) as child:
        assert child.stdout is not None
        reader = threading.Thread(target=lambda: lines.extend(child.stdout or []), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 60
            while not any("pairing code" in line for line in lines):
                assert time.monotonic() < deadline, "no pairing code on stdout"
                time.sleep(0.1)
            line = next(line for line in lines if "pairing code" in line)
            match = re.search(r"pairing code (\d{6})", line)
            assert match and live.url in line
            with live.admin() as admin:
                device_id = admin.claim(match.group(1), "Kiosk")
                publish(admin, device_id, "screenshot me")
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
        reader.join(10)
    assert shot.read_bytes().startswith(PNG_MAGIC)
