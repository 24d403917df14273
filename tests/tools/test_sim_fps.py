"""How fast the simulated players animate: ``--fps``, the scenario, and ``--speed max``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import build_parser
from tools.cli._sim import MAX_SPEED_FPS, build_options


def options_for(*args: str) -> float | None:
    parsed = build_parser().parse_args(["sim", "--out", "unused", *args])
    fps: float | None = build_options(parsed).fps
    return fps


def test_max_speed_samples_animation_at_a_low_documented_rate() -> None:
    assert options_for("--speed", "max") == MAX_SPEED_FPS == 0.1


def test_fps_asks_for_more_and_may_be_a_fraction() -> None:
    assert options_for("--speed", "max", "--fps", "2") == 2.0
    assert options_for("--speed", "max", "--fps", "0.5") == 0.5


def test_real_and_paced_speeds_keep_the_players_own_frame_rate() -> None:
    assert options_for("--speed", "1") is None
    assert options_for("--speed", "4") is None


def test_a_scenario_frame_rate_wins_over_the_max_speed_default(tmp_path: Path) -> None:
    scenario = tmp_path / "smooth.toml"
    scenario.write_text(
        'description = "smooth"\n[run]\nspeed = "max"\nduration = 5\n'
        "[settings]\nplayer = { frame_rate_hz = 30 }\n"
    )
    assert options_for("--scenario", str(scenario)) is None  # the settings' 30 Hz applies


@pytest.mark.parametrize("bad", ["0", "-1", "fast", "500"])
def test_bad_fps_is_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--fps", bad])
    assert "--fps" in capsys.readouterr().err
