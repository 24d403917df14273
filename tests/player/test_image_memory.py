"""Peak memory of a real ``signage play`` showing a 9,400 x 9,400 PNG in a 1080p zone.

Decoding it whole as RGB took the player to 1,114 MB of RSS. The picture is now decoded in the
image decoder process at the size it is shown: the player keeps only the fitted pixels, and the
decoder's own peak is bounded by converting it strip by strip. Both peaks are read from the
kernel (``VmHWM``, the high-water mark of each process's resident memory).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from player import read_timeline, sha256_of
from tests.media import MediaMaker

LIMIT_MB = 400


def _peak_mb(process: psutil.Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_a_huge_png_costs_the_player_a_fraction_of_its_decoded_size(
    tmp_path: Path, media: MediaMaker
) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(media("huge_palette.png"), assets / "huge.png")
    sha = sha256_of(assets / "huge.png")
    manifest = {
        "version": 1,
        "assets": [{"sha256": sha, "size": 1, "mime": "image/png"}],
        "playlists": [
            {"id": "p", "items": [{"id": "huge", "type": "image", "asset": sha}]},
        ],
        "layouts": [
            {"id": "l", "zones": [{"id": "main", "w": 1920, "h": 1080, "playlist": "p"}]},
        ],
        "default_layout": "l",
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    timeline = tmp_path / "timeline.jsonl"
    command = [
        sys.executable, "-m", "tools", "play", "--headless",
        "--manifest", str(tmp_path / "manifest.json"), "--assets", str(assets),
        "--data-dir", str(tmp_path / "state"), "--timeline", str(timeline),
    ]  # fmt: skip
    player = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process = psutil.Process(player.pid)
        deadline = time.monotonic() + 120
        while not (
            timeline.exists() and any(e["event"] == "start" for e in read_timeline(timeline))
        ):
            assert player.poll() is None and time.monotonic() < deadline, "it never showed"
            time.sleep(0.1)
        (decoder,) = process.children()
        player_mb, decoder_mb = _peak_mb(process), _peak_mb(decoder)
    finally:
        player.terminate()
        player.wait(30)
    assert player_mb < LIMIT_MB, f"player peak RSS {player_mb:.0f} MB"
    assert decoder_mb < LIMIT_MB, f"decoder peak RSS {decoder_mb:.0f} MB"
    print(f"peak RSS: player {player_mb:.0f} MB, image decoder {decoder_mb:.0f} MB")
