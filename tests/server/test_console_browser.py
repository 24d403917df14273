"""The console in Chromium, against a real server and a real headless player: the installer's
and the operator's whole path, found by label and role as a screen-reader user would.

Screenshots of each page land in test-artefacts/console/NAME/ and are kept when a test
fails; with UPDATE_DOCS_IMAGES=1 the path test also refreshes docs/images/console-*.png.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Dialog, Page, Route, expect, sync_playwright

from server import _console_media as console_media
from tests.server.console_browser import (
    ARTEFACTS,
    DOC_IMAGES,
    ROOT,
    TOKEN,
    Player,
    chromium_or_skip,
    drop_artefacts,
    keep_screenshots,
    launch_browser,
    sign_in,
    start_server,
)

pytestmark = pytest.mark.slow
IMAGE = ROOT / "tools" / "demo" / "welcome.jpg"
VIDEO = ROOT / "tests" / "data" / "video" / "h264_320x180_2s.mp4"
CHUNK = 16 * 1024
DOC_SHOTS = {
    "signin": "console-signin",
    "pair-error": "console-pair",
    "media": "console-media",
    "playlist": "console-playlist",
    "layout": "console-layout",
    "schedule-conflict": "console-schedule",
    "devices-playing": "console-devices",
    "device-screenshot": "console-device",
    "reports": "console-reports",
}


def _cut_second_video_chunk(page: Page, sent: list[str]) -> None:
    """Abort the connection of the video's second chunk once, as a dropped Wi-Fi would."""
    size = VIDEO.stat().st_size
    cut_range = f"bytes {CHUNK}-{min(size, 2 * CHUNK) - 1}/{size}"

    def handle(route: Route) -> None:
        request = route.request
        if request.method == "PUT":
            header = request.headers.get("content-range", "")
            sent.append(header)
            if header == cut_range and sent.count(header) == 1:
                route.abort("connectionreset")
                return
        route.continue_()

    page.route(re.compile(r".*/media/uploads/[^/]+$"), handle)


