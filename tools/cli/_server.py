"""``signage server``: run the bundled reference server."""

from __future__ import annotations

import argparse
import sys

from tools.cli._common import add_config_options, data_dir_of, load_from_args


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
    app = create_app(settings, data_dir)
    config = uvicorn_config(
        app,
        settings.server,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run the reference server",
        description="Run the bundled reference server (FastAPI on uvicorn, SQLite in the data "
        "dir). The admin token comes from SIGNAGE_ADMIN_TOKEN, or is generated at first start "
        "into the data dir and printed once.",
    )
    parser.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: server.port, 8080)")
    add_config_options(parser)
    parser.set_defaults(handler=_run)
