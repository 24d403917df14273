"""Content folders: the bundled demo validates, bad folders fail with every problem listed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core import ConfigError
from protocol import ImageItem
from tools.sim._content import DEMO_DIR, load_content
from tools.sim._scenario import Publish, parse_scenario
from tools.sim._seed import (
    SeededContent,
    asset_of_item,
    changed_items,
    prepare_publication,
)


def test_demo_content_is_a_valid_manifest_with_two_dayparts() -> None:
    content = load_content("demo")
    manifest = content.manifest
    assert {layout.id for layout in manifest.layouts} == {"day", "evening"}
    assert manifest.default_layout == "evening"
    assert [(e.layout, e.from_, e.to) for e in manifest.schedule] == [("day", "07:00", "19:00")]
    day = manifest.layout("day")
    types = {item.type for zone in day.zones for item in manifest.playlist(zone.playlist).items}
    assert {"image", "video", "text", "clock"} <= types
    # every asset is a real file whose hash the manifest names
    for asset in manifest.assets:
        path = content.file_of(asset.sha256)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == asset.sha256
        assert path.stat().st_size == asset.size


def test_demo_media_is_small_and_full_hd() -> None:
    content = load_content("demo")
    total = sum(m.size for m in content.media.values())
    assert total < 600 * 1024
    images = [m for m in content.media.values() if m.mime.startswith("image/")]
    assert len(images) >= 4
    for media in images:
        with Image.open(media.path) as image:
            assert image.size == (1920, 1080)
    clips = [m for m in content.media.values() if m.mime == "video/mp4"]
    assert len(clips) == 1 and clips[0].size < 200 * 1024


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "content.toml").write_text(text, encoding="utf-8")
    return folder


def test_every_problem_of_a_bad_folder_is_listed(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not media")
    folder = _write(
        tmp_path,
        """
        timezone = "Europe/Paris"
        colour = "blue"
        [[playlists]]
        id = "p"
        items = [
          { id = "a", type = "image", file = "missing.png" },
          { id = "b", type = "image", asset = "00" },
          { id = "c", type = "video" },
          { id = "d", type = "image", file = "notes.txt" },
        ]
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_content(folder)
    problems = "\n".join(caught.value.problems)
    assert "colour: unknown key" in problems
    assert "playlists[0].items[0]: file not found" in problems
    assert "playlists[0].items[1]: name a 'file', not an 'asset' hash" in problems
    assert "playlists[0].items[2]: an video item needs 'file'" in problems
    assert "playlists[0].items[3]:" in problems and "unknown media type" in problems
    assert caught.value.source == str(folder / "content.toml")


def test_manifest_rules_apply_to_content(tmp_path: Path) -> None:
    folder = _write(
        tmp_path,
        """
        [[playlists]]
        id = "p"
        items = [{ id = "t", type = "text", text = "hi" }]
        [[layouts]]
        id = "l"
        zones = [{ id = "z", w = 100, h = 100, playlist = "nope" }]
        """,
    )
    with pytest.raises(ConfigError, match="unknown playlist 'nope'"):
        load_content(folder)


def test_missing_folder_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no content\.toml"):
        load_content(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_content(_write(tmp_path / "bad", "playlists = ["))


def test_publication_merges_by_id_and_names_what_changed(tmp_path: Path) -> None:
    content = load_content("demo")
    shutil.copy(DEMO_DIR / "welcome.jpg", tmp_path / "welcome.jpg")
    Image.new("RGB", (64, 36), "#ff0000").save(tmp_path / "red.png")
    scenario = parse_scenario(
        """
        [[events]]
        at = 1
        action = "publish"
        playlists = [{ id = "showcase", items = [
            { id = "welcome", type = "image", file = "welcome.jpg", duration_ms = 8000, fit = "cover" },
            { id = "red", type = "image", file = "red.png", duration_ms = 5000 },
        ] }]
        """,
        base=tmp_path,
    )
    publish = scenario.events[0]
    assert isinstance(publish, Publish)
    manifest, media = prepare_publication(SeededContent(content.manifest), publish, tmp_path)
    showcase = manifest.playlist("showcase")
    assert [i.id for i in showcase.items] == ["welcome", "red"]
    # the other playlists, layouts and schedule are kept
    assert {p.id for p in manifest.playlists} == {p.id for p in content.manifest.playlists}
    assert manifest.schedule == content.manifest.schedule
    red = showcase.items[1]
    assert isinstance(red, ImageItem)
    assert media[red.asset].path == tmp_path / "red.png"
    assert red.asset in {a.sha256 for a in manifest.assets}
    assert changed_items(content.manifest, manifest) == {"red"}


def test_publication_of_unknown_layout_is_rejected_before_sending(tmp_path: Path) -> None:
    content = load_content("demo")
    publish = Publish(
        at=1, action="publish", schedule=[{"id": "x", "layout": "nowhere", "priority": 1}]
    )
    with pytest.raises(ConfigError, match="unknown layout 'nowhere'"):
        prepare_publication(SeededContent(content.manifest), publish, tmp_path)


def test_changed_items_ignores_untouched_items() -> None:
    manifest = load_content("demo").manifest
    assert changed_items(manifest, manifest) == frozenset()


def test_asset_of_item_names_media_items() -> None:
    manifest = load_content("demo").manifest
    assert asset_of_item(manifest, "clip") in {a.sha256 for a in manifest.assets}
    with pytest.raises(ConfigError, match="no image or video item 'ticker'"):
        asset_of_item(manifest, "ticker")
