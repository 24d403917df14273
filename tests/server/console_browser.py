"""Shared pieces of the console's browser tests: a real server, a real player, Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from core import Settings
from server import RunningServer, run_in_thread

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "console-test-token-0123456789abcdef"
ARTEFACTS = ROOT / "test-artefacts" / "console"
DOC_IMAGES = ROOT / "docs" / "images"
EXPECT_TIMEOUT_MS = 30_000
CODE_LINE = re.compile(r'msg="pairing code issued" code=(\d{6})')


def chromium_or_skip() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: ./dev installs it (apt package chromium)")
        pytest.skip("chromium is not installed (./dev test installs it)")


def start_server(data_dir: Path) -> RunningServer:
    settings = Settings.model_validate(
        {"server": {"admin_token": TOKEN, "heartbeat_interval_s": 5}}
    )
    return run_in_thread(settings, data_dir)


class Player:
    """``signage play --server URL`` headless, its log read line by line as a user would."""

    def __init__(self, url: str, data_dir: Path) -> None:
        env = dict(
            os.environ,
            SDL_VIDEODRIVER="dummy",
            SDL_AUDIODRIVER="dummy",
            PYGAME_HIDE_SUPPORT_PROMPT="1",
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools", "play", "--server", url, "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def pairing_code(self, timeout: float = 60.0) -> str:
        """The code the player shows (it also logs it: what an installer at a terminal reads)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in reversed(self.lines):
                    if match := CODE_LINE.search(line):
                        return match.group(1)
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError("no pairing code:\n" + "".join(self.lines[-40:]))
                self._changed.wait(left)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def launch_browser(playwright: Playwright) -> Browser:
    # ``expect`` waits 5 s by default, whatever the page's timeout: on a loaded 2-core CI
    # machine two chunked uploads can take longer than that, so assertions wait as long as
    # actions do.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


def keep_screenshots(page: Page, name: str) -> Callable[[str], None]:
    """``shot(label)`` saves a screenshot among the artefacts; kept when a test fails."""
    folder = ARTEFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)

    def shot(label: str) -> None:
        page.screenshot(path=str(folder / f"{label}.png"), full_page=True)

    return shot


def sign_in(page: Page, url: str) -> None:
    page.goto(url + "/")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Devices").wait_for()


def drop_artefacts(name: str) -> None:
    """A test that passed keeps no screenshots."""
    shutil.rmtree(ARTEFACTS / name, ignore_errors=True)
