"""install.sh in a staging root, checked file by file, and its refusals."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

from core import PlayerConfig, load_settings
from tests.systemd.conftest import INSTALL_SH, REPO, SYSTEMD_DIR, Installer

SERVER = "http://10.0.0.5:8080"
PI_CMDLINE = (
    "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
    "fsck.repair=yes rootwait consoleblank=600\n"
)
EXPECTED_FILES = {
    "etc/signage/player.toml": 0o644,
    "etc/systemd/system/signage-player.service": 0o644,
    "etc/systemd/system/signage-server.service": 0o644,
    "etc/systemd/system/signage-server@.service": 0o644,
    "etc/sysusers.d/signage.conf": 0o644,
    "etc/systemd/journald.conf.d/signage.conf": 0o644,
    "etc/polkit-1/rules.d/50-signage-reboot.rules": 0o644,
    "opt/signage/docs/install.md": 0o644,
}


def files_under(root: Path, *, with_source: bool = False) -> dict[str, bytes]:
    """Every file under ``root``; the copied source tree (/opt/signage/src) only when asked."""
    files = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_file() and (with_source or not name.startswith("opt/signage/src/")):
            files[name] = path.read_bytes()
    return files


def test_the_code_is_installed_from_a_clean_copy(install: Installer, stage: Path) -> None:
    done = install("--server", SERVER)
    assert done.returncode == 0, done.stderr
    assert f"copied: {REPO} to /opt/signage/src" in done.stdout
    copy = stage / "opt/signage/src"
    for name in ("pyproject.toml", "constraints.txt", "core/__init__.py", "systemd/install.sh"):
        assert (copy / name).read_bytes() == (REPO / name).read_bytes(), name
    leftovers = [p for p in copy.rglob("*") if p.name in {".git", ".venv", "build", "__pycache__"}]
    assert leftovers == []
    assert not list(copy.glob("*.egg-info"))
    assert (copy / "systemd/install.sh").stat().st_mode & 0o111  # modes survive the copy


def test_shellcheck_is_clean() -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: ./dev installs it with apt"
    done = subprocess.run(
        ["shellcheck", "--shell=bash", str(INSTALL_SH)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_staged_install_writes_each_file_with_its_mode(install: Installer, stage: Path) -> None:
    done = install("--server", SERVER, "--name", "lobby 1")
    assert done.returncode == 0, done.stderr
    assert files_under(stage).keys() == EXPECTED_FILES.keys()
    for name, mode in EXPECTED_FILES.items():
        assert stat.S_IMODE((stage / name).stat().st_mode) == mode, name
    for unit in ("signage-player.service", "signage-server.service", "signage-server@.service"):
        installed = (stage / "etc/systemd/system" / unit).read_bytes()
        assert installed == (SYSTEMD_DIR / unit).read_bytes()
    assert (stage / "etc/sysusers.d/signage.conf").read_bytes() == (
        SYSTEMD_DIR / "signage.sysusers"
    ).read_bytes()
    assert (stage / "opt/signage/docs/install.md").read_bytes() == (
        REPO / "docs/install.md"
    ).read_bytes()
    rule = (stage / "etc/polkit-1/rules.d/50-signage-reboot.rules").read_text()
    assert 'subject.user === "signage"' in rule
    assert '"org.freedesktop.login1.reboot"' in rule


def test_player_toml_is_valid_and_names_the_server(install: Installer, stage: Path) -> None:
    assert install("--server", SERVER, "--name", "lobby 1").returncode == 0
    path = stage / "etc/signage/player.toml"
    settings = load_settings(path, env={})
    assert settings.sync.server_url == SERVER
    assert settings.sync.device_name == "lobby 1"
    # systemctl reboot through polkit: sudo cannot work under NoNewPrivileges=yes.
    assert settings.player.reboot_command == ["systemctl", "reboot"]
    assert settings.display.hide_cursor


def test_journal_is_capped(install: Installer, stage: Path) -> None:
    assert install("--server", SERVER).returncode == 0
    dropin = (stage / "etc/systemd/journald.conf.d/signage.conf").read_text()
    assert "[Journal]" in dropin
    assert "SystemMaxUse=64M" in dropin
    assert "@" not in dropin
    assert install("--server", SERVER, "--journal-max", "32M").returncode == 0
    assert "SystemMaxUse=32M" in (stage / "etc/systemd/journald.conf.d/signage.conf").read_text()


def test_sysusers_file_creates_the_user_in_its_groups(install: Installer, stage: Path) -> None:
    assert install("--server", SERVER).returncode == 0
    target = stage.parent / "sysusers-root"
    (target / "etc").mkdir(parents=True)
    done = subprocess.run(
        ["systemd-sysusers", f"--root={target}", str(stage / "etc/sysusers.d/signage.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (target / "etc/passwd").read_text().splitlines()
    }
    assert passwd["signage"][5:] == ["/var/lib/signage", "/usr/sbin/nologin"]
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (target / "etc/group").read_text().splitlines()
    }
    for group in ("video", "render", "input", "audio"):
        assert "signage" in groups[group], group
    # The server's replicas share one state directory, so one fixed user, in no device group.
    assert passwd["signage-server"][5:] == ["/var/lib/signage-server", "/usr/sbin/nologin"]
    assert not any("signage-server" in members for members in groups.values())


def test_commands_are_printed_not_run(install: Installer) -> None:
    done = install("--server", SERVER)
    assert done.returncode == 0, done.stderr
    commands = done.commands
    apt_install = next(c for c in commands if "apt-get install" in c)
    for package in ("libmpv2", "fonts-dejavu-core", "python3-venv", "polkitd", "v4l-utils"):
        assert package in apt_install.split()
    assert "ffmpeg" not in apt_install.split(), "only the server needs ffprobe"
    assert "systemd-sysusers /etc/sysusers.d/signage.conf" in commands
    assert "python3 -m venv /opt/signage/venv" in commands
    pip = next(c for c in commands if " pip install " in c)
    assert pip.startswith("/opt/signage/venv/bin/python -m pip install")
    # Built from the copy: pip would leave root-owned build/ and *.egg-info in the checkout.
    assert pip.endswith("-c /opt/signage/src/constraints.txt /opt/signage/src")
    assert "/opt/signage/venv/bin/signage config check /etc/signage/player.toml" in commands
    # Masked: logind's autovt@tty1 is the same getty and would stop the player at boot.
    assert "systemctl mask getty@tty1.service autovt@tty1.service" in commands
    assert "systemctl enable signage-player.service" in commands
    assert "systemctl restart signage-player.service" in commands
    assert not any("signage-server" in c for c in commands)
    assert commands.index("systemctl daemon-reload") < commands.index(
        "systemctl enable signage-player.service"
    )
    no_apt = install("--server", SERVER, "--no-apt", "--no-start")
    assert not any("apt-get" in c for c in no_apt.commands)
    assert not any("restart signage-player" in c for c in no_apt.commands)


def test_rerun_is_idempotent(install: Installer, stage: Path) -> None:
    (stage / "boot/firmware").mkdir(parents=True)
    (stage / "boot/firmware/cmdline.txt").write_text(PI_CMDLINE)
    assert install("--server", SERVER).returncode == 0
    first = files_under(stage, with_source=True)
    again = install("--server", SERVER)
    assert again.returncode == 0
    assert again.written == []
    assert files_under(stage, with_source=True) == first


def test_cmdline_blanking_and_cursor_off_then_restored(install: Installer, stage: Path) -> None:
    cmdline = stage / "boot/firmware/cmdline.txt"
    cmdline.parent.mkdir(parents=True)
    cmdline.write_text(PI_CMDLINE)
    assert install("--server", SERVER).returncode == 0
    tokens = cmdline.read_text().split()
    assert cmdline.read_text().count("\n") == 1  # still one line, as the firmware wants
    assert "consoleblank=0" in tokens
    assert "consoleblank=600" not in tokens
    assert tokens.count("vt.global_cursor_default=0") == 1
    assert tokens[:6] == PI_CMDLINE.split()[:6]
    assert install("--server", SERVER).returncode == 0
    assert cmdline.read_text().split() == tokens
    done = install("--uninstall")
    assert done.returncode == 0, done.stderr
    assert cmdline.read_text() == PI_CMDLINE


def test_legacy_boot_cmdline_location(install: Installer, stage: Path) -> None:
    (stage / "boot").mkdir()
    (stage / "boot/cmdline.txt").write_text("console=tty1 root=/dev/mmcblk0p2 rootwait\n")
    assert install("--server", SERVER).returncode == 0
    assert (stage / "boot/cmdline.txt").read_text() == (
        "console=tty1 root=/dev/mmcblk0p2 rootwait consoleblank=0 vt.global_cursor_default=0\n"
    )
    assert not (stage / "boot/firmware").exists()


def test_existing_config_keeps_edits_and_takes_a_new_server(
    install: Installer, stage: Path
) -> None:
    assert install("--server", SERVER).returncode == 0
    path = stage / "etc/signage/player.toml"
    path.write_text(path.read_text() + "\n[cache]\nmax_bytes = 2147483648\n")
    assert install().returncode == 0  # no --server: the file is kept as it is
    assert "max_bytes = 2147483648" in path.read_text()
    assert install("--server", "https://signage.example.org", "--name", "hall").returncode == 0
    data = tomllib.loads(path.read_text())
    assert data["sync"] == {"server_url": "https://signage.example.org", "device_name": "hall"}
    assert data["cache"]["max_bytes"] == 2147483648


def test_with_server_installs_and_enables_the_reference_server(
    install: Installer, stage: Path
) -> None:
    done = install("--with-server")
    assert done.returncode == 0, done.stderr
    assert load_settings(stage / "etc/signage/player.toml", env={}).sync.server_url == (
        "http://127.0.0.1:8080"
    )
    server = load_settings(stage / "etc/signage/server.toml", env={}).server
    assert (server.host, server.port) == ("0.0.0.0", 8080)
    assert "systemctl enable signage-server.service" in done.commands
    assert "systemctl restart signage-server.service" in done.commands
    apt_install = next(c for c in done.commands if "apt-get install" in c)
    assert "ffmpeg" in apt_install.split(), "the server probes uploads with ffprobe"


def test_no_reboot_command_leaves_out_the_permission(install: Installer, stage: Path) -> None:
    assert install("--server", SERVER, "--no-reboot-command").returncode == 0
    assert not (stage / "etc/polkit-1/rules.d/50-signage-reboot.rules").exists()
    settings = load_settings(stage / "etc/signage/player.toml", env={})
    assert settings.player.reboot_command is None


def test_dry_run_writes_nothing(install: Installer, stage: Path) -> None:
    done = install("--server", SERVER, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert files_under(stage, with_source=True) == {}
    assert f"would copy: {REPO} to /opt/signage/src" in done.stdout
    assert "would write: /etc/signage/player.toml (mode 0644)" in done.stdout
    assert "systemctl enable signage-player.service" in done.commands


def test_uninstall_keeps_configuration_and_state_unless_purged(
    install: Installer, stage: Path
) -> None:
    assert install("--server", SERVER).returncode == 0
    state = stage / "var/lib/signage"
    state.mkdir(parents=True)
    (state / "credentials.json").write_text("{}")
    done = install("--uninstall")
    assert done.returncode == 0, done.stderr
    assert "systemctl disable --now signage-player.service signage-server.service" in done.commands
    assert "systemctl unmask getty@tty1.service autovt@tty1.service" in done.commands
    assert "systemctl start getty@tty1.service" in done.commands
    assert set(files_under(stage)) == {
        "etc/signage/player.toml",
        "etc/sysusers.d/signage.conf",
        "var/lib/signage/credentials.json",
    }
    assert not (stage / "opt/signage").exists()
    purged = install("--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert files_under(stage) == {}
    assert "userdel signage" in purged.commands


def test_bad_input_is_refused_with_a_clear_error(install: Installer, stage: Path) -> None:
    cases = {
        (): "--server URL is required",
        ("--server", "ftp://x"): "expected http://",
        ("--server", 'http://x/"injected'): "expected http://",
        ("--server", SERVER, "--name", 'a"b'): "--name",
        ("--server", SERVER, "--journal-max", "lots"): "--journal-max",
        ("--frobnicate",): "unknown option: --frobnicate",
        ("--purge",): "--purge goes with --uninstall",
        ("--server", SERVER, "--source", str(stage)): "not a signage checkout",
    }
    for args, message in cases.items():
        done = install(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        # The exit code is the process's status, not part of the sentence.
        error = next(line for line in done.stderr.splitlines() if ": error: " in line)
        assert not re.search(r" [0-9]+$", error), error
    assert files_under(stage) == {}
    missing = install("--server", SERVER, root=stage / "absent")
    assert missing.returncode == 2
    assert "no such directory" in missing.stderr


def test_a_real_install_needs_root(install: Installer, tmp_path: Path) -> None:
    fake = tmp_path / "not-root"
    fake.mkdir()
    (fake / "id").write_text("#!/bin/sh\necho 1000\n")
    (fake / "id").chmod(0o755)
    done = install("--server", SERVER, root=None, extra_path=fake)
    assert done.returncode == 1
    assert "run as root" in done.stderr
    assert done.stderr.rstrip().endswith("or stage with --root DIR / --dry-run"), done.stderr


def test_restart_exit_code_default_matches_the_unit() -> None:
    unit = (SYSTEMD_DIR / "signage-player.service").read_text()
    code = str(PlayerConfig().restart_exit_code)
    assert f"SuccessExitStatus={code}\n" in unit
    assert f"RestartForceExitStatus={code}\n" in unit


def test_server_url_is_asked_for_on_a_terminal(stage: Path, trap_bin: Path) -> None:
    """Interactive runs prompt for the URL; a bad answer is refused like a bad --server."""
    for answer, code in (("not-a-url", 2), (SERVER, 0)):
        main, terminal = os.openpty()
        try:
            os.write(main, f"{answer}\n".encode())
            done = subprocess.run(
                [str(INSTALL_SH), "--root", str(stage)],
                stdin=terminal,
                capture_output=True,
                text=True,
                env={**os.environ, "PATH": f"{trap_bin}:{os.environ['PATH']}"},
                timeout=120,
                check=False,
            )
        finally:
            os.close(main)
            os.close(terminal)
        assert done.returncode == code, done.stderr
        assert "Signage server URL" in done.stderr
    settings = load_settings(stage / "etc/signage/player.toml", env={})
    assert settings.sync.server_url == SERVER


SHARED_STATE = (
    'database_url = "postgresql+asyncpg://signage:secret@db.internal/signage"\n'
    'redis_url = "redis://redis.internal:6379/0"\n'
)


def test_server_replicas_need_redis(install: Installer, stage: Path) -> None:
    """Without it each replica would keep a fleet of its own: refused before any change."""
    first = install("--server-replicas", "2")
    assert first.returncode == 1
    config = stage / "etc/signage/server.toml"
    assert first.written == ["/etc/signage/server.toml"]  # the keys to fill in, and nothing else
    assert "set server.redis_url (and server.database_url) there" in first.stderr
    assert first.commands == []
    written = tomllib.loads(config.read_text())
    assert written == {"server": {"host": "127.0.0.1"}}  # the two keys are commented examples
    assert "# redis_url = " in config.read_text()
    config.write_text(config.read_text().replace("# redis_url", "#redis_url"))
    again = install("--server-replicas", "3")
    assert again.returncode == 1
    assert "3 replicas need server.redis_url in /etc/signage/server.toml" in again.stderr
    assert files_under(stage).keys() == {"etc/signage/server.toml"}
    # SQLite in the shared data dir is allowed on one machine (docs/server.md, One machine).
    config.write_text(config.read_text() + 'redis_url = "redis://127.0.0.1:6379/0"\n')
    assert install("--server-replicas", "3").returncode == 0


def test_server_replicas_are_enabled_scaled_and_uninstalled(
    install: Installer, stage: Path
) -> None:
    config = stage / "etc/signage/server.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[server]\n" + SHARED_STATE)
    done = install("--server-replicas", "3")
    assert done.returncode == 0, done.stderr
    assert config.read_text() == "[server]\n" + SHARED_STATE  # kept as the operator wrote it
    units = "signage-server@8080.service signage-server@8081.service signage-server@8082.service"
    assert f"systemctl enable {units}" in done.commands
    assert f"systemctl restart {units}" in done.commands
    # The single server would take port 8080 and a state directory of its own.
    assert "systemctl disable --now signage-server.service" in done.commands
    assert "systemctl enable signage-server.service" not in done.commands
    assert load_settings(stage / "etc/signage/player.toml", env={}).sync.server_url == (
        "http://127.0.0.1:8080"
    )
    apt_install = next(c for c in done.commands if "apt-get install" in c)
    assert "ffmpeg" in apt_install.split()
    assert install("--server-replicas", "3").written == []  # a rerun changes nothing

    fewer = install("--server-replicas", "1", "--no-start")
    assert fewer.returncode == 0, fewer.stderr
    assert "systemctl disable --now signage-server@8082.service" in fewer.commands
    assert "systemctl disable --now signage-server@8081.service" in fewer.commands
    assert "systemctl enable signage-server@8080.service" in fewer.commands
    assert not any("restart signage-server" in c for c in fewer.commands)

    plain = install("--server", SERVER)  # a rerun that does not name the server leaves it
    assert not any("signage-server" in c for c in plain.commands)

    gone = install("--uninstall", "--purge")
    assert gone.returncode == 0, gone.stderr
    assert (
        "systemctl disable --now signage-player.service signage-server.service "
        "signage-server@8080.service"
    ) in gone.commands
    assert "userdel signage-server" in gone.commands
    assert files_under(stage) == {}


def test_with_server_retires_the_replicas(install: Installer, stage: Path) -> None:
    config = stage / "etc/signage/server.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[server]\n" + SHARED_STATE)
    assert install("--server-replicas", "2").returncode == 0
    single = install("--with-server")
    assert single.returncode == 0, single.stderr
    assert "systemctl disable --now signage-server@8080.service" in single.commands
    assert "systemctl disable --now signage-server@8081.service" in single.commands
    assert "systemctl enable signage-server.service" in single.commands
    assert not (stage / "opt/signage/server-replicas").exists()


def test_bad_server_replicas_are_refused(install: Installer, stage: Path) -> None:
    for args, message in {
        ("--server-replicas", "0"): "expected a number from 1 to 16",
        ("--server-replicas", "17"): "expected a number from 1 to 16",
        ("--server-replicas", "two"): "expected a number from 1 to 16",
        ("--server-replicas",): "--server-replicas needs a number",
        ("--with-server", "--server-replicas", "2"): "--with-server or --server-replicas",
    }.items():
        done = install(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
    assert files_under(stage) == {}
