"""Commands run once per id, are acknowledged, and restart/reboot behave as documented."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from core import PlayerConfig
from protocol import Command, CommandResult
from sync import CommandLedger, CommandRunner, DeviceClient, RestartRequested, open_database
from tests.sync.device_fakes import PNG, FakeHost


class Server:
    """Records command results and screenshots; can be made to fail."""

    def __init__(self) -> None:
        self.results: dict[str, list[CommandResult]] = {}
        self.screenshots: list[bytes] = []
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        path = request.url.path
        if path.endswith("/result"):
            command_id = path.split("/")[-2]
            result = CommandResult.model_validate(json.loads(request.content))
            self.results.setdefault(command_id, []).append(result)
            return httpx.Response(204)
        if path.endswith("/screenshots"):
            assert request.headers["content-type"] == "image/png"
            self.screenshots.append(request.content)
            return httpx.Response(204)
        return httpx.Response(404)


def runner(
    tmp_path: Path, server: Server, host: FakeHost, config: PlayerConfig | None = None
) -> CommandRunner:
    client = DeviceClient(
        httpx.AsyncClient(transport=httpx.MockTransport(server)),
        "http://s.test",
        token="tok_0123456789abcdef",
    )
    return CommandRunner(
        client,
        CommandLedger(open_database(tmp_path)),
        host,
        config or PlayerConfig(),
        identity=lambda: "Lobby\nd1",
    )


@pytest.mark.parametrize("name", ["reload", "clear_cache", "identify", "screenshot"])
async def test_each_command_runs_and_is_acknowledged(tmp_path: Path, name: str) -> None:
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host).handle(Command(id="c1", name=name))
    assert server.results["c1"][0].ok
    assert (host.reloads, host.cache_clears, len(host.identified), host.screenshots) == (
        int(name == "reload"),
        int(name == "clear_cache"),
        int(name == "identify"),
        int(name == "screenshot"),
    )


async def test_screenshot_uploads_the_composed_png(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host).handle(Command(id="c1", name="screenshot"))
    assert server.screenshots == [PNG]
    assert server.results["c1"][0].data == {"bytes": len(PNG)}


async def test_identify_shows_name_and_id_for_the_configured_time(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    run = runner(tmp_path, server, host)
    await run.handle(Command(id="c1", name="identify"))
    await run.handle(Command(id="c2", name="identify", args={"seconds": 5}))
    await run.handle(Command(id="c3", name="identify", args={"seconds": "long"}))
    assert host.identified == [("Lobby\nd1", 30.0), ("Lobby\nd1", 5.0)]
    assert not server.results["c3"][0].ok


async def test_command_delivered_twice_runs_once(tmp_path: Path) -> None:
    """Vizora 7.6 / Plaisoram idempotency: SSE replay and heartbeat both deliver a command."""
    server, host = Server(), FakeHost()
    run = runner(tmp_path, server, host)
    await run.handle(Command(id="c1", name="reload"))
    await run.handle(Command(id="c1", name="reload"))
    await runner(tmp_path, server, host).handle(Command(id="c1", name="reload"))
    assert host.reloads == 1
    assert len(server.results["c1"]) == 1


async def test_restart_acknowledges_then_asks_for_the_documented_exit_code(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    run = runner(tmp_path, server, host, PlayerConfig(restart_exit_code=75))
    with pytest.raises(RestartRequested) as caught:
        await run.handle(Command(id="c1", name="restart"))
    assert caught.value.exit_code == 75
    assert server.results["c1"][0].ok
    # Redelivered after the restart: it must not restart again.
    assert await runner(tmp_path, server, host).handle(Command(id="c1", name="restart"))


async def test_reboot_is_disabled_by_default(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host).handle(Command(id="c1", name="reboot"))
    result = server.results["c1"][0]
    assert not result.ok and result.message is not None and "disabled" in result.message


async def test_reboot_runs_the_configured_command(tmp_path: Path) -> None:
    marker = tmp_path / "rebooted"
    config = PlayerConfig(reboot_command=["touch", str(marker)])
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host, config).handle(Command(id="c1", name="reboot"))
    assert marker.exists()
    assert server.results["c1"][0].ok


async def test_failing_reboot_command_is_reported(tmp_path: Path) -> None:
    config = PlayerConfig(reboot_command=["false"])
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host, config).handle(Command(id="c1", name="reboot"))
    assert not server.results["c1"][0].ok


async def test_results_undelivered_during_an_outage_are_sent_later(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    server.down = True
    run = runner(tmp_path, server, host)
    assert not await run.handle(Command(id="c1", name="reload"))
    server.down = False
    assert await runner(tmp_path, server, host).deliver_pending()
    assert server.results["c1"][0].ok
    assert host.reloads == 1


async def test_command_interrupted_by_a_crash_is_reported_not_rerun(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    CommandLedger(open_database(tmp_path)).claim(Command(id="c1", name="reload"))
    assert await runner(tmp_path, server, host).deliver_pending()
    assert not server.results["c1"][0].ok
    assert host.reloads == 0


async def test_display_off_and_on_reach_the_screen_once_each(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    run = runner(tmp_path, server, host)
    await run.handle(Command(id="c1", name="display_off", args={"seconds": 600}))
    await run.handle(Command(id="c1", name="display_off", args={"seconds": 600}))
    await run.handle(Command(id="c2", name="display_on"))
    assert host.display_commands == [(False, 600.0), (True, None)]
    first = server.results["c1"][0]
    assert (first.ok, first.message, first.data) == (
        True,
        "screen off",
        {"backend": "none", "display": "unknown"},
    )


async def test_a_screen_that_does_not_confirm_is_a_failed_command(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    assert host.power is not None
    host.power = host.power.model_copy(
        update={"backend": "cec", "error": "the screen did not confirm standby: it reports on"}
    )
    await runner(tmp_path, server, host).handle(Command(id="c1", name="display_off"))
    result = server.results["c1"][0]
    assert not result.ok and result.message is not None and "did not confirm" in result.message


async def test_display_power_refuses_bad_seconds(tmp_path: Path) -> None:
    server, host = Server(), FakeHost()
    await runner(tmp_path, server, host).handle(
        Command(id="c1", name="display_on", args={"seconds": -5})
    )
    assert not server.results["c1"][0].ok
    assert host.display_commands == []
