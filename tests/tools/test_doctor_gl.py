"""``signage doctor``'s checks of what the GL path needs: the OpenGL it gets, a Pi's KMS
overlay and GPU nodes, the service user's groups, the packages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tools.cli._checks import (
    GL_PACKAGES,
    Status,
    _run_command,
    check_gl,
    check_gl_packages,
    check_groups,
    check_pi_gpu,
)

from .test_doctor import probe, settings

V3D = {"vendor": "Broadcom", "renderer": "V3D 4.2.14.0", "version": "OpenGL ES 3.1 Mesa 23.2.1"}


def answering(reply: dict[str, object], code: int = 0):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str]) -> tuple[int, str]:
        return code, json.dumps(reply) + "\n"

    return run


def test_gl_on_a_gpu_names_it(tmp_path: Path) -> None:
    finding = check_gl(probe(tmp_path, run=answering({**V3D, "software": False})))
    assert finding.status is Status.OK
    assert "V3D 4.2.14.0" in finding.detail and "OpenGL ES 3.1" in finding.detail
    assert "Broadcom" in finding.detail


def test_gl_on_a_software_rasteriser_warns_and_says_what_to_fix(tmp_path: Path) -> None:
    reply = {"vendor": "Mesa", "renderer": "llvmpipe (LLVM 15.0.6, 256 bits)",
             "version": "OpenGL ES 3.2 Mesa 22.3.6", "software": True}  # fmt: skip
    finding = check_gl(probe(tmp_path, run=answering(reply)))
    assert finding.status is Status.WARN
    assert "llvmpipe" in finding.detail and "software rasteriser" in finding.detail
    assert finding.fix is not None and "vc4-kms-v3d" in finding.fix


@pytest.mark.parametrize(("renderer", "status"), [("auto", Status.WARN), ("gl", Status.FAIL)])
def test_no_gl_context_warns_or_fails_when_gl_is_required(
    tmp_path: Path, renderer: str, status: Status
) -> None:
    configured = settings(display={"renderer": renderer})
    finding = check_gl(
        probe(tmp_path, settings=configured, run=answering({"error": "no EGL"}, code=0))
    )
    assert finding.status is status
    assert "no EGL" in finding.detail
    assert finding.fix is not None and "libegl1" in finding.fix


def test_gl_is_not_probed_when_software_is_configured(tmp_path: Path) -> None:
    def run(argv: Sequence[str]) -> tuple[int, str]:
        raise AssertionError("no probe")

    configured = settings(display={"renderer": "software"})
    assert check_gl(probe(tmp_path, settings=configured, run=run)).status is Status.OK


def test_gl_probe_on_this_machine_reports_its_real_renderer(tmp_path: Path, gl: None) -> None:
    finding = check_gl(probe(tmp_path, run=_run_command))
    assert "OpenGL" in finding.detail, finding
    if "llvmpipe" in finding.detail:
        assert finding.status is Status.WARN


def _pi(tmp_path: Path, config: str | None, nodes: Sequence[str] = ()) -> dict[str, object]:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\x00")
    boot = tmp_path / "config.txt"
    if config is not None:
        boot.write_text(config)
    dri = tmp_path / "dri"
    dri.mkdir(exist_ok=True)
    for node in nodes:
        (dri / node).touch()
    return {"model_file": model, "boot_configs": (boot,), "dri_dir": dri}


def test_not_a_pi_has_nothing_to_check(tmp_path: Path) -> None:
    finding = check_pi_gpu(probe(tmp_path, model_file=tmp_path / "absent"))
    assert finding.status is Status.OK and "not a Raspberry Pi" in finding.detail


@pytest.mark.parametrize(
    ("config", "what"),
    [
        ("[all]\n#dtoverlay=vc4-kms-v3d\n", "no KMS overlay"),
        ("[all]\ndtoverlay=vc4-fkms-v3d\n", "fake KMS"),
        (None, "no KMS overlay"),
    ],
)
def test_a_pi_without_the_kms_overlay_fails(tmp_path: Path, config: str | None, what: str) -> None:
    finding = check_pi_gpu(probe(tmp_path, **_pi(tmp_path, config)))
    assert finding.status is Status.FAIL
    assert what in finding.detail and "Raspberry Pi 4" in finding.detail
    assert finding.fix is not None and "dtoverlay=vc4-kms-v3d" in finding.fix


def test_a_pi_with_the_overlay_needs_its_device_nodes(tmp_path: Path) -> None:
    config = "[all]\ndtoverlay=vc4-kms-v3d,cma-512 # the GPU\n"
    finding = check_pi_gpu(probe(tmp_path, **_pi(tmp_path, config, ["card1"])))
    assert finding.status is Status.FAIL and "renderD*" in finding.detail
    finding = check_pi_gpu(probe(tmp_path, **_pi(tmp_path, config, ["card1", "renderD128"])))
    assert finding.status is Status.OK
    assert "card1" in finding.detail and "renderD128" in finding.detail


def _groups(output: str, code: int = 0):  # type: ignore[no-untyped-def]
    def run(argv: Sequence[str]) -> tuple[int, str]:
        assert list(argv) == ["id", "-nG", "signage"]
        return code, output

    return run


def test_the_service_user_needs_video_and_render(tmp_path: Path) -> None:
    finding = check_groups(probe(tmp_path, run=_groups("signage video input audio\n")))
    assert finding.status is Status.FAIL and "render" in finding.detail
    assert finding.fix is not None and "usermod -aG video,render" in finding.fix
    good = check_groups(probe(tmp_path, run=_groups("signage video render input audio\n")))
    assert good.status is Status.OK
    assert check_groups(probe(tmp_path, run=_groups("", code=1))).status is Status.WARN


def test_missing_gl_packages_are_named(tmp_path: Path) -> None:
    def dpkg(installed: set[str]):  # type: ignore[no-untyped-def]
        def run(argv: Sequence[str]) -> tuple[int, str]:
            package = argv[-1]
            return (0, "install ok installed") if package in installed else (1, "")

        return run

    finding = check_gl_packages(probe(tmp_path, run=dpkg({"libegl1"})))
    assert finding.status is Status.WARN
    assert "libgles2" in finding.detail and "libgl1-mesa-dri" in finding.detail
    assert finding.fix == "sudo apt install libgles2 libgl1-mesa-dri"
    assert check_gl_packages(probe(tmp_path, run=dpkg(set(GL_PACKAGES)))).status is Status.OK
