"""``signage sim --renderer gl``: the same timeline and the same frames as the software path.

Two devices in one process on the GL path: one offscreen OpenGL context (SDL offscreen + EGL),
a framebuffer per device, frames read back with glReadPixels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pygame
import pytest

from player import read_timeline
from tools import main

from ..zones.gl_support import TOLERANCE, difference
from .test_sim_e2e import demo_without_video

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("gl")]


def _run(out: Path, content: Path, renderer: str) -> dict[str, Any]:
    code = main(
        [
            "sim", "--duration", "40", "--speed", "max", "--devices", "2", "--frames", "first",
            "--start", "2026-11-23T18:59:40+01:00", "--content", str(content),
            "--renderer", renderer, "--out", str(out), "-q",
        ]
    )  # fmt: skip
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def _starts(out: Path, device: str) -> list[tuple[str, str, str, float]]:
    """(layout, zone, item, due relative to its layout's first start) of every start event:
    when the first layout starts depends on how long pairing took in real time, the rest
    follows from deadlines and the schedule."""
    starts = [
        r for r in read_timeline(out / "timeline.jsonl")
        if r["device"] == device and r["event"] == "start"
    ]  # fmt: skip
    first: dict[str, float] = {}
    for r in starts:
        first.setdefault(r["layout"], r["due"])
    return [
        (r["layout"], r["zone"], r["item"], round(r["due"] - first[r["layout"]], 3)) for r in starts
    ]


def _frames(out: Path, device: str) -> list[Path]:
    return sorted((out / "frames" / device).glob("*.png"))


def test_the_gl_path_writes_the_same_timeline_and_frames(tmp_path: Path) -> None:
    content = demo_without_video(tmp_path / "demo")
    software = _run(tmp_path / "software", content, "software")
    gl = _run(tmp_path / "gl", content, "gl")
    for summary in (software, gl):
        assert summary["errors"] == 0 and summary["black_frames"] == 0
    assert gl["switches"] == software["switches"] > 0
    for device in ("sim-1", "sim-2"):
        expected = _starts(tmp_path / "software", device)
        assert _starts(tmp_path / "gl", device) == expected
        assert {layout for layout, *_ in expected} == {"day", "evening"}
        ours, theirs = _frames(tmp_path / "gl", device), _frames(tmp_path / "software", device)
        assert len(ours) == len(theirs) >= 4
        for a, b in zip(ours, theirs, strict=True):
            assert a.name.split("_", 1)[1] == b.name.split("_", 1)[1]  # layout, zone, item
            assert difference(pygame.image.load(a), pygame.image.load(b)) <= TOLERANCE, a.name
