"""The real daemon (cache → player → sync) headless against the real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import DisplayConfig, PlayerConfig, Settings
from player import Player, TimelineEvent
from player._daemon import dump_stacks, run_daemon
from sync import ImpressionQueue, SyncAgent, open_database
from tests.sync.device_fakes import PNG
from tests.sync.live_server import LiveServer, device_settings, publish, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "server").start()
    yield server
    server.stop()


class Daemon:
    """One run of ``run_daemon`` in a task, with its timeline collected."""

    def __init__(self, live: LiveServer, state: Path, **player: Any) -> None:
        base = device_settings()
        self.settings = Settings(
            data_dir=state,
            sync=base.sync,
            server=base.server,
            display=DisplayConfig(width=320, height=180, fullscreen=False, driver="dummy"),
            player=PlayerConfig(**player),
        )
        self.live = live
        self.stop = asyncio.Event()
        self.events: list[TimelineEvent] = []
        self.agent: SyncAgent | None = None
        self.task: asyncio.Task[int] | None = None
        self.device_id = ""

    def _started(self, agent: SyncAgent, player: Player) -> None:
        self.agent = agent
        player.add_listener(self.events.append)

    def start(self) -> Daemon:
        self.task = asyncio.create_task(
            run_daemon(
                self.settings, server_url=self.live.url, stop=self.stop, on_started=self._started
            )
        )
        return self

    def started_items(self) -> list[str]:
        return [e.item for e in self.events if e.event == "start" and e.item]

    async def pair(self) -> None:
        await wait_for(
            lambda: self.agent is not None and self.agent.pairing_code is not None, what="a code"
        )
        assert self.agent is not None and self.agent.pairing_code is not None
        with self.live.admin() as admin:
            self.device_id = await asyncio.to_thread(admin.claim, self.agent.pairing_code, "Hall")

    async def publish(self, text: str, layout: str = "l1") -> None:
        with self.live.admin() as admin:
            await asyncio.to_thread(publish, admin, self.device_id, text, layout)

    async def finish(self) -> int:
        assert self.task is not None
        self.stop.set()
        return await asyncio.wait_for(self.task, 60)


@pytest.fixture
async def daemon(live: LiveServer, tmp_path: Path) -> AsyncIterator[Daemon]:
    running = Daemon(live, tmp_path / "device").start()
    await running.pair()
    await running.publish("hello")
    await wait_for(lambda: "t1" in running.started_items(), what="the first item on screen")
    yield running
    if running.task is not None and not running.task.done():
        await running.finish()


async def test_pairs_plays_records_proof_of_play_and_stops_cleanly(
    daemon: Daemon, live: LiveServer
) -> None:
    start = next(e for e in daemon.events if e.event == "start" and e.item == "t1")
    assert start.layout == "l1" and start.zone == "main"
    assert daemon.agent is not None
    status = daemon.agent.host.status()  # what the heartbeat reports, from the real player
    assert (status.state, status.layout, status.items) == ("playing", "l1", {"main": "t1"})
    await daemon.publish("second", layout="l2")
    await wait_for(
        lambda: any(e.layout == "l2" and e.event == "start" for e in daemon.events),
        what="the new layout on the timeline",
    )
    assert await daemon.finish() == 0
    played = [e for e in daemon.events if e.event in ("start", "end") and e.item]
    queue = ImpressionQueue(open_database(daemon.settings.data_dir or Path()))
    assert daemon.agent is not None
    # Uploaded or still queued: every start and end the player reported is accounted for.
    assert daemon.agent.recorder.uploaded + len(queue) == len(played)


async def test_offline_boot_plays_the_persisted_manifest(daemon: Daemon, live: LiveServer) -> None:
    assert await daemon.finish() == 0
    live.stop()
    rebooted = Daemon(live, daemon.settings.data_dir or Path()).start()
    await wait_for(lambda: "t1" in rebooted.started_items(), what="stored content, offline")
    assert rebooted.agent is not None and rebooted.agent.pairing_code is None
    assert await rebooted.finish() == 0


async def test_restart_command_exits_with_the_documented_code(
    daemon: Daemon, live: LiveServer
) -> None:
    with live.admin() as admin:
        await asyncio.to_thread(admin.command, daemon.device_id, "restart")
    assert daemon.task is not None
    assert await asyncio.wait_for(daemon.task, 30) == 75


async def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    assert daemon.task is not None
    assert await asyncio.wait_for(daemon.task, 60) == 0


async def test_sigusr1_dumps_thread_and_task_stacks(daemon: Daemon) -> None:
    out = io.StringIO()
    dump_stacks(out)
    text = out.getvalue()
    assert "=== threads ===" in text and "MainThread" in text
    assert "--- task sync ---" in text
    os.kill(os.getpid(), signal.SIGUSR1)  # handled by the daemon: must not stop it
    await asyncio.sleep(0.2)
    assert daemon.task is not None and not daemon.task.done()


def test_signage_play_server_pairs_plays_dumps_stacks_and_stops_on_sigterm(
    live: LiveServer, tmp_path: Path
) -> None:
    """The real command in its own process: SIGUSR1 dumps stacks, SIGTERM exits 0."""
    timeline = tmp_path / "timeline.jsonl"
    command = [sys.executable, "-m", "tools", "play", "--server", live.url, "--headless"]
    command += ["--data-dir", str(tmp_path / "state"), "--timeline", str(timeline)]
    env = {**os.environ, "SIGNAGE_SYNC__DEVICE_NAME": "Kiosk", "SIGNAGE_DISPLAY__WIDTH": "320"}
    env["SIGNAGE_DISPLAY__HEIGHT"] = "180"
    lines: list[str] = []
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parents[2]
    ) as child:
        assert child.stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(child.stderr or []), daemon=True)
        reader.start()
        try:
            code = _wait_sync(lambda: _code_in(lines), "a pairing code in the log")
            with live.admin() as admin:
                device = admin.claim(code, "Kiosk")
                publish(admin, device, "from the daemon")
            _wait_sync(lambda: timeline.exists() and '"item":"t1"' in timeline.read_text(), "t1")
            child.send_signal(signal.SIGUSR1)
            _wait_sync(lambda: any("=== asyncio tasks ===" in line for line in lines), "stacks")
            assert child.poll() is None, "SIGUSR1 must not stop the daemon"
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
        reader.join(10)
    assert (tmp_path / "state" / "credentials.json").exists()


def _code_in(lines: list[str]) -> str | None:
    for line in lines:
        if "pairing code issued" in line:
            match = re.search(r"\bcode=(\d{6})\b", line)
            if match:
                return match.group(1)
    return None


def _wait_sync(probe: Callable[[], Any], what: str, within_s: float = 60.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_image_assets_come_through_the_cache_with_the_device_token(
    daemon: Daemon, live: LiveServer, tmp_path: Path
) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(PNG)
    with live.admin() as admin:
        sha = await asyncio.to_thread(admin.upload, image)
        playlist = {"id": "pimg", "items": [{"id": "img", "type": "image", "asset": sha}]}
        await asyncio.to_thread(admin.put_playlist, playlist)
        layout = {"id": "limg", "width": 320, "height": 180}
        layout["zones"] = [{"id": "main", "w": 320, "h": 180, "playlist": "pimg"}]
        await asyncio.to_thread(admin.put_layout, layout)
        await asyncio.to_thread(admin.assign, daemon.device_id, default_layout="limg")
    await wait_for(lambda: "img" in daemon.started_items(), what="the image on screen")
    cached = daemon.settings.data_dir / "cache" if daemon.settings.data_dir else Path()
    assert any(path.name == sha for path in cached.rglob(sha)), "verified into the cache"


async def test_server_killed_mid_play_changes_nothing_on_screen(
    daemon: Daemon, live: LiveServer
) -> None:
    assert daemon.agent is not None
    before = len(daemon.events)
    live.stop()
    await wait_for(
        lambda: (
            daemon.agent is not None
            and daemon.agent.watcher is not None
            and daemon.agent.watcher.polling
        ),
        what="polling while the server is away",
    )
    await asyncio.sleep(1.0)
    during = daemon.events[before:]
    assert not [e for e in during if e.event == "state"], "no state change: the screen holds"
    assert daemon.agent.host.status().items == {"main": "t1"}
    live.start()
    await daemon.publish("back", layout="l9")
    await wait_for(
        lambda: any(e.layout == "l9" and e.event == "start" for e in daemon.events),
        what="new content once the server is back",
    )


def test_signage_play_rejects_a_server_that_is_not_a_url(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tools", "play", "--server", "signage.local", "--headless"]
    done = subprocess.run(
        [*command, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=60,
    )
    assert done.returncode == 1
    assert "not an http(s) URL" in done.stderr


async def test_systemd_hears_ready_after_the_first_frame_then_status_and_stopping(
    live: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    path = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    messages: list[str] = []

    def heard(text: str) -> bool:
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                return any(text in m for m in messages)

    try:
        running = Daemon(live, tmp_path / "device").start()
        await wait_for(lambda: heard("READY=1"), what="READY from the pairing screen")
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=idle" in ready  # an idle screen is up: a frame was presented
        await running.pair()
        await running.publish("hello")
        await wait_for(lambda: heard("STATUS=playing l1"), what="the playing status")
        assert await running.finish() == 0
        assert heard("STOPPING=1")
        assert sum("READY=1" in m for m in messages) == 1
    finally:
        listener.close()
