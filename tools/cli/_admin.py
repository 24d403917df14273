"""``signage admin ...``: the admin API from the command line, for installers and scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tools.cli._common import add_config_options
from tools.cli._errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    CliError,
    ExitCodesFormatter,
    input_size,
    printable,
    read_document,
)

RESUME_FILE = "admin-uploads.json"


def _client(args: argparse.Namespace) -> Any:
    from core import state_dir
    from server import AdminClient
    from tools.cli._common import load_from_args

    settings = load_from_args(args)
    url = args.server or settings.sync.server_url or f"http://127.0.0.1:{settings.server.port}"
    token = args.token or os.environ.get("SIGNAGE_ADMIN_TOKEN")
    if not token and settings.server.admin_token is not None:
        token = settings.server.admin_token.get_secret_value()
    stored = state_dir(settings.data_dir) / "admin_token"
    if not token and stored.exists():
        try:
            token = stored.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(
                f"cannot read the admin token in {stored} ({(exc.strerror or '').lower()}): "
                "pass --token, or run as the server's user"
            ) from exc
    if not token:
        raise CliError(
            "no admin token: pass --token or set SIGNAGE_ADMIN_TOKEN (the server prints it at "
            "its first start and keeps it in DATA_DIR/admin_token)"
        )
    return AdminClient(url, token)


def _print(value: Any) -> None:
    # ensure_ascii: control characters in names arrive escaped (\u001b), never raw.
    print(json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=True))


def _pair(args: argparse.Namespace) -> int:
    with _client(args) as client:
        claimed = client.claim_device(args.code, args.name)
    print(printable(claimed["device_id"]))
    if claimed.get("re_paired"):
        name = printable(str(claimed.get("name")))
        print(
            f"signage: this screen was paired before: it keeps its name {name!r}, group and "
            "content; its old token no longer works",
            file=sys.stderr,
        )
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
        row = f"{d['id']:<22} {d['name']:<24} {d['status']:<8} {seen:<26} v{d['manifest_version']}"
        print(printable(row))
    return 0


class _Bar:
    """A one-line progress bar on stderr (only when it is a terminal, or when asked)."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled
        self.percent = 0

    def __call__(self, done: int, total: int) -> None:
        self.percent = done * 100 // total if total else 0
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


def _sessions(path: Path) -> dict[str, str]:
    """Upload sessions to resume; a damaged file only means starting over."""
    try:
        sessions = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return sessions if isinstance(sessions, dict) else {}


def _upload(args: argparse.Namespace) -> int:
    from core import atomic_write_text, state_dir
    from server import AdminApiError
    from tools.cli._common import load_from_args

    path = Path(args.file)
    if input_size(path) == 0:
        raise CliError(f"{path} is empty (0 bytes): nothing to upload")
    resume_path = state_dir(load_from_args(args).data_dir) / RESUME_FILE
    sessions = _sessions(resume_path)
    bar = _Bar(path.name, sys.stderr.isatty() or args.progress)
    with _client(args) as client:
        key = _resume_key(path, client.base_url)

        def remember(upload_id: str) -> None:
            sessions[key] = upload_id
            atomic_write_text(resume_path, json.dumps(sessions), mode=0o600)

        try:
            try:
                sha = client.upload(
                    path, upload_id=sessions.get(key), progress=bar, on_session=remember
                )
            except AdminApiError as exc:
                if key not in sessions or exc.code not in ("upload_not_found", "upload_expired"):
                    raise
                # The saved session is gone (expired or aborted): start over.
                sha = client.upload(path, progress=bar, on_session=remember)
        except KeyboardInterrupt:
            if bar.enabled:
                print(file=sys.stderr)  # end the progress line
            raise CliError(
                f"interrupted at {bar.percent}% of {path.name}: run the same command again to "
                "resume where it stopped",
                exit_code=EXIT_INTERRUPTED,
            ) from None
    sessions.pop(key, None)
    atomic_write_text(resume_path, json.dumps(sessions), mode=0o600)
    print(sha)
    return 0


def _put(kind: str) -> Any:
    def handler(args: argparse.Namespace) -> int:
        document = read_document(Path(args.file))
        bodies = document if isinstance(document, list) else [document]
        if not all(isinstance(body, dict) and "id" in body for body in bodies):
            raise CliError(f"{args.file}: expected a {kind} object with an id, or a list of them")
        with _client(args) as client:
            for body in bodies:
                saved = getattr(client, f"put_{kind}")(body)
                print(printable(f"{kind} {saved['id']}: saved"))
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
            raise CliError(f"--arg takes KEY=VALUE, got {pair!r}")
        arguments[key] = _scalar(value)
    with _client(args) as client:
        _print(client.command(args.device, args.name, arguments))
    return 0


def _screenshot(args: argparse.Namespace) -> int:
    """Ask the device for a screenshot, wait for its answer, save the PNG."""
    from core import atomic_write

    target = Path(args.output)
    if not target.parent.is_dir():
        raise CliError(f"cannot write {target}: {target.parent} is not a directory")
    with _client(args) as client:
        device = client.device(args.device)
        if device["status"] != "online":
            seen = device.get("last_seen") or "never"
            print(
                printable(f"signage: {args.device} is offline (last seen {seen}); waiting for it"),
                file=sys.stderr,
            )
        command_id = client.command(args.device, "screenshot")["id"]
        result = _await_result(client, args.device, command_id, args.timeout)
        if result is None:
            state = "offline" if client.device(args.device)["status"] != "online" else "online"
            raise CliError(
                f"no screenshot from {args.device} within {args.timeout:g} s (it is {state}); "
                "the request stays queued for an hour, rerun with a longer --timeout to wait"
            )
        if not result.get("ok"):
            reason = result.get("message") or "no reason given"
            raise CliError(f"{args.device} could not take a screenshot: {reason}")
        png = client.screenshot(args.device)
    atomic_write(target, png)
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    print(printable(f"{target}: {width}x{height} PNG, {len(png)} bytes, from {args.device}"))
    return 0


