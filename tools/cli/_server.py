"""``signage server``: run the bundled reference server."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from tools.cli._common import add_config_options, data_dir_of, load_from_args
from tools.cli._errors import EXIT_CODES, CliError, ExitCodesFormatter

MAX_WORKERS = 64  # as server.workers allows

if TYPE_CHECKING:
    from core import Settings


def _run(args: argparse.Namespace) -> int:
    from core import SdNotifier, configure_logging
    from server import ReadyServer, create_app, load_admin_token, uvicorn_config

    settings = _settings(args)
    configure_logging(settings.logging.level, settings.logging.format)
    data_dir = data_dir_of(settings)
    configured = settings.server.admin_token
    token, created = load_admin_token(
        configured.get_secret_value() if configured else None, data_dir
    )
    if created:
        # Shown once, on the terminal that started the server; the file keeps it (mode 0600).
        print(f"admin token (saved in {data_dir / 'admin_token'}): {token}", file=sys.stderr)
    host, port = settings.server.host, settings.server.port
    if settings.server.workers > 1:
        return _run_workers(args, settings)
    _check_port(host, port)
    app = create_app(settings, data_dir)
    config = uvicorn_config(
        app, settings.server, host=host, port=port, log_config=None, timeout_graceful_shutdown=5
    )
    with SdNotifier.from_env() as notifier:
        server = ReadyServer(config, lambda: notifier.ready(f"serving on {host}:{port}"))
        try:
            server.run()
        except SystemExit:
            server.started = False  # uvicorn exits on a startup failure it has logged
    if not server.started:
        raise CliError(f"the server did not start on {host}:{port}: the lines above say why")
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration with --host, --port and --workers on top; refused when more than one
    worker would keep presence, limits and events apart (no Redis to share them)."""
    overrides: dict[str, object] = {}
    for name in ("host", "port", "workers"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    settings = load_from_args(args, **({"server": overrides} if overrides else {}))
    workers = settings.server.workers
    if workers > 1 and settings.server.redis_url is None:
        raise CliError(
            f"{workers} workers need server.redis_url: presence, rate limits and device events "
            "must be shared between them (docs/server.md, Deployment); or run one worker"
        )
    return settings


def _run_workers(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    import signal

    from core import SdNotifier, SignageError, configure_logging
    from server import Supervisor, serve_worker

    host, port, workers = settings.server.host, settings.server.port, settings.server.workers
    data_dir = data_dir_of(settings)
    listener = _bind(host, port)
    listener.listen(2048)  # uvicorn's default backlog

    def worker(sock: socket.socket, ready: Callable[[], None]) -> int:
        # Each worker reads the configuration again: a rolling restart (SIGHUP) applies an
        # edited file. The address stays the one bound at start.
        try:
            fresh = _settings(args)
        except SignageError as exc:
            logging.getLogger("signage.server.workers").error(
                "the configuration is invalid: %s", exc
            )
            return 1
        configure_logging(fresh.logging.level, fresh.logging.format)
        return serve_worker(fresh, data_dir, sock, ready)

    with listener, SdNotifier.from_env() as notifier:
        supervisor = Supervisor(listener, workers, worker, notifier=notifier)
        code = supervisor.run()
    if supervisor.stopped_by == signal.SIGINT:
        raise KeyboardInterrupt  # Ctrl+C: status 130, as without workers
    if code != 0:
        raise CliError(
            f"the server on {host}:{port} stopped: its workers could not be kept running "
            "(the lines above say why)"
        )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import asyncio

    from core import configure_logging
    from server import MigrationError, database_url, migrate_database, migration_sql

    settings = load_from_args(args)
    configure_logging(settings.logging.level, settings.logging.format)
    configured = settings.server.database_url
    url = database_url(data_dir_of(settings), configured.get_secret_value() if configured else None)
    if args.sql:
        print(migration_sql(url, args.start), end="")
        return 0
    if args.start is not None:
        raise CliError("--from only goes with --sql (a live database says where it is)")
    try:
        migrated = asyncio.run(migrate_database(url, check=args.check))
    except MigrationError:
        raise
    except (OSError, ConnectionError) as exc:
        raise CliError(f"cannot reach the database ({exc}): check server.database_url") from exc
    print("at the newest revision" if args.check else migrated.describe())
    return 0


def _check_port(host: str, port: int) -> None:
    """Say plainly when the address is taken (uvicorn would log an errno and exit)."""
    _bind(host, port).close()


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to the address as uvicorn binds it, or one readable line why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise CliError(
            f"cannot listen on {host}:{port} ({reason}): another program uses that port "
            "(see: ss -ltnp), or choose another with --port"
        ) from exc
    return sock


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {MAX_WORKERS}")
    return count


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run the reference server",
        description="Run the bundled reference server (FastAPI on uvicorn, SQLite in the data "
        "dir). The admin token comes from SIGNAGE_ADMIN_TOKEN, or is generated at first start "
        "into the data dir and printed once. Every request body is bounded per route (413), "
        "credentials are checked before a body is read, and slow clients are cut off "
        "(server.header_timeout_s, server.body_timeout_s). Behind a reverse proxy, list it in "
        "server.forwarded_allow_ips (default: 127.0.0.1 and ::1) so rate limits see each "
        "client's own address; docs/server.md has a complete nginx site.",
        epilog=EXIT_CODES,
        formatter_class=ExitCodesFormatter,
    )
    parser.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: server.port, 8080)")
    parser.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="N server processes on the one port, restarted when one dies; SIGHUP restarts "
        "them one at a time (default: server.workers, 1). More than 1 needs server.redis_url",
    )
    add_config_options(parser)
    parser.set_defaults(handler=_run)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    migrate = actions.add_parser(
        "migrate",
        help="bring the database schema to this release's",
        description="Upgrade the database (server.database_url, default SQLite in the data "
        "dir) to this release's schema, as the server does at start (server.auto_migrate). "
        "A database from before migrations is adopted first. Safe while other servers run or "
        "start: one migrates, the others wait and find it done.",
        epilog=EXIT_CODES,
        formatter_class=ExitCodesFormatter,
    )
    migrate.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 unless at the newest revision"
    )
    migrate.add_argument(
        "--sql",
        action="store_true",
        help="PostgreSQL: print the SQL instead of running it (from an empty database, or --from)",
    )
    migrate.add_argument("--from", dest="start", metavar="REV", help="with --sql: start here")
    add_config_options(migrate)
    migrate.set_defaults(handler=_migrate)
