"""``signage admin`` and ``AdminClient`` against a real server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server import AdminApiError, AdminClient, RunningServer, run_in_thread
from tests.media import padded_mp4
from tests.server.conftest import PNG, make_settings
from tools import main


@pytest.fixture
def live(tmp_path: Path) -> Iterator[RunningServer]:
    with run_in_thread(make_settings(), tmp_path / "srv") as running:
        yield running


def _pairing(live: RunningServer, hw: str = "hw-1") -> dict[str, str]:
    body: dict[str, str] = httpx.post(
        f"{live.url}/api/v1/pairings", json={"hardware_id": hw}
    ).json()
    return body


def _admin(live: RunningServer, tmp_path: Path, *args: str) -> list[str]:
    return [
        *args,
        "--server",
        live.url,
        "--token",
        live.admin_token,
        "--data-dir",
        str(tmp_path / "cli"),
    ]


class CutOnce(httpx.HTTPTransport):
    """Drops the connection on the Nth chunk PUT, as a flaky uplink would."""

    def __init__(self, cut_at: int) -> None:
        super().__init__()
        self.cut_at = cut_at
        self.puts = 0
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts += 1
            if self.puts == self.cut_at:
                raise httpx.ReadError("connection reset", request=request)
            self.sent.append(request.headers["content-range"])
        return super().handle_request(request)


def test_upload_resumes_after_a_cut(live: RunningServer, tmp_path: Path) -> None:
    payload = padded_mp4(10_000 - len(padded_mp4(0)))  # a real clip, 10 kB
    path = tmp_path / "clip.mp4"
    path.write_bytes(payload)
    transport = CutOnce(cut_at=3)
    with AdminClient(live.url, live.admin_token, transport=transport) as client:
        sha = client.upload(path, chunk_size=4096)
        media = client.request("GET", f"/api/v1/admin/media/{sha}")
    assert media["size"] == len(payload) and media["mime"] == "video/mp4"
    # The cut chunk is sent again; the ones already stored are not.
    size = len(payload)
    assert transport.puts == 4
    assert transport.sent == [
        f"bytes 0-4095/{size}",
        f"bytes 4096-8191/{size}",
        f"bytes 8192-{size - 1}/{size}",
    ]


def test_admin_cli_pairs_publishes_commands_and_revokes(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairing = _pairing(live)
    assert main(_admin(live, tmp_path, "admin", "pair", pairing["code"], "--name", "Lobby")) == 0
    device_id = capsys.readouterr().out.strip()
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    assert main(_admin(live, tmp_path, "admin", "upload", str(image))) == 0
    sha = capsys.readouterr().out.strip().splitlines()[-1]
    (tmp_path / "p.toml").write_text(
        f'id = "p"\n[[items]]\nid = "i"\ntype = "image"\nasset = "{sha}"\n', encoding="utf-8"
    )
    layout = {"id": "l", "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "p"}]}
    (tmp_path / "l.json").write_text(json.dumps(layout), encoding="utf-8")
    assert main(_admin(live, tmp_path, "admin", "playlist", str(tmp_path / "p.toml"))) == 0
    assert main(_admin(live, tmp_path, "admin", "layout", str(tmp_path / "l.json"))) == 0
    assert main(_admin(live, tmp_path, "admin", "assign", device_id, "--layout", "l")) == 0
    capsys.readouterr()
    assert main(_admin(live, tmp_path, "admin", "devices", "--json")) == 0
    devices = json.loads(capsys.readouterr().out)
    assert devices[0]["id"] == device_id and devices[0]["manifest_version"] == 2
    assert (
        main(_admin(live, tmp_path, "admin", "command", device_id, "identify", "--arg", "s=5")) == 0
    )
    command = json.loads(capsys.readouterr().out)
    assert command["name"] == "identify" and command["args"] == {"s": 5}
    assert main(_admin(live, tmp_path, "admin", "revoke", device_id)) == 0
    capsys.readouterr()
    assert main(_admin(live, tmp_path, "admin", "revoke", device_id)) == 1
    assert "device_not_found" in capsys.readouterr().err


def test_admin_client_raises_problem_codes(live: RunningServer) -> None:
    with AdminClient(live.url, live.admin_token) as client, pytest.raises(AdminApiError) as caught:
        client.claim("123456", "nobody")
    assert caught.value.status == 404 and caught.value.code == "pairing_not_found"


def test_admin_cli_makes_a_group_play_in_step(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with AdminClient(live.url, live.admin_token) as client:
        client.put_group("wall", "Wall")
    epoch = "2026-11-21T08:00:00+01:00"
    assert main(_admin(live, tmp_path, "admin", "sync", "wall", "--epoch", epoch)) == 0
    assert json.loads(capsys.readouterr().out)["sync"] == {"epoch": "2026-11-21T07:00:00Z"}
    assert main(_admin(live, tmp_path, "admin", "sync", "wall", "--off")) == 0
    assert json.loads(capsys.readouterr().out)["sync"] is None
    with pytest.raises(SystemExit):
        main(_admin(live, tmp_path, "admin", "sync", "wall", "--epoch", "2026-11-21T08:00"))
    assert "--epoch needs a UTC offset" in capsys.readouterr().err
    assert main(_admin(live, tmp_path, "admin", "sync", "nowhere")) == 1
    assert "group_not_found" in capsys.readouterr().err


def test_admin_cli_interrupts_clears_and_sets_power(
    live: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairing = _pairing(live)
    assert main(_admin(live, tmp_path, "admin", "pair", pairing["code"], "--name", "Lobby")) == 0
    device_id = capsys.readouterr().out.strip()
    playlist = {"id": "alert", "items": [{"id": "t", "type": "text", "text": "Fire drill"}]}
    layout = {"id": "alert", "zones": [{"id": "z", "w": 10, "h": 10, "playlist": "alert"}]}
    (tmp_path / "p.json").write_text(json.dumps(playlist), encoding="utf-8")
    (tmp_path / "l.json").write_text(json.dumps(layout), encoding="utf-8")
    assert main(_admin(live, tmp_path, "admin", "playlist", str(tmp_path / "p.json"))) == 0
    assert main(_admin(live, tmp_path, "admin", "layout", str(tmp_path / "l.json"))) == 0
    capsys.readouterr()
    args = ("admin", "interrupt", device_id, "--layout", "alert", "--for", "10m", "--json")
    assert main(_admin(live, tmp_path, *args)) == 0
    sent = json.loads(capsys.readouterr().out)
    seconds = (
        dt.datetime.fromisoformat(sent["ends_at"]) - dt.datetime.fromisoformat(sent["starts_at"])
    ).total_seconds()
    assert (sent["status"], seconds) == ("active", 600)
    assert main(_admin(live, tmp_path, "admin", "interrupts", "--live")) == 0
    assert sent["id"] in capsys.readouterr().out
    assert main(_admin(live, tmp_path, "admin", "clear", sent["id"])) == 0
    assert capsys.readouterr().out.strip() == f"{sent['id']}: cleared"
    bad = ("admin", "interrupt", device_id, "--layout", "alert", "--for", "soon")
    assert main(_admin(live, tmp_path, *bad)) == 1
    assert "--for takes a duration" in capsys.readouterr().err
    (tmp_path / "power.toml").write_text(
        '[[on]]\ndays = ["mon", "tue", "wed", "thu", "fri"]\nfrom = "07:00"\nto = "20:00"\n',
        encoding="utf-8",
    )
    assert (
        main(_admin(live, tmp_path, "admin", "power", device_id, str(tmp_path / "power.toml"))) == 0
    )
    assert json.loads(capsys.readouterr().out)["on"][0]["to"] == "20:00"
    assert main(_admin(live, tmp_path, "admin", "power", device_id, "--clear")) == 0
    capsys.readouterr()
    assert main(_admin(live, tmp_path, "admin", "power", device_id)) == 1
    assert "power_not_set" in capsys.readouterr().err
