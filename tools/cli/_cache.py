"""``signage cache ls|stats|verify|gc``: look after a device's asset cache."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

from tools.cli._common import add_config_options, data_dir_of, load_from_args


def _root(args: argparse.Namespace) -> Path:
    from cache import cache_root

    return cache_root(data_dir_of(load_from_args(args)))


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"


def _ls(args: argparse.Namespace) -> int:
    from cache import list_objects

    infos = list_objects(_root(args))
    print(f"{'SHA256':64}  {'STATE':11} {'SIZE':>12}  {'MIME':18} {'LAST USED':19}  REF")
    for info in infos:
        print(
            f"{info.sha256}  {info.state.value:11} {info.size:>12}  {info.mime:18} "
            f"{_when(info.last_used_at or info.fetched_at):19}  {'yes' if info.referenced else '-'}"
        )
    return 0


def _stats(args: argparse.Namespace) -> int:
    from cache import ObjectState, list_objects

    infos = list_objects(_root(args))
    states = Counter(info.state for info in infos)
    ready_bytes = sum(i.size for i in infos if i.state is ObjectState.READY)
    print(f"cache: {_root(args)}")
    for state in ObjectState:
        print(f"{state.value + ':':13}{states.get(state, 0)}")
    print(f"{'bytes used:':13}{ready_bytes}")
    print(f"{'referenced:':13}{sum(1 for i in infos if i.referenced)}")
    print(f"{'errors:':13}{sum(1 for i in infos if i.error and i.state is not ObjectState.READY)}")
    return 0


async def _verify_owned(root: Path) -> list[str]:
    from cache import AssetCache, Limits

    limits = Limits(verify_after_start=False)
    async with await AssetCache.open(root, client=None, limits=limits) as owned:
        return await owned.verify_all()


def _verify(args: argparse.Namespace) -> int:
    from cache import CacheBusy, check_objects, list_objects

    root = _root(args)
    count = sum(1 for info in list_objects(root) if info.state.value == "ready")
    try:
        corrupt = asyncio.run(_verify_owned(root))
        action = "quarantined; the player fetches it again"
    except CacheBusy:
        corrupt = check_objects(root)  # the running player quarantines on its own pass
        action = "left for the running player's verification pass"
    for sha in corrupt:
        print(f"corrupt {sha}")
    if corrupt:
        print(f"{len(corrupt)} of {count} object(s) corrupt ({action})", file=sys.stderr)
        return 1
    print(f"{count} object(s) verified, all intact")
    return 0


async def _gc_owned(root: Path, max_bytes: int) -> int:
    from cache import AssetCache, Limits

    limits = Limits(max_bytes=max_bytes, verify_after_start=False)
    async with await AssetCache.open(root, client=None, limits=limits) as owned:
        return await owned.gc()


def _gc(args: argparse.Namespace) -> int:
    settings = load_from_args(args)
    root = _root(args)
    if not (root / "index.db").is_file():
        print(f"no cache at {root}", file=sys.stderr)
        return 1
    freed = asyncio.run(_gc_owned(root, settings.cache.max_bytes))
    print(f"freed {freed} bytes")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="inspect, verify or trim the asset cache",
        description="Look after the hash-verified asset cache under <data dir>/cache.",
    )
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    actions = [
        ("ls", _ls, "list cached assets, most recently used first"),
        ("stats", _stats, "count assets by state and bytes used"),
        (
            "verify",
            _verify,
            "rehash every ready object; exit 1 naming each corrupt one by sha256",
        ),
        (
            "gc",
            _gc,
            "evict least recently used objects over cache.max_bytes (never referenced ones), "
            "drop stale partial downloads and the quarantine; refused while a player runs",
        ),
    ]
    for name, handler, summary in actions:
        action = sub.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])
        add_config_options(action)
        action.set_defaults(handler=handler)
