"""``signage play``: a local manifest, a directory of arbitrarily named files, headless."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pygame
import pytest

from player import read_timeline
from tests.player.conftest import BLUE, DATA, RED, image, manifest
from tools import main


def write_manifest(path: Path, *items: dict[str, object]) -> Path:
    m = manifest(("p1", list(items)))
    path.write_text(m.model_dump_json(by_alias=True))
    return path


def run_play(tmp_path: Path, manifest_file: Path, assets: Path) -> tuple[int, Path, Path]:
    timeline, shot = tmp_path / "timeline.jsonl", tmp_path / "shot.png"
    code = main(
        [
            "play",
            "--manifest", str(manifest_file),
            "--assets", str(assets),
            "--timeline", str(timeline),
            "--duration", "2",
            "--screenshot", str(shot),
            "--headless",
        ]
    )  # fmt: skip
    return code, timeline, shot


def centre(shot: Path) -> tuple[int, int, int]:
    picture = pygame.image.load(str(shot))
    colour = picture.get_at((32, 18))
    return colour.r, colour.g, colour.b


def test_plays_files_found_by_hash_whatever_their_names(tmp_path: Path) -> None:
    assets = tmp_path / "media"
    assets.mkdir()
    shutil.copy(DATA / "red.png", assets / "IMG_0001")
    (assets / "notes.txt").write_text("ignored")
    manifest_file = write_manifest(tmp_path / "m.json", image("a", RED, 60_000))
    code, timeline, shot = run_play(tmp_path, manifest_file, assets)
    assert code == 0
    assert centre(shot) == (220, 30, 30)
    events = read_timeline(timeline)
    assert [e["item"] for e in events if e["event"] == "start"] == ["a"]
    assert [e["state"] for e in events if e["event"] == "state"][:3] == [
        "idle",
        "loading",
        "playing",
    ]
    assert {"t", "wall", "device", "layout", "zone", "item", "event", "due", "late_ms"} <= set(
        events[0]
    )


def test_a_file_whose_hash_does_not_match_is_never_shown(tmp_path: Path) -> None:
    assets = tmp_path / "media"
    assets.mkdir()
    shutil.copy(DATA / "red.png", assets / f"{BLUE}.png")  # named like the asset, wrong bytes
    manifest_file = write_manifest(tmp_path / "m.json", image("b", BLUE, 60_000))
    code, timeline, shot = run_play(tmp_path, manifest_file, assets)
    assert code == 0
    assert centre(shot) not in ((220, 30, 30), (30, 60, 220))
    assert not [e for e in read_timeline(timeline) if e["event"] == "start"]


def test_invalid_manifest_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "layouts": [{"id": "l", "zones": []}]}))
    assert main(["play", "--manifest", str(bad), "--assets", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "layouts.0.zones" in err


def test_missing_asset_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest_file = write_manifest(tmp_path / "m.json", image("a", RED))
    assert main(["play", "--manifest", str(manifest_file), "--assets", str(tmp_path / "no")]) == 1
    assert "not a directory" in capsys.readouterr().err
