"""``signage server``: run the bundled reference server."""

from __future__ import annotations

import argparse
import socket
import sys

from tools.cli._common import add_config_options, data_dir_of, load_from_args
from tools.cli._errors import EXIT_CODES, CliError, ExitCodesFormatter


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from core import configure_logging
    from server import create_app, load_admin_token, uvicorn_config

    overrides: dict[str, object] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    settings = load_from_args(args, **({"server": overrides} if overrides else {}))
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
    _check_port(host, port)
    app = create_app(settings, data_dir)
    config = uvicorn_config(
        app, settings.server, host=host, port=port, log_config=None, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit:
        server.started = False  # uvicorn exits on a startup failure it has logged
    if not server.started:
        raise CliError(f"the server did not start on {host}:{port}: the lines above say why")
    return 0


def _check_port(host: str, port: int) -> None:
    """Say plainly when the address is taken (uvicorn would log an errno and exit)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise CliError(
            f"cannot listen on {host}:{port} ({reason}): another program uses that port "
            "(see: ss -ltnp), or choose another with --port"
        ) from exc


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
    add_config_options(parser)
    parser.set_defaults(handler=_run)
