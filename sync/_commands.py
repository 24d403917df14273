"""Remote commands: each id runs at most once (the ledger outlives restarts) and is acknowledged.

``restart`` and ``reboot`` record their result before acting, so the acknowledgement is sent
after the restart if the process dies first, and a redelivered command does not loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from core import DeviceRevoked, PlayerConfig
from protocol import Command, CommandResult
from sync._client import DeviceClient, RequestFailed
from sync._host import DeviceHost
from sync._store import CommandLedger

log = logging.getLogger(__name__)

ACK_RETRY_S = 30.0


class RestartRequested(Exception):
    """The server asked the player to restart: exit with ``exit_code`` (systemd restarts it)."""

    def __init__(self, exit_code: int) -> None:
        self.exit_code = exit_code
        super().__init__(f"restart requested (exit code {exit_code})")


class CommandRunner:
    def __init__(
        self,
        client: DeviceClient,
        ledger: CommandLedger,
        host: DeviceHost,
        config: PlayerConfig,
        *,
        identity: Callable[[], str],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        """``now``: the device's wall time, which a command's expiry is read against."""
        self.client = client
        self._now = now
        self.ledger = ledger
        self.host = host
        self.config = config
        self.identity = identity
        self.executed: list[str] = []
        self._queue: asyncio.Queue[Command] = asyncio.Queue()

    async def submit(self, command: Command) -> None:
        self._queue.put_nowait(command)

    async def submit_all(self, commands: list[Command]) -> None:
        for command in commands:
            self._queue.put_nowait(command)

    async def _ack(self, command_id: str, result: CommandResult) -> bool:
        try:
            await self.client.command_result(command_id, result)
        except RequestFailed as exc:
            if exc.transient:
                log.warning(
                    "command result not delivered; will retry",
                    extra={"fields": {"command": command_id, "error": str(exc)}},
                )
                return False
            # The server no longer knows this command (expired, deleted): nothing to retry.
            log.warning("command result refused", extra={"fields": {"command": command_id}})
        await asyncio.to_thread(self.ledger.mark_acked, command_id)
        return True

    async def deliver_pending(self) -> bool:
        """Send results left unacknowledged (by a restart or an outage); True when all went."""
        delivered = True
        for command_id, result in await asyncio.to_thread(self.ledger.unacked):
            if result is None:
                result = CommandResult(ok=False, message="interrupted by a restart of the player")
                await asyncio.to_thread(self.ledger.record_result, command_id, result)
            delivered = await self._ack(command_id, result) and delivered
        return delivered

    async def _reboot(self, command_id: str) -> CommandResult:
        argv = self.config.reboot_command
        if not argv:
            return CommandResult(ok=False, message="reboot is disabled (player.reboot_command)")
        # Recorded first: if the machine goes down before the ack, the next boot sends it.
        rebooting = CommandResult(ok=True, message="rebooting")
        await asyncio.to_thread(self.ledger.record_result, command_id, rebooting)
        process = await asyncio.create_subprocess_exec(*argv)
        code = await process.wait()
        if code != 0:
            return CommandResult(ok=False, message=f"{argv[0]} exited with {code}")
        return CommandResult(ok=True, message="rebooting")

    async def _execute(self, command: Command) -> CommandResult:
        name = command.name
        if name == "reload":
            await self.host.reload()
        elif name == "screenshot":
            png = await self.host.screenshot()
            await self.client.screenshot(png, command_id=command.id)
            return CommandResult(ok=True, message="screenshot uploaded", data={"bytes": len(png)})
        elif name == "clear_cache":
            await self.host.clear_cache()
        elif name == "identify":
            seconds = command.args.get("seconds", self.config.identify_s)
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
                return CommandResult(ok=False, message=f"identify: bad 'seconds' {seconds!r}")
            self.host.identify(self.identity(), float(seconds))
        elif name == "reboot":
            return await self._reboot(command.id)
        elif name in ("display_on", "display_off"):
            return await self._display_power(name == "display_on", command)
        return CommandResult(ok=True)

    async def _display_power(self, on: bool, command: Command) -> CommandResult:
        seconds = command.args.get("seconds")
        if seconds is not None and (
            not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0
        ):
            return CommandResult(ok=False, message=f"{command.name}: bad 'seconds' {seconds!r}")
        await self.host.display_power(on, None if seconds is None else float(seconds))
        power = self.host.status().power
        if power is None:
            return CommandResult(ok=True)
        data: dict[str, str | int | float | bool | None] = {
            "backend": power.backend,
            "display": power.display,
        }
        if power.error:
            return CommandResult(ok=False, message=power.error, data=data)
        return CommandResult(ok=True, message=f"screen {power.wanted}", data=data)

    async def handle(self, command: Command) -> bool:
        """Run ``command`` unless its id was seen; False when its result is still undelivered."""
        if not await asyncio.to_thread(self.ledger.claim, command):
            log.info(
                "command already handled; not running it again",
                extra={"fields": {"command": command.id, "name": command.name}},
            )
            return True
        log.info("running command", extra={"fields": {"command": command.id, "name": command.name}})
        self.executed.append(command.id)
        if command.expires_at is not None and command.expires_at < self._now():
            result = CommandResult(ok=False, message="expired before it reached the device")
        elif command.name == "restart":
            result = CommandResult(ok=True, message="restarting")
            await asyncio.to_thread(self.ledger.record_result, command.id, result)
            await self._ack(command.id, result)
            raise RestartRequested(self.config.restart_exit_code)
        else:
            try:
                result = await self._execute(command)
            except (DeviceRevoked, asyncio.CancelledError):
                raise
            except Exception as exc:
                log.exception("command failed", extra={"fields": {"command": command.id}})
                result = CommandResult(ok=False, message=f"{type(exc).__name__}: {exc}"[:2000])
        await asyncio.to_thread(self.ledger.record_result, command.id, result)
        return await self._ack(command.id, result)

    async def run(self) -> None:
        """Execute queued commands in order; retry undelivered results meanwhile."""
        pending = not await self.deliver_pending()
        while True:
            try:
                command = await asyncio.wait_for(
                    self._queue.get(), timeout=ACK_RETRY_S if pending else None
                )
            except TimeoutError:
                pending = not await self.deliver_pending()
                continue
            pending = not await self.handle(command) or pending
            if pending:
                pending = not await self.deliver_pending()
