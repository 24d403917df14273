"""The sync agent: pairs the device, then runs heartbeat, manifest watcher, commands and proof
of play until cancelled. A 401 anywhere wipes the credentials and goes back to pairing; the
asset cache is the host's and is kept."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import platform
import socket
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import httpx

from core import DeviceRevoked, ProtocolError, RetryPolicy, Settings, atomic_write_text
from protocol import Manifest, ManifestConfig, PairingCreated, PairingRequest
from sync._client import DeviceClient, RequestFailed
from sync._commands import CommandRunner, RestartRequested
from sync._heartbeat import HeartbeatLoop, SyncReport
from sync._host import DeviceHost
from sync._impressions import ImpressionRecorder
from sync._metrics import HostSampler
from sync._pairing import pair, utc_now
from sync._state import Credentials, CredentialStore, ManifestStore
from sync._store import CommandLedger, ImpressionQueue, open_database
from sync._timesync import HttpTimeLink, TimeLink, TimeSync
from sync._watcher import ManifestWatcher, WatcherTiming

log = logging.getLogger(__name__)

HARDWARE_ID_FILE = "hardware-id"
SESSION_RETRY = RetryPolicy(initial_s=30.0, max_s=300.0)


def player_version() -> str:
    try:
        return metadata.version("signage")[:32]
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _hardware_id(state_dir: Path, configured: str | None) -> str:
    """A stable id for this box: configured, else /etc/machine-id, else one made and kept."""
    if configured:
        return configured
    for source in (Path("/etc/machine-id"), state_dir / HARDWARE_ID_FILE):
        try:
            value = source.read_text().strip()
        except OSError:
            continue
        if value:
            return value[:128]
    value = uuid.uuid4().hex
    atomic_write_text(state_dir / HARDWARE_ID_FILE, value)
    return value


def _first_of(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that matters in a task group's failure: revocation or restart first."""
    for kind in (RestartRequested, DeviceRevoked):
        match = group.subgroup(kind)
        if match is not None:
            leaf: BaseException = match
            while isinstance(leaf, BaseExceptionGroup):
                leaf = leaf.exceptions[0]
            return leaf
    return group