def test_installer_and_operator_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chromium_or_skip()
    monkeypatch.setattr(console_media, "BROWSER_CHUNK", CHUNK)  # several chunks per file
    server = start_server(tmp_path / "server")
    player = Player(server.url, tmp_path / "player")
    try:
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            shot = keep_screenshots(page, "operator-path")
            page.goto(server.url + "/")
            expect(page.get_by_label("Admin token")).to_be_visible()
            shot("signin")
            sign_in(page, server.url)

            # Pair the player by the code it shows; a wrong code first, answered in words.
            code = player.pairing_code()
            page.get_by_role("link", name="Pair a screen").first.click()
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            page.get_by_label("Pairing code").fill(wrong)
            page.get_by_label("Screen name").fill("Lobby")
            page.get_by_label("Group (optional)").fill("Ground floor")
            page.get_by_role("button", name="Pair", exact=True).click()
            expect(page.get_by_role("alert")).to_contain_text(f"No screen shows code {wrong}")
            shot("pair-error")
            page.get_by_label("Pairing code").fill(code)
            page.get_by_role("button", name="Pair", exact=True).click()
            expect(page.get_by_role("heading", name="Lobby", exact=True)).to_be_visible()
            expect(page.get_by_role("status").first).to_contain_text("Lobby is paired")

            # Upload an image and a video; the video's second chunk is cut once and resumed.
            sent: list[str] = []
            page.get_by_role("link", name="Media").click()
            _cut_second_video_chunk(page, sent)
            page.get_by_label("Choose files").set_input_files([IMAGE, VIDEO])
            uploads = page.get_by_role("list", name="Uploads")
            expect(uploads.get_by_role("status").filter(has_text="done")).to_have_count(2)
            library = page.locator("#media-rows")
            expect(library.get_by_role("rowheader").filter(has_text=IMAGE.name)).to_be_visible()
            expect(library.get_by_role("rowheader").filter(has_text=VIDEO.name)).to_be_visible()
            video_size = VIDEO.stat().st_size
            first = f"bytes 0-{CHUNK - 1}/{video_size}"
            second = f"bytes {CHUNK}-{min(video_size, 2 * CHUNK) - 1}/{video_size}"
            assert sent.count(first) == 1, sent  # resumed where it stopped: not from zero
            assert sent.count(second) == 2, sent  # the cut chunk, sent again
            expect(library).to_contain_text("320 × 180")
            expect(library).to_contain_text("2.0 s")
            shot("media")
            page.unroute(re.compile(r".*/media/uploads/[^/]+$"))

            # A playlist: image, video, text; the text moved up by the keyboard.
            page.get_by_role("link", name="Playlists").click()
            page.get_by_label("Playlist id").fill("main")
            page.get_by_role("button", name="Create playlist").click()
            item1 = page.get_by_role("group", name="Item 1: image")
            item1.get_by_label("File").select_option(label=IMAGE.name)
            item1.get_by_label("Duration (s)").fill("3")
            page.get_by_role("button", name="Add video").click()
            item2 = page.get_by_role("group", name="Item 2: video")
            item2.get_by_label("File").select_option(label=VIDEO.name)
            page.get_by_role("button", name="Add text").click()
            item3 = page.get_by_role("group", name="Item 3: text")
            item3.get_by_label("Text").fill("Welcome to the lobby")
            item3.get_by_label("Duration (s)").fill("4")
            page.get_by_role("button", name="Move item 3 up").focus()
            page.keyboard.press("Enter")
            expect(page.get_by_role("group", name="Item 2: text")).to_be_visible()
            expect(page.get_by_role("button", name="Move item 2 up")).to_be_focused()
            page.get_by_role("button", name="Save playlist").click()
            expect(page.get_by_role("status").first).to_contain_text("Saved playlist main")
            expect(page.get_by_role("group", name="Item 3: video")).to_be_visible()
            shot("playlist")

            # A layout from the main + ticker template, both zones on the playlist.
            page.get_by_role("link", name="Layouts").click()
            page.get_by_label("Layout id").fill("lobby")
            page.get_by_label("Main + ticker").check()
            page.get_by_role("button", name="Create layout").click()
            preview = page.get_by_role("img", name="Preview of the zones")
            expect(preview).to_contain_text("ticker: main")
            page.get_by_role("button", name="Save layout").click()
            expect(page.get_by_role("status").first).to_contain_text("Saved layout lobby")
            shot("layout")

            # Schedule it for the group, all week; a clashing daypart is shown before saving.
            page.get_by_role("link", name="Schedule").click()
            page.get_by_label("Schedule of").select_option(label="group: Ground floor")
            page.get_by_role("button", name="Show").click()
            page.get_by_label("Layout", exact=True).select_option("lobby")
            page.get_by_role("button", name="Add daypart").click()
            expect(page.get_by_role("status").first).to_contain_text("Added: lobby")
            page.get_by_label("From").fill("08:00")
            page.get_by_label("To", exact=True).fill("18:00")
            expect(page.locator("#conflicts")).to_contain_text("Conflict", timeout=15_000)
            shot("schedule-conflict")
            page.get_by_label("Priority").fill("20")
            expect(page.locator("#conflicts")).to_contain_text("No conflict", timeout=15_000)

            # The device list shows the screen playing the layout, live, without a reload.
            page.get_by_role("link", name="Devices").click()
            row = page.locator("tr", has=page.get_by_role("link", name="Lobby"))
            expect(row).to_contain_text("Online", timeout=60_000)
            expect(row).to_contain_text("layout lobby", timeout=60_000)
            expect(row).to_contain_text("CPU")
            expect(row).to_contain_text("files ready")
            shot("devices-playing")

            # And a fresh screenshot of it.
            page.get_by_role("link", name="Lobby").click()
            page.get_by_role("button", name="Take screenshot").click()
            image = page.get_by_role("img", name="Latest screenshot of Lobby")
            expect(image).to_be_visible(timeout=60_000)
            page.wait_for_function(
                "document.getElementById('screenshot').naturalWidth > 0", timeout=30_000
            )
            shot("device-screenshot")

            page.get_by_role("link", name="Proof of play").click()
            expect(page.get_by_role("img", name=re.compile("Plays per day"))).to_be_visible()
            shot("reports")
            browser.close()
    finally:
        player.stop()
        server.stop()
    if os.environ.get("UPDATE_DOCS_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        for label, target in DOC_SHOTS.items():
            shutil.copyfile(
                ARTEFACTS / "operator-path" / f"{label}.png", DOC_IMAGES / f"{target}.png"
            )
    drop_artefacts("operator-path")


def _hostile_content(url: str) -> str:
    """A device and a media file whose names are markup; returns the device id."""
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": "hostile"}).json()
        claimed = client.post(
            "/api/v1/admin/pairings/claim",
            json={"code": created["code"], "name": "<script>alert(1)</script>"},
            headers=admin,
        )
        assert claimed.status_code == 201, claimed.text
        uploaded = client.post(
            "/api/v1/admin/media",
            params={"name": '"><img src=x onerror=alert(1)>'},
            content=(ROOT / "tests" / "data" / "red.png").read_bytes(),
            headers=admin,
        )
        assert uploaded.status_code == 201, uploaded.text
        device_id: str = claimed.json()["device_id"]
        return device_id


def test_names_render_as_text_and_cross_site_posts_are_refused(tmp_path: Path) -> None:
    chromium_or_skip()
    server = start_server(tmp_path / "server")
    try:
        device_id = _hostile_content(server.url)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            shot = keep_screenshots(page, "security")
            dialogs: list[str] = []

            def on_dialog(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", on_dialog)
            sign_in(page, server.url)
            expect(page.get_by_role("link", name="<script>alert(1)</script>")).to_be_visible()
            page.get_by_role("link", name="<script>alert(1)</script>").click()
            expect(page.get_by_role("heading", name="<script>alert(1)</script>")).to_be_visible()
            page.get_by_role("link", name="Media").click()
            hostile = '"><img src=x onerror=alert(1)>'
            expect(page.get_by_role("rowheader").filter(has_text=hostile)).to_be_visible()
            assert page.locator("img[src='x']").count() == 0
            shot("hostile-names")

            # A page on another site posts a rename form to the console: refused, unchanged.
            attacker = (
                "<form method=post action='" + server.url + f"/devices/{device_id}/rename'>"
                "<input name=name value=hacked><input name=csrf value=guess></form>"
                "<script>document.forms[0].submit()</script>"
            )
            page.route(
                "http://attacker.test/**",
                lambda route: route.fulfill(body=attacker, content_type="text/html"),
            )
            with page.expect_navigation(url=re.compile(re.escape(server.url))):
                page.goto("http://attacker.test/")
            assert "hacked" not in page.content()
            page.goto(server.url + f"/devices/{device_id}")
            expect(page.get_by_role("heading", name="<script>alert(1)</script>")).to_be_visible()
            assert dialogs == []
            browser.close()
    finally:
        server.stop()
    drop_artefacts("security")


PAGES = ("/devices", "/pair", "/media", "/playlists", "/layouts", "/schedule", "/reports")


def test_every_page_fits_a_phone(tmp_path: Path) -> None:
    """At a phone's width (390 CSS pixels) no page scrolls sideways: wide tables scroll in
    their own box, and the navigation stays reachable."""
    chromium_or_skip()
    server = start_server(tmp_path / "server")
    try:
        device_id = _hostile_content(server.url)
        with sync_playwright() as playwright:
            browser = launch_browser(playwright)
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            page.set_default_timeout(30_000)
            shot = keep_screenshots(page, "phone")
            sign_in(page, server.url)
            overflowing: dict[str, int] = {}
            for path in (*PAGES, f"/devices/{device_id}"):
                page.goto(server.url + path)
                page.wait_for_load_state("networkidle")
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > 390:
                    overflowing[path] = width
                shot(path.strip("/").replace("/", "-"))
                expect(page.get_by_role("link", name="Media").first).to_be_in_viewport()
            assert overflowing == {}, f"pages wider than the phone: {overflowing}"
            browser.close()
    finally:
        server.stop()
    drop_artefacts("phone")
