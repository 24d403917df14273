"""``signage bench video --renderer``: a clip on each presentation path, side by side."""

from __future__ import annotations

import pytest

from tools.bench._video import DEFAULT_CLIPS
from tools.bench._video_paths import format_rows, run_paths

pytestmark = pytest.mark.slow


def test_each_path_plays_the_clip_and_names_its_gl_renderer() -> None:
    rows = run_paths(
        [DEFAULT_CLIPS / "h264_320x180_2s.mp4"], ["gl", "software"], 1.5, headless=True
    )
    assert [row.get("error") for row in rows] == [None, None]
    gl, software = rows
    assert (gl["path"], software["path"]) == ("gl", "software")
    assert gl["gl_renderer"] and software["gl_renderer"] is None
    assert gl["software_rasteriser"] == ("llvmpipe" in gl["gl_renderer"])
    for row in rows:
        assert row["clip_fps"] == 25.0
        assert 0 < row["presented"] <= row["expected"] + 2
        assert row["cpu_ms_per_frame"] > 0
    table = "\n".join(format_rows(rows))
    assert "SOFTWARE RASTERISER" in table or not gl["software_rasteriser"]
    assert "presented/expected" in table and "dropped" in table
