"""The application factory: routes, error handling, the sweeper, /healthz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse
from sqlalchemy import delete, text
from starlette.types import ASGIApp

from core import ServerConfig, Settings
from protocol import Heartbeat, Problem
from server import (
    _admin_content,
    _admin_devices,
    _admin_groups,
    _admin_interrupts,
    _admin_media,
    _admin_power,
    _admin_reports,
    _assets,
    _device_api,
    _events_api,
    _pairing,
    _retention,
    _time_api,
    _uploads,
)
from server._auth import AuthGate
from server._backends import open_shared
from server._bodies import BodyLimit, JsonRoute
from server._bus import Wakeups
from server._console import install_console
from server._console_session import SIGNIN_MAX_FAILURES, SIGNIN_WINDOW_S
from server._db import database_answers, database_unreachable, database_url, pairings, writer_of
from server._device_api import flush_presence, publish_presence, queue_presence_write
from server._front import ROUTE_CLASSES, Front
from server._lean import Lanes
from server._migrations import open_database
from server._outages import RETRY_AFTER_S, OutageGuard, Outages
from server._probe import ProbeLimits, Prober
from server._problems import ApiError, install_problem_handlers, problem_doc
from server._routes import Routes
from server._security import hash_token, load_admin_token
from server._state import ServerState
from server._time_api import EXCHANGES_PER_WINDOW as TIME_EXCHANGES_PER_WINDOW
from server._time_api import WINDOW_S as TIME_WINDOW_S
from server._uploads import remove_expired_uploads

log = logging.getLogger("signage.server")
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
PAIRING_KEEP_S = 3600.0
PRESENCE_FLUSH_S = 1.0
SWEEPER_LEASE_S = 30.0  # a replica that stops renewing it hands the sweeping over after this


async def sweep_once(state: ServerState) -> None:
    """Mark silent devices offline, drop abandoned uploads and stale pairings, sum proof of
    play per day and prune what is past its keep time. With several replicas, whoever holds
    the sweeper's lease does it; the others only write their own queued presence."""
    if not await state.leases.hold("sweeper", SWEEPER_LEASE_S):
        await flush_presence(state)
        return
    now = state.clock()
    for device_id, last_seen in await state.presence.expired(now):
        queue_presence_write(state, device_id, "offline", last_seen)
        await publish_presence(state, device_id, "offline", now)
    await flush_presence(state)
    await remove_expired_uploads(state)
    async with state.writer.begin() as conn:
        await conn.execute(delete(pairings).where(pairings.c.expires_at < now - PAIRING_KEEP_S))
    await _retention.sum_impressions(state)
    await _retention.prune(state)


async def _sweeper(state: ServerState) -> None:
    period = min(5.0, state.heartbeat_interval() / 2)
    passes = 0
    while True:
        await asyncio.sleep(PRESENCE_FLUSH_S)
        passes += 1
        try:
            if passes * PRESENCE_FLUSH_S >= period:
                passes = 0
                await sweep_once(state)
            else:
                await flush_presence(state)
        except Exception as exc:
            if state.outages.noted(exc) is None:  # an outage is logged once, not every pass
                log.exception("sweeper pass failed")


async def _build_state(
    settings: Settings, data_dir: Path, engine: Any, clock: Callable[[], float]
) -> ServerState:
    config = settings.server
    secret = config.admin_token.get_secret_value() if config.admin_token else None
    token, _ = load_admin_token(secret, data_dir)
    outages = Outages()
    if engine.dialect.name == "postgresql":
        outages.register("database", database_unreachable, lambda: database_answers(engine))
    shared = await open_shared(config, clock, outages)
    window = shared.window
    state = ServerState(
        config=config,
        data_dir=data_dir,
        engine=engine,
        writer=writer_of(engine),
        clock=clock,
        admin_token_hash=hash_token(token),
        hub=shared.hub,
        presence=shared.presence,
        manifests=shared.manifests,
        bus=shared.bus,
        wakeups=Wakeups(shared.bus),
        leases=shared.leases,
        pairing_per_ip=window("pairing_ip", config.pairing_requests_per_ip, 60.0),
        pairing_per_hardware=window("pairing_hw", config.pairing_requests_per_hardware_id, 60.0),
        claim_failures=window("claims", config.claim_max_failures, config.claim_lockout_s),
        auth_failures=window("auth", config.auth_failures_per_ip, config.auth_failure_window_s),
        sse_connects=window("sse", config.sse_connects_per_ip, 60.0),
        signin_failures=window("signin", SIGNIN_MAX_FAILURES, SIGNIN_WINDOW_S),
        time_exchanges=window("time", TIME_EXCHANGES_PER_WINDOW, TIME_WINDOW_S),
        prober=Prober(
            ProbeLimits(
                timeout_s=config.probe_timeout_s,
                memory_bytes=config.probe_memory_bytes,
                max_image_pixels=int(config.max_image_megapixels * 1_000_000),
            )
        ),
        closers=[outages.close, shared.close],
        outages=outages,
    )
    if "redis" in outages.names():
        outages.on_back("redis", state.restore_presence)
    return state


