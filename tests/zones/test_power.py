"""Screen power backends against a fake ``cec-ctl``/``xset`` on PATH that records its calls."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import DisplayConfig, PlayerError
from tests.fakes.fake_cec import FakeTv
from zones import CecPower, DrmPower, NoPower, X11Power, choose_power


@pytest.fixture
def tv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTv]:
    fake = FakeTv(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{fake.dir}{os.pathsep}{os.environ['PATH']}")
    yield fake


@pytest.fixture
def adapter(tmp_path: Path) -> str:
    device = tmp_path / "cec0"
    device.touch()
    return str(device)


def test_cec_puts_the_tv_in_standby_and_wakes_it(tv: FakeTv, adapter: str) -> None:
    cec = CecPower(adapter)
    assert cec.probe() is None
    cec.set(False)
    assert tv.power == "standby"
    assert cec.read() == "standby"
    cec.set(True)
    assert tv.power == "on"
    assert cec.read() == "on"
    sent = [call[3:] for call in tv.calls() if call[0] == "cec-ctl"]
    assert sent[0] == ["--playback", "--osd-name", "signage"], "configured once, first"
    assert ["--to", "0", "--standby"] in sent
    assert ["--to", "0", "--image-view-on"] in sent
    # Woken, the TV is asked to switch to our input (the physical address cec-ctl reported).
    assert ["--to", "0", "--active-source", "phys-addr=1.0.0.0"] in sent
    assert sum(1 for c in sent if c[0] == "--playback") == 1
    assert all(call[1:3] == ["-d", adapter] for call in tv.calls())


def test_a_tv_that_ignores_cec_is_reported_not_assumed_off(tv: FakeTv, adapter: str) -> None:
    tv.set(answers=False)
    cec = CecPower(adapter)
    reason = cec.probe()
    assert reason is not None and "does not answer HDMI-CEC" in reason
    cec.set(False)  # sent; the TV ignores it
    assert tv.power == "on"
    assert cec.read() == "unknown"


def test_cec_failures_are_errors_with_the_tools_words(tv: FakeTv, adapter: str) -> None:
    tv.set(fail=True)
    cec = CecPower(adapter)
    reason = cec.probe()
    assert reason is not None and "No such device" in reason
    with pytest.raises(PlayerError, match="No such device"):
        cec.set(False)
    assert cec.read() == "unknown"


def test_cec_without_the_tool_or_the_adapter_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert CecPower(str(tmp_path)).probe() == "cec-ctl not found (apt install v4l-utils)"
    tv = FakeTv(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(tv.dir))
    assert CecPower(str(tmp_path / "cec9")).probe() == f"no CEC adapter at {tmp_path / 'cec9'}"


def test_x11_forces_dpms_and_reads_the_monitor_back(tv: FakeTv) -> None:
    x11 = X11Power({"DISPLAY": ":7"})
    assert x11.probe() is None
    x11.set(False)
    assert x11.read() == "standby"
    x11.set(True)
    assert x11.read() == "on"
    sent = [call[3:] for call in tv.calls() if call[0] == "xset"]
    assert ["+dpms"] in sent and ["dpms", "0", "0", "0"] in sent
    assert ["dpms", "force", "off"] in sent and ["dpms", "force", "on"] in sent
    assert all(call[1:3] == ["-display", ":7"] for call in tv.calls())
    assert X11Power({}).probe() == "no X session ($DISPLAY is unset)"


def test_drm_needs_the_player_on_kmsdrm() -> None:
    reason = DrmPower().probe()
    assert reason is not None and "kmsdrm" in reason
    with pytest.raises(PlayerError, match="DPMS through DRM"):
        DrmPower().set(False)
    assert DrmPower().read() == "unknown"


def test_auto_takes_the_first_backend_that_works_for_the_players_screen(
    tv: FakeTv, adapter: str
) -> None:
    config = DisplayConfig(cec_device=adapter)
    chosen, passed = choose_power(config, video_driver="x11", env={"DISPLAY": ":0"})
    assert chosen.name == "cec" and passed == []
    tv.set(answers=False)
    chosen, passed = choose_power(config, video_driver="x11", env={"DISPLAY": ":0"})
    assert chosen.name == "x11"
    assert passed[0].startswith("cec: the TV does not answer")
    assert passed[1] == "drm: the player does not show through kmsdrm"
    # Headless (the simulator, the tests): nothing is switched, not even a desktop's monitor.
    chosen, passed = choose_power(config, video_driver="dummy", env={"DISPLAY": ":0"})
    assert isinstance(chosen, NoPower)
    assert [p.split(":")[0] for p in passed] == ["cec", "drm", "x11"]


def test_a_backend_named_in_the_configuration_is_used_even_when_it_cannot_work(
    tmp_path: Path,
) -> None:
    chosen, passed = choose_power(
        DisplayConfig(power="cec", cec_device=str(tmp_path / "none")), video_driver="dummy"
    )
    assert chosen.name == "cec" and passed == []
