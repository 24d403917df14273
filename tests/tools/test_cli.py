from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tools import build_parser, main


def _subcommand_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(_subcommand_paths(sub, (*prefix, name)))
    return paths


@pytest.mark.parametrize("path", _subcommand_paths(build_parser()), ids=" ".join)
def test_every_subcommand_has_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: signage")
    assert len(out.splitlines()) > 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("signage 0.")


def test_config_check_names_every_problem_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "player.toml"
    path.write_text('[sync]\nheartbeat_intervl_s = 30\npoll_interval_s = "soon"\n')
    assert main(["config", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: invalid" in err
    assert "sync.heartbeat_intervl_s: unknown key; did you mean 'heartbeat_interval_s'?" in err
    assert 'sync.poll_interval_s: Input should be a valid number (got "soon")' in err


def test_config_check_accepts_a_valid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "player.toml"
    path.write_text("[player]\npreload_ms = 1500\n")
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_config_show_masks_secrets_and_applies_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "player.toml"
    path.write_text('[server]\nadmin_token = "very-secret-admin-token"\n')
    monkeypatch.setenv("SIGNAGE_PLAYER__PRELOAD_MS", "1234")
    assert main(["config", "show", "--config", str(path), "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "very-secret-admin-token" not in out
    assert 'admin_token = "********"' in out
    assert "preload_ms = 1234" in out
    assert f"# state directory: {tmp_path / 'd'}" in out


def test_config_show_reports_an_invalid_file_readably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "player.toml"
    path.write_text("[display]\nrotation = 45\n")
    assert main(["config", "show", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("signage: 1 configuration problem(s) in")
    assert "display.rotation" in err


def test_unknown_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["frobnicate"])
    assert exited.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_console_script_runs_without_pulling_in_heavy_modules() -> None:
    code = (
        "import sys; from tools import main; main(['version']); "
        "heavy = {'pygame', 'mpv', 'fastapi', 'sqlalchemy', 'pkg_resources'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
