from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from core import ConfigError, ServerConfig, Settings, load_settings, settings_to_toml, state_dir


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "player.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, env={})
    assert settings == Settings()
    assert settings.player.preload_ms == 2000
    assert settings.sync.heartbeat_interval_s == 30.0


def test_valid_file_is_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        data_dir = "/var/lib/signage"
        [sync]
        server_url = "https://signage.example.org"
        heartbeat_interval_s = 45
        [display]
        rotation = 90
        fullscreen = false
        [player]
        reboot_command = ["sudo", "reboot"]
        """,
    )
    settings = load_settings(path, env={})
    assert settings.sync.server_url == "https://signage.example.org"
    assert settings.sync.heartbeat_interval_s == 45.0
    assert settings.display.rotation == 90
    assert settings.display.fullscreen is False
    assert settings.player.reboot_command == ["sudo", "reboot"]
    assert settings.data_dir == Path("/var/lib/signage")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [sync]
        heartbeat_intervl_s = 30
        poll_interval_s = "fast"
        [display]
        rotation = 45
        [cache]
        parallel_downloads = 0
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    problems = caught.value.problems
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "sync.heartbeat_intervl_s: unknown key; did you mean 'heartbeat_interval_s'?" in text
    assert 'sync.poll_interval_s: Input should be a valid number (got "fast")' in text
    assert "display.rotation" in text and "(got 45)" in text
    assert "cache.parallel_downloads" in text and "(got 0)" in text
    assert str(path) in str(caught.value)


def test_a_number_written_as_a_string_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, '[server]\nport = "8080"\n'), env={})
    assert caught.value.problems == ['server.port: Input should be a valid integer (got "8080")']


def test_unknown_section_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[plyer]\npreload_ms = 1\n"), env={})
    assert caught.value.problems == ["plyer: unknown key; did you mean 'player'?"]


def test_unknown_key_far_from_any_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[logging]\nzzz = 1\n"), env={})
    assert caught.value.problems == ["logging.zzz: unknown key; known keys: level, format"]


def test_invalid_toml_and_missing_file_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[sync\n"), env={})
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "absent.toml", env={})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[sync]\nheartbeat_interval_s = 45\n")
    env = {
        "SIGNAGE_SYNC__HEARTBEAT_INTERVAL_S": "20",
        "SIGNAGE_DISPLAY__FULLSCREEN": "false",
        "SIGNAGE_SYNC__SERVER_URL": "http://127.0.0.1:8080",
        "SIGNAGE_ADMIN_TOKEN": "an-admin-token-value",
        "UNRELATED": "x",
    }
    settings = load_settings(path, env=env)
    assert settings.sync.heartbeat_interval_s == 20.0
    assert settings.display.fullscreen is False
    assert settings.sync.server_url == "http://127.0.0.1:8080"
    assert settings.server.admin_token is not None
    assert settings.server.admin_token.get_secret_value() == "an-admin-token-value"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None, env={"SIGNAGE_SERVER__PORT": "eighty", "SIGNAGE_SYNC__POLL_INTERVL_S": "5"}
        )
    assert caught.value.problems == [
        "sync.poll_intervl_s (from SIGNAGE_SYNC__POLL_INTERVL_S): unknown key; "
        "did you mean 'poll_interval_s'?",
        'server.port (from SIGNAGE_SERVER__PORT): Input should be a valid integer (got "eighty")',
    ]


def test_secrets_are_masked_when_printed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nadmin_token = "s3cret-admin-token"\n'
        'database_url = "postgresql://u:hunter2@db/signage"\n',
    )
    settings = load_settings(path, env={})
    shown = settings_to_toml(settings) + repr(settings) + str(settings)
    assert "s3cret-admin-token" not in shown
    assert "hunter2" not in shown
    assert 'admin_token = "********"' in settings_to_toml(settings)


def test_state_dir_precedence(tmp_path: Path) -> None:
    assert state_dir(tmp_path / "x", env={"STATE_DIRECTORY": "/var/lib/s"}) == tmp_path / "x"
    assert state_dir(env={"STATE_DIRECTORY": "/var/lib/s:/var/lib/t"}) == Path("/var/lib/s")
    assert state_dir(env={"XDG_DATA_HOME": "/xdg"}) == Path("/xdg/signage")
    assert state_dir(env={"HOME": "/home/pi"}) == Path("/home/pi/.local/share/signage")


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert ServerConfig(forwarded_allow_ips="10.0.0.5, 192.168.0.0/16,::1").forwarded_allow_ips
    assert ServerConfig(forwarded_allow_ips="").forwarded_allow_ips == ""
    assert ServerConfig(forwarded_allow_ips="*").forwarded_allow_ips == "*"
    with pytest.raises(ValidationError, match=r"'proxy\.example' is not an address"):
        ServerConfig(forwarded_allow_ips="10.0.0.5,proxy.example")