async def _metrics_text(state: ServerState) -> str:
    lines = []

    def metric(name: str, kind: str, value: float, labels: str = "") -> None:
        lines.append(f"# TYPE signage_{name} {kind}")
        lines.append(f"signage_{name}{labels} {value}")

    try:
        metric("devices_online", "gauge", await state.presence.online_count())
    except Exception as exc:  # Redis is lost: the rest is still worth reporting
        if state.outages.noted(exc) is None:
            raise
    metric("sse_device_streams", "gauge", state.hub.stream_count())
    metric("sse_dashboard_streams", "gauge", state.hub.dashboard_count())
    if state.outages.names():
        lines.append("# TYPE signage_engine_up gauge")
    for name in state.outages.names():
        up = 0 if state.outages.is_down(name) else 1
        lines.append(f'signage_engine_up{{engine="{name}"}} {up}')
    counters = state.counters.values
    lines.append("# TYPE signage_http_responses_total counter")
    for route in ROUTE_CLASSES:
        for status_class in STATUS_CLASSES:
            value = counters[f"http_{route}_{status_class}"]
            labels = f'route="{route}",class="{status_class}"'
            lines.append(f"signage_http_responses_total{{{labels}}} {value}")
    for name in (
        "heartbeats",
        "heartbeats_rejected",
        "presence_writes",
        "transitions_online",
        "transitions_offline",
        "sse_connects",
        "sse_events",
        "pairings_requested",
        "pairings_completed",
        "claims_succeeded",
        "claims_failed",
        "uploads_completed",
        "uploads_rejected",
        "impressions",
        "asset_bytes",
    ):
        metric(f"{name}_total", "counter", counters[name])
    return "\n".join(lines) + "\n"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with problem+json documented for every validation error."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    # Bodies parsed by hand (to bound their size first) still need their schema published.
    for model in (Problem, Heartbeat):
        defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(defs.pop("$defs", {}))
        components.setdefault(model.__name__, defs)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    extra = problem_doc(400, 422)
    for methods in schema.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            for status, doc in extra.items():
                responses[str(status)] = doc
    app.openapi_schema = schema
    return schema


def _lifespan(
    settings: Settings, data_dir: Path, url: str, now: Callable[[], float]
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await open_database(url, migrate=settings.server.auto_migrate)
        try:
            state = await _build_state(settings, data_dir, engine, now)
        except BaseException:
            await engine.dispose()
            raise
        if not state.prober.ffprobe_available():
            log.warning("ffprobe not found (Debian package ffmpeg): video uploads are refused")
        await state.load_pending_commands()
        app.state.signage = state
        sweeper = asyncio.create_task(_sweeper(state))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            try:
                await flush_presence(state)
            finally:
                state.hub.close_all()
                for close in state.closers:
                    await close()
                await engine.dispose()

    return lifespan


operations = APIRouter(tags=["operations"], route_class=JsonRoute)


@operations.get("/healthz", responses=problem_doc(503))
async def healthz(request: Request) -> dict[str, str]:
    """A database round trip, and Redis when configured: 503 ``database_unavailable`` or
    ``redis_unavailable`` while one is down (also until the server has caught up after it)."""
    state: ServerState = request.app.state.signage
    for name in ("database", "redis"):
        if not await state.outages.check(name):
            raise ApiError(
                503,
                f"{name}_unavailable",
                f"the server cannot reach its {name}",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
    async with state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok"}


@operations.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request) -> PlainTextResponse:
    text_format = "text/plain; version=0.0.4"
    body = await _metrics_text(request.app.state.signage)
    return PlainTextResponse(body, media_type=text_format)


def create_app(
    settings: Settings, data_dir: Path, *, clock: Callable[[], float] | None = None
) -> FastAPI:
    """The reference server as an ASGI app; state lives in ``data_dir``."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    configured = settings.server.database_url
    url = database_url(data_dir, configured.get_secret_value() if configured else None)
    app = SignageApp(
        title="signage reference server",
        version="1",
        lifespan=_lifespan(settings, data_dir, url, clock or time.time),
        docs_url=None,
        redoc_url=None,
        # FastAPI's OpenTelemetry bridge asks on every request whether a provider was set up;
        # the server reports through /metrics and its log instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_problem_handlers(app)
    for module in (
        _pairing,
        _device_api,
        _time_api,
        _assets,
        _events_api,
        _admin_devices,
        _admin_groups,
        _admin_content,
        _admin_interrupts,
        _admin_power,
        _admin_media,
        _admin_reports,
        _uploads,
    ):
        app.include_router(module.router)
    app.include_router(operations)
    install_console(app)

    def state_of() -> ServerState | None:
        return getattr(app.state, "signage", None)

    def config_of() -> ServerConfig | None:
        state = state_of()
        return state.config if state is not None else None

    # Outer to inner: SignageApp's Front (and lanes), FastAPI's error middleware, OutageGuard,
    # AuthGate, BodyLimit.
    app.add_middleware(BodyLimit, config_of=config_of, routes=app.documented)
    app.add_middleware(AuthGate, state_of=state_of, routes=app.documented)
    app.add_middleware(OutageGuard, outages_of=lambda: getattr(state_of(), "outages", None))
    return app


class SignageApp(FastAPI):
    """FastAPI with ``server._front.Front`` outside everything, its own error layer included,
    so the 500s it sends are counted too, and the lean routes served past FastAPI
    (``server._lean``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.documented = Routes(lambda: self.openapi())

    def build_middleware_stack(self) -> ASGIApp:
        def state_of() -> ServerState | None:
            return getattr(self.state, "signage", None)

        def count(route: str, status_class: str) -> None:
            state = state_of()
            if state is not None:
                state.counters.inc(f"http_{route}_{status_class}")

        lanes = Lanes(
            super().build_middleware_stack(),
            routes=self.routes,
            middleware=self.user_middleware,
            state_of=state_of,
        )
        return Front(lanes, routes=self.documented, count=count)