class SyncAgent:
    def __init__(
        self,
        settings: Settings,
        state_dir: Path,
        host: DeviceHost,
        *,
        http: httpx.AsyncClient,
        server_url: str,
        time_link: TimeLink | None = None,
        wall: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        """``time_link``: how clock exchanges are made (default: over HTTP with the server;
        the simulator passes a simulated network). ``wall``: the device's wall time (the
        player's clock, set from the server's until NTP has synchronised the system's), which
        expiries are read against."""
        self.settings = settings
        self.wall = wall
        self.state_dir = Path(state_dir)
        self.host = host
        self.server_url = server_url.rstrip("/")
        self.client = DeviceClient(http, self.server_url)
        self.credentials = CredentialStore(self.state_dir)
        self.manifests = ManifestStore(self.state_dir)
        self.report = SyncReport()
        self.db = open_database(self.state_dir)
        self.recorder = ImpressionRecorder(ImpressionQueue(self.db), self.report)
        self.ledger = CommandLedger(self.db)
        self.device_id: str | None = None
        self.pairings = 0
        self.pairing_code: str | None = None  # the code on screen (the simulator claims it)
        # The server's timing as last heard (stored manifest, manifest, config event).
        self.server_config = ManifestConfig()
        self.watcher: ManifestWatcher | None = None
        self.heartbeat: HeartbeatLoop | None = None
        self.commands: CommandRunner | None = None
        # Group time is kept only while the manifest puts the device in a sync group.
        self._time_http = HttpTimeLink(self.client)
        self.timesync = TimeSync(
            time_link or self._time_http,
            host.clock,
            host.set_clock_estimate,
            interval_s=settings.sync.time_interval_s,
            prefer_system=settings.sync.time_source == "system",
            system_time=host.system_time_ns,
        )

    # --- offline start ----------------------------------------------------------------------

    async def restore(self) -> bool:
        """Hand the persisted manifest to the host: the device plays before any network call."""
        stored = await asyncio.to_thread(self.manifests.load)
        if stored is None or await asyncio.to_thread(self.credentials.load) is None:
            return False
        self.report.manifest_etag = stored.etag
        self.report.manifest_version = stored.manifest.version
        self.server_config = stored.manifest.config
        self.timesync.want(stored.manifest.sync is not None)
        log.info(
            "playing the stored manifest",
            extra={"fields": {"version": stored.manifest.version, "etag": stored.etag}},
        )
        await self.host.apply_manifest(stored.manifest)
        return True

    async def _apply(self, manifest: Manifest, etag: str | None) -> None:
        await asyncio.to_thread(self.manifests.save, manifest, etag)
        self.timesync.want(manifest.sync is not None)
        try:
            await self.host.apply_manifest(manifest)
        except (DeviceRevoked, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("could not apply the manifest", extra={"fields": {"etag": etag}})
            self.report.manifest_error = f"apply failed: {type(exc).__name__}: {exc}"[:500]

    # --- pairing ----------------------------------------------------------------------------

    def _show_code(self, created: PairingCreated) -> None:
        self.pairings += 1
        self.pairing_code = created.code
        self.host.show_pairing(created.code, self.server_url, self._name(), created.expires_at)

    def _name(self) -> str:
        return self.settings.sync.device_name or socket.gethostname()[:64] or "signage"

    async def _pair(self) -> Credentials:
        display = self.settings.display
        resolution = (
            f"{display.width}x{display.height}" if display.width and display.height else None
        )
        request = PairingRequest(
            hardware_id=_hardware_id(self.state_dir, self.settings.sync.hardware_id),
            name=self._name(),
            model=platform.machine()[:128] or None,
            resolution=resolution,
            player_version=player_version(),
        )
        credentials = await pair(self.client, request, self._show_code, now=self.wall)
        await asyncio.to_thread(self.credentials.save, credentials)
        return credentials

    async def _credentials(self) -> Credentials:
        stored = await asyncio.to_thread(self.credentials.load)
        if stored is not None and stored.server_url.rstrip("/") == self.server_url:
            return stored
        if stored is not None:
            log.warning(
                "credentials belong to another server; pairing again",
                extra={"fields": {"stored": stored.server_url, "server": self.server_url}},
            )
        return await self._pair()

    # --- paired session ---------------------------------------------------------------------

    def _on_config(self, config: ManifestConfig) -> None:
        self.server_config = config
        if self.heartbeat is not None:
            self.heartbeat.set_interval(float(config.heartbeat_interval_s))

    def _build(self) -> tuple[HeartbeatLoop, ManifestWatcher, CommandRunner]:
        sync = self.settings.sync
        commands = CommandRunner(
            self.client,
            self.ledger,
            self.host,
            self.settings.player,
            identity=lambda: f"{self._name()}\n{self.device_id}",
            now=self.wall,
        )
        watcher = ManifestWatcher(
            self.client,
            self.report,
            self._apply,
            on_command=commands.submit,
            on_config=self._on_config,
            timing=WatcherTiming(
                ping_s=float(self.server_config.sse_ping_s),
                poll_interval_s=sync.poll_interval_s,
                failures_before_poll=sync.sse_failures_before_poll,
                backoff_initial_s=min(1.0, sync.backoff_max_s),
                backoff_max_s=sync.backoff_max_s,
            ),
            local_poll_interval_s=sync.poll_interval_s,
        )
        watcher.adopt_config(self.server_config)
        heartbeat = HeartbeatLoop(
            self.client,
            self.host,
            HostSampler(self.state_dir),
            self.report,
            interval_s=sync.heartbeat_interval_s,
            player_version=player_version(),
            on_commands=commands.submit_all,
            on_manifest_etag=watcher.hint,
            on_token_due=self._rotate_token,
        )
        return heartbeat, watcher, commands

    async def _rotate_token(self) -> None:
        """Replace the device token before it expires (the heartbeat says when).

        The new token is stored before it is used: after a crash the device starts with it.
        Until it is first used the server keeps the old one valid, so a failure at any step
        leaves a working token, and the next heartbeat asks again.
        """
        try:
            rotated = await self.client.rotate_token()
        except (RequestFailed, ProtocolError) as exc:
            log.warning(
                "token rotation failed; retried after the next heartbeat",
                extra={"fields": {"error": str(exc)}},
            )
            return
        if self.device_id is None:
            return
        credentials = Credentials(
            server_url=self.server_url, device_id=self.device_id, device_token=rotated.device_token
        )
        try:
            await asyncio.to_thread(self.credentials.save, credentials)
        except OSError as exc:
            log.error(
                "cannot store the rotated token; keeping the current one",
                extra={"fields": {"error": str(exc)}},
            )
            return
        self.client.token = rotated.device_token
        log.info("device token rotated", extra={"fields": {"device_id": self.device_id}})

    async def _session(self, credentials: Credentials) -> None:
        self.client.token = credentials.device_token
        self.device_id = credentials.device_id
        self.heartbeat, self.watcher, self.commands = self._build()
        log.info("sync started", extra={"fields": {"device_id": credentials.device_id}})
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.commands.run(), name="commands")
                group.create_task(self.watcher.run(), name="watcher")
                group.create_task(self.heartbeat.run(), name="heartbeat")
                group.create_task(self.timesync.run(), name="timesync")
                group.create_task(
                    self.recorder.run_uploads(
                        self.client, interval_s=min(30.0, self.settings.sync.heartbeat_interval_s)
                    ),
                    name="impressions",
                )
        except BaseExceptionGroup as group_error:
            raise _first_of(group_error) from None

    async def _forget(self) -> None:
        log.error("the server revoked this device; back to pairing (the cache is kept)")
        await asyncio.to_thread(self.credentials.wipe)
        await asyncio.to_thread(self.manifests.wipe)
        # Proof of play of the revoked identity cannot be delivered, nor credited to the next.
        await self.recorder.drain()
        dropped = await asyncio.to_thread(self.recorder.queue.clear)
        if dropped:
            log.warning("dropped undeliverable impressions", extra={"fields": {"count": dropped}})
        self.client.token = None
        self.device_id = None
        self.timesync.want(False)
        self.report.manifest_etag = None
        self.report.manifest_version = None

    async def run(self) -> None:
        """Run until cancelled. ``RestartRequested`` propagates to the daemon.

        Anything unexpected ends the session, not the daemon: playback goes on and the
        session starts again after the ``SESSION_RETRY`` back-off.
        """
        failures = 0
        while True:
            began = time.monotonic()
            try:
                credentials = await self._credentials()
                await self._session(credentials)
            except DeviceRevoked:
                await self._forget()
            except (RestartRequested, asyncio.CancelledError):
                raise
            except Exception:
                # A session that ran a while before it failed starts the back-off afresh.
                ran_s = time.monotonic() - began
                failures = 1 if ran_s > SESSION_RETRY.max_s else failures + 1
                delay = SESSION_RETRY.delay(failures)
                log.exception(
                    "sync session failed; starting again",
                    extra={"fields": {"retry_in_s": round(delay, 3)}},
                )
                await asyncio.sleep(delay)

    def close(self) -> None:
        self._time_http.close()
        self.db.close()
