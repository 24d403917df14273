"""``signage admin ...``: the admin API from the command line, for installers and scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from tools.cli._common import add_config_options

RESUME_FILE = "admin-uploads.json"


def _client(args: argparse.Namespace) -> Any:
    from core import ConfigError, state_dir
    from server import AdminClient
    from tools.cli._common import load_from_args

    settings = load_from_args(args)
    url = args.server or settings.sync.server_url or f"http://127.0.0.1:{settings.server.port}"
    token = args.token or os.environ.get("SIGNAGE_ADMIN_TOKEN")
    if not token and settings.server.admin_token is not None:
        token = settings.server.admin_token.get_secret_value()
    stored = state_dir(settings.data_dir) / "admin_token"
    if not token and stored.exists():
        token = stored.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(["no admin token: set SIGNAGE_ADMIN_TOKEN or pass --token"])
    return AdminClient(url, token)


def _read_document(path: Path) -> Any:
    from core import ConfigError

    text = path.read_text(encoding="utf-8")
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"cannot parse {path}: {exc}"], source=str(path)) from exc


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _pair(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(client.claim(args.code, args.name))
    return 0


def _devices(args: argparse.Namespace) -> int:
    with _client(args) as client:
        devices = client.devices()
    if args.json:
        _print(devices)
        return 0
    print(f"{'ID':<22} {'NAME':<24} {'STATUS':<8} {'LAST SEEN':<26} MANIFEST")
    for d in devices:
        seen = d["last_seen"] or "-"
        print(f"{d['id']:<22} {d['name']:<24} {d['status']:<8} {seen:<26} v{d['manifest_version']}")
    return 0


class _Bar:
    """A one-line progress bar on stderr (only when it is a terminal, or when asked)."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        filled = done * 30 // total
        bar = "#" * filled + "." * (30 - filled)
        print(f"\r{self.name} [{bar}] {done * 100 // total:3d}%", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)


def _resume_key(path: Path, url: str) -> str:
    stat = path.stat()
    return f"{url}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _upload(args: argparse.Namespace) -> int:
    from core import atomic_write_text, state_dir
    from server import AdminApiError
    from tools.cli._common import load_from_args

    path = Path(args.file)
    resume_path = state_dir(load_from_args(args).data_dir) / RESUME_FILE
    sessions: dict[str, str] = json.loads(resume_path.read_text()) if resume_path.exists() else {}
    with _client(args) as client:
        key = _resume_key(path, client.base_url)

        def remember(upload_id: str) -> None:
            sessions[key] = upload_id
            atomic_write_text(resume_path, json.dumps(sessions), mode=0o600)

        bar = _Bar(path.name, sys.stderr.isatty() or args.progress)
        try:
            sha = client.upload(
                path, upload_id=sessions.get(key), progress=bar, on_session=remember
            )
        except AdminApiError as exc:
            if key not in sessions or exc.code not in ("upload_not_found", "upload_expired"):
                raise
            # The saved session is gone (expired or aborted): start over.
            sha = client.upload(path, progress=bar, on_session=remember)
    sessions.pop(key, None)
    atomic_write_text(resume_path, json.dumps(sessions), mode=0o600)
    print(sha)
    return 0


def _put(kind: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        document = _read_document(Path(args.file))
        bodies = document if isinstance(document, list) else [document]
        with _client(args) as client:
            for body in bodies:
                saved = getattr(client, f"put_{kind}")(body)
                print(f"{kind} {saved['id']}: saved")
        return 0

    return handler


def _assign(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.assign(
            args.target,
            default_layout=args.layout,
            schedule=args.schedule,
            timezone=args.timezone,
            group=args.group,
        )
    _print(result)
    return 0


def _epoch(text: str) -> Any:
    import datetime as dt

    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"an ISO 8601 time, got {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("--epoch needs a UTC offset, e.g. +01:00 or Z")
    return value


def _sync(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.set_group_sync(args.group, enabled=not args.off, epoch=args.epoch))
    return 0


def _scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _command(args: argparse.Namespace) -> int:
    arguments = {}
    for pair in args.arg:
        key, sep, value = pair.partition("=")
        if not sep:
            from core import ConfigError

            raise ConfigError([f"--arg takes KEY=VALUE, got {pair!r}"])
        arguments[key] = _scalar(value)
    with _client(args) as client:
        _print(client.command(args.device, args.name, arguments))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.revoke(args.device)
    print(f"{args.device}: revoked")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)
    parser.add_argument("--server", metavar="URL", help="server address (default: sync.server_url)")
    parser.add_argument(
        "--token", help="admin token (default: SIGNAGE_ADMIN_TOKEN, then the data dir)"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "admin",
        help="manage a server: pair, upload, assign, command",
        description="Use the admin API.",
    )
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(handler=handler)
        return p

    p = action("pair", "claim the pairing code a screen shows", _pair)
    p.add_argument("code", metavar="CODE")
    p.add_argument("--name", required=True)
    p = action("devices", "list devices with presence", _devices)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = action("upload", "upload a media file (chunked; rerun to resume after a cut)", _upload)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--progress", action="store_true", help="progress bar even when not a terminal")
    for kind in ("playlist", "layout", "schedule"):
        p = action(kind, f"create or replace {kind}s from a JSON or TOML file", _put(kind))
        p.add_argument("file", metavar="FILE")
    p = action(
        "assign", "give a device (or --group) a default layout and schedule entries", _assign
    )
    p.add_argument("target", metavar="DEVICE")
    p.add_argument("--layout", help="default layout id")
    p.add_argument("--schedule", action="append", default=[], metavar="ID", help="repeatable")
    p.add_argument("--timezone", help="IANA zone, e.g. Europe/Paris")
    p.add_argument("--group", action="store_true", help="DEVICE names a group")
    p = action("sync", "make a group's screens play in step (or --off)", _sync)
    p.add_argument("group", metavar="GROUP")
    p.add_argument(
        "--epoch",
        type=_epoch,
        metavar="ISO",
        help="when every playlist's cycle begins (default: now); a future one restarts them all",
    )
    p.add_argument("--off", action="store_true", help="each screen plays on its own again")
    p = action("command", "send a command (reload, screenshot, restart, ...)", _command)
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p = action("revoke", "revoke a device: its token stops working at once", _revoke)
    p.add_argument("device", metavar="DEVICE")