def _await_result(
    client: Any, device_id: str, command_id: str, timeout_s: float
) -> dict[str, Any] | None:
    """The command's result once the device has answered, or None after ``timeout_s``.

    A wait for one answer, polled twice a second (not a retry: nothing is sent again).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        for info in client.commands(device_id):
            if info["command"]["id"] == command_id and info.get("completed_at"):
                result: dict[str, Any] = info.get("result") or {}
                return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> int:
    """Seconds from ``90``, ``90s``, ``10m``, ``2h`` or ``1d``."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    seconds = round(value * _UNITS[unit])
    if seconds < 1:
        raise CliError(f"--for takes a duration such as 90s, 10m, 2h or 1d; got {text!r}")
    return seconds


def _interrupt(args: argparse.Namespace) -> int:
    seconds = None if args.for_ is None else parse_duration(args.for_)
    with _client(args) as client:
        sent = client.interrupt(
            args.layout,
            device=None if args.group else args.target,
            group=args.target if args.group else None,
            seconds=seconds,
            starts_at=args.at,
            ends_at=args.until,
            priority=args.priority,
        )
    if args.json:
        _print(sent)
    else:
        until = sent["ends_at"] or "cleared (signage admin clear " + sent["id"] + ")"
        print(f"{sent['id']}: {sent['layout']} from {sent['starts_at']} until {until}")
    return 0


def _interrupts(args: argparse.Namespace) -> int:
    with _client(args) as client:
        listed = client.interrupts(device=args.device, live=args.live)
    if args.json:
        _print(listed)
        return 0
    print(f"{'ID':<22} {'STATUS':<10} {'LAYOUT':<16} {'TARGET':<24} UNTIL")
    for i in listed:
        target = f"device {i['device']}" if i["device"] else f"group {i['group']}"
        print(
            f"{i['id']:<22} {i['status']:<10} {i['layout']:<16} {target:<24} {i['ends_at'] or '-'}"
        )
    return 0


def _clear(args: argparse.Namespace) -> int:
    with _client(args) as client:
        cleared = client.clear_interrupt(args.interrupt)
    print(f"{cleared['id']}: {cleared['status']}")
    return 0


def _power(args: argparse.Namespace) -> int:
    if args.clear and args.file:
        raise CliError("give a schedule FILE or --clear, not both")
    with _client(args) as client:
        if args.clear:
            client.set_power(args.target, None, group=args.group)
            print(f"{args.target}: power schedule removed")
            return 0
        if args.file is None:
            _print(client.power(args.target, group=args.group))
            return 0
        _print(client.set_power(args.target, read_document(Path(args.file)), group=args.group))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.revoke(args.device)
    print(printable(f"{args.device}: revoked"))
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
        description="Use the admin API. A failure is one line on stderr saying what happened "
        "and what to do; a 422 lists each invalid field.",
        epilog=EXIT_CODES,
        formatter_class=ExitCodesFormatter,
    )
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(handler=handler)
        return p

    p = action(
        "pair",
        "claim the pairing code a screen shows (a screen paired before keeps its record)",
        _pair,
    )
    p.add_argument("code", metavar="CODE")
    p.add_argument(
        "--name", help="the screen's name (default: the one it had, else the one it asks for)"
    )
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
    p = action(
        "command",
        "send a command (reload, screenshot, restart, display_off, display_on, ...)",
        _command,
    )
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    p = action(
        "screenshot",
        "take a screenshot on a device and save it (waits for the device)",
        _screenshot,
    )
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save the PNG")
    p.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="how long to wait (30)"
    )
    p = action("revoke", "revoke a device: its token stops working at once", _revoke)
    p.add_argument("device", metavar="DEVICE")
    p = action(
        "interrupt",
        "put a layout over everything on a device (or --group) now, for a while or until cleared",
        _interrupt,
    )
    p.add_argument("target", metavar="DEVICE")
    p.add_argument("--layout", required=True, help="the layout to show")
    p.add_argument("--group", action="store_true", help="DEVICE names a group")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--for", dest="for_", metavar="DURATION", help="e.g. 90s, 10m, 2h, 1d")
    when.add_argument("--until", metavar="ISO", help="end instant, e.g. 2026-11-23T18:00+01:00")
    p.add_argument("--at", metavar="ISO", help="start instant (default: now)")
    p.add_argument("--priority", type=int, default=0, help="the highest wins (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = action("interrupts", "list interrupts, newest first", _interrupts)
    p.add_argument("--device", metavar="DEVICE", help="only those reaching this device")
    p.add_argument("--live", action="store_true", help="only those not ended or cleared")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = action("clear", "clear an interrupt: the schedule resumes where it would be", _clear)
    p.add_argument("interrupt", metavar="INTERRUPT")
    p = action(
        "power",
        "show, set (FILE: JSON or TOML with 'on' windows) or --clear a screen's power schedule",
        _power,
    )
    p.add_argument("target", metavar="DEVICE")
    p.add_argument("file", metavar="FILE", nargs="?")
    p.add_argument("--group", action="store_true", help="DEVICE names a group")
    p.add_argument("--clear", action="store_true", help="remove it: always on (or the group's)")
