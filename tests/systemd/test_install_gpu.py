"""install.sh sets up what the GL path needs on Raspberry Pi OS: the KMS overlay in config.txt
(restored by --uninstall), the OpenGL ES packages, the user in video and render."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.systemd.conftest import Installer

SERVER = "http://10.0.0.5:8080"
BOOKWORM = """# For more options and information see
# http://rptl.io/configtxt

# Automatically load overlays for detected DSI displays
display_auto_detect=1

[cm4]
otg_mode=1

[all]
"""
MARK = "# signage: the GPU's KMS driver (KMSDRM display and OpenGL ES for the player)"


def _config(stage: Path, text: str, where: str = "boot/firmware") -> Path:
    path = stage / where / "config.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_missing_kms_overlay_is_added_under_all_and_removed_again(
    install: Installer, stage: Path
) -> None:
    config = _config(stage, BOOKWORM + "#dtoverlay=vc4-kms-v3d\n")
    done = install("--server", SERVER)
    assert done.returncode == 0, done.stderr
    lines = config.read_text().splitlines()
    assert lines[-3:] == [MARK, "[all]", "dtoverlay=vc4-kms-v3d"], "after any [pi4]/[cm4] filter"
    assert "reboot now" in done.stderr
    assert install("--server", SERVER).written == [], "a rerun changes nothing"
    assert install("--uninstall").returncode == 0
    assert config.read_text() == BOOKWORM + "#dtoverlay=vc4-kms-v3d\n"


def test_fake_kms_is_replaced_and_restored(install: Installer, stage: Path) -> None:
    original = BOOKWORM.replace(
        "[all]\n", "[all]\ndtoverlay=vc4-fkms-v3d,cma-256\nmax_framebuffers=2\n"
    )
    config = _config(stage, original, "boot")
    assert install("--server", SERVER).returncode == 0
    text = config.read_text()
    assert "vc4-fkms-v3d" not in text
    assert "[all]\ndtoverlay=vc4-kms-v3d\nmax_framebuffers=2\n" in text
    assert install("--uninstall").returncode == 0
    assert config.read_text() == original


@pytest.mark.parametrize("line", ["dtoverlay=vc4-kms-v3d", "dtoverlay=vc4-kms-v3d,cma-512"])
def test_an_image_that_has_the_overlay_is_left_alone(
    install: Installer, stage: Path, line: str
) -> None:
    config = _config(stage, BOOKWORM + line + "\nmax_framebuffers=2\n")
    done = install("--server", SERVER)
    assert done.returncode == 0
    assert "/boot/firmware/config.txt" not in done.written
    assert "reboot now" not in done.stderr
    assert install("--uninstall").returncode == 0
    assert config.read_text() == BOOKWORM + line + "\nmax_framebuffers=2\n"


def test_not_a_pi_needs_no_overlay(install: Installer, stage: Path) -> None:
    done = install("--server", SERVER)
    assert done.returncode == 0
    assert "not a Raspberry Pi" in done.stderr
    assert not (stage / "boot").exists()


def test_opengl_es_packages_and_the_gpu_groups(install: Installer, stage: Path) -> None:
    done = install("--server", SERVER)
    apt = next(c for c in done.commands if "apt-get install" in c)
    for package in ("libegl1", "libgles2", "libgl1-mesa-dri", "libmpv2"):
        assert package in apt.split(), package
    sysusers = (stage / "etc/sysusers.d/signage.conf").read_text().splitlines()
    assert "m signage video" in sysusers and "m signage render" in sysusers


def test_dry_run_writes_no_config_txt(install: Installer, stage: Path) -> None:
    config = _config(stage, BOOKWORM)
    done = install("--server", SERVER, "--dry-run")
    assert done.returncode == 0
    assert config.read_text() == BOOKWORM
