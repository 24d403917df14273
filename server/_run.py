"""Running the server: a real uvicorn in a background thread (tests, simulator, benches)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from core import ServerConfig, ServerError, Settings
from server._app import create_app
from server._connections import guarded_protocol
from server._security import load_admin_token

START_TIMEOUT_S = 30.0


class RunningServer:
    """A live server on 127.0.0.1; ``url`` and ``admin_token`` are ready once constructed."""

    def __init__(
        self, app: FastAPI, server: uvicorn.Server, thread: threading.Thread, url: str, token: str
    ) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.url = url
        self.admin_token = token

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def uvicorn_config(
    app: ASGIApp,
    config: ServerConfig,
    *,
    host: str,
    port: int,
    http: str = "auto",
    **options: Any,
) -> uvicorn.Config:
    """How the server runs under uvicorn, for ``signage server`` and ``run_in_thread`` alike:
    slow-client timeouts, trusted proxies, no access log. ``http``: auto, httptools or h11."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(config.header_timeout_s, config.body_timeout_s, http),
        # Clients behind a trusted proxy are known by the address it forwards: rate limits,
        # lockouts and the logs then name the real client, not the proxy.
        proxy_headers=True,
        forwarded_allow_ips=config.forwarded_allow_ips,
        # Longer than clients' idle pools keep connections (httpx: 5 s), so a reused one is
        # not closed under a request in flight.
        timeout_keep_alive=round(config.keepalive_timeout_s),
        access_log=False,  # access lines would carry pairing ids and paths; we log our own
        ws="none",
        **options,
    )


class ReadyServer(uvicorn.Server):
    """uvicorn's server that calls ``ready()`` once it accepts connections (for systemd's
    READY=1, or a supervisor waiting for its worker)."""

    def __init__(self, config: uvicorn.Config, ready: Callable[[], object]) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._ready()


def _serve(server: uvicorn.Server) -> None:
    # A private loop (uvloop when installed): the caller's thread may run its own.
    server.run()


def run_in_thread(
    settings: Settings,
    data_dir: Path,
    *,
    port: int = 0,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    clock: Callable[[], float] | None = None,
    http: str = "auto",
) -> RunningServer:
    """Start the server on 127.0.0.1 (an ephemeral port by default) and wait until it listens.

    ``wrap`` puts an ASGI layer in front of the app: the simulator's fault injection (never
    part of the server's own API). ``clock`` (UNIX seconds; default the system's): the
    simulator's wall time, so the server and the simulated devices agree on what now is.
    """
    configured = settings.server.admin_token
    token, _ = load_admin_token(configured.get_secret_value() if configured else None, data_dir)
    app = create_app(settings, data_dir, clock=clock)
    config = uvicorn_config(
        app if wrap is None else wrap(app),
        settings.server,
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=_serve, args=(server,), name="signage-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerError("the server did not start (see the log above)")
        time.sleep(0.02)
    sockets = [s for srv in server.servers for s in srv.sockets]
    bound_port = sockets[0].getsockname()[1]
    return RunningServer(app, server, thread, f"http://127.0.0.1:{bound_port}", token)
