"""The player's [video] settings reach the video zone, whether or not mpv is loaded yet."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from core import Settings, VideoConfig
from player import MediaClock, Player
from zones import OffscreenDisplay, configure_renderer, renderer_config


class _NoAssets:
    def is_ready(self, sha256: str) -> bool:
        return False

    def path_of(self, sha256: str) -> Path:
        raise LookupError(sha256)

    def add_listener(self, callback: Callable[[str], None]) -> None:
        return None


def _active_video_config() -> VideoConfig:
    import zones._video as video

    return video._registered[-1].config


async def test_player_start_applies_the_video_section() -> None:
    settings = Settings.model_validate({"video": {"volume": 37, "spare_handles": 1}})
    player = Player(
        settings, clock=MediaClock(), assets=_NoAssets(), display=OffscreenDisplay((32, 18))
    )
    await player.start()
    try:
        assert renderer_config("video") == settings.video
        assert _active_video_config() == settings.video
    finally:
        await player.stop()
        configure_renderer("video", VideoConfig())
    assert _active_video_config() == VideoConfig()


def test_settings_given_before_mpv_loads_apply_when_it_loads() -> None:
    code = (
        "import sys; from core import VideoConfig; import zones\n"
        "zones.configure_renderer('video', VideoConfig(volume=12))\n"
        "assert 'zones._video' not in sys.modules and 'mpv' not in sys.modules\n"
        "import zones._video as v\n"
        "print(v._registered[-1].config.volume)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "12"
