"""``signage bench server``: heartbeat throughput and SSE fan-out of the reference server.

The server runs here (a real uvicorn on 127.0.0.1); the load comes from a separate process so
the two do not share an interpreter lock.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tools.bench._verdict import Verdict

HEARTBEATS_TARGET_PER_S = 3000  # per core (one server process), with p99 under P99_TARGET_MS
P99_TARGET_MS = 50.0
FAN_OUT_TARGET_S = 2.0


def _sustained(result: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest step that kept 95 % of its rate with p99 under target and no error."""
    good = [
        s
        for s in result["steps"]
        if s["achieved_per_s"] >= 0.95 * s["target_per_s"]
        and s["p99_ms"] < P99_TARGET_MS
        and not s["errors"]
    ]
    return max(good, key=lambda s: s["achieved_per_s"]) if good else None


def _verdict(result: dict[str, Any], replicas: dict[str, Any] | None) -> Verdict:
    verdict = Verdict()
    best = _sustained(result)
    verdict.check(
        f"heartbeats/s sustained with p99 < {P99_TARGET_MS:g} ms (one process)",
        None if best is None else round(best["achieved_per_s"]),
        ">=",
        HEARTBEATS_TARGET_PER_S,
    )
    _fan_out_checks(verdict, result["fan_out"], "")
    if replicas is not None:
        n = replicas["replicas"]
        best = _sustained(replicas)
        verdict.check(
            f"heartbeats/s per replica process with p99 < {P99_TARGET_MS:g} ms ({n} replicas)",
            None if best is None else round(best["achieved_per_s"] / n),
            ">=",
            HEARTBEATS_TARGET_PER_S,
        )
        _fan_out_checks(verdict, replicas["fan_out"], f" ({n} replicas)")
    return verdict


def _fan_out_checks(verdict: Verdict, f: dict[str, Any], where: str) -> None:
    verdict.check(f"SSE streams held{where}", f["connected"], ">=", f["streams"])
    verdict.check(f"SSE streams reached by a change{where}", f["delivered"], ">=", f["streams"])
    verdict.check(
        f"SSE fan-out to every stream{where}",
        round(f["fan_out_s"], 3),
        "<",
        FAN_OUT_TARGET_S,
        " s",
    )


def _print_report(result: dict[str, Any], replicas: dict[str, Any] | None) -> None:
    runs = [("SQLite, one process", result)]
    if replicas is not None:
        runs.append((f"PostgreSQL + Redis, {replicas['replicas']} replicas", replicas))
    header = f"{'target/s':>9}" + "".join(
        f" | {'ok/s':>7} {'429':>5} {'err':>5} {'p50 ms':>7} {'p99 ms':>7}" for _ in runs
    )
    print(" " * 9 + "".join(f" | {name:<35}" for name, _ in runs))
    print(header)
    for i, first in enumerate(result["steps"]):
        line = f"{first['target_per_s']:>9}"
        for _, run in runs:
            s = run["steps"][i] if i < len(run["steps"]) else None
            if s is None:
                line += " | " + " " * 35
                continue
            line += (
                f" | {s['achieved_per_s']:>7.0f} {s['rejected']:>5} {s['errors']:>5} "
                f"{s['p50_ms']:>7.1f} {s['p99_ms']:>7.1f}"
            )
        print(line)
    for name, run in runs:
        best = _sustained(run)
        if best is None:
            print(f"{name}: no step kept p99 < 50 ms at 95 % of its target rate")
        else:
            print(
                f"{name}: sustained {best['achieved_per_s']:.0f} heartbeats/s with p50 "
                f"{best['p50_ms']:.1f} ms, p99 {best['p99_ms']:.1f} ms"
            )
        f = run["fan_out"]
        print(
            f"{name}: {f['connected']}/{f['streams']} SSE streams held; a change to all "
            f"devices reached {f['delivered']} streams {f['fan_out_s']:.2f} s after the admin's "
            f"request (of which {f['publish_s']:.2f} s publishing: rebuild, commit, answer)"
        )


def _wait_for(load: Any, results: Any) -> dict[str, Any]:
    import queue

    from core import ServerError

    while True:
        try:
            result: dict[str, Any] = results.get(timeout=1.0)
        except queue.Empty:
            if not load.is_alive():
                raise ServerError(f"the load process died (exit code {load.exitcode})") from None
            continue
        load.join(30)
        return result


def _run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from core import Settings
    from server import run_in_thread

    settings = Settings.model_validate(
        {
            "server": {
                "heartbeat_interval_s": 5.0,
                # At the low rates each device beats only every ~25 s: keep it online anyway,
                # so the steps measure heartbeats, not presence churn.
                "offline_after_missed": 12,
                # The load pairs and connects every device from one address.
                "pairing_requests_per_ip": 1_000_000,
                "sse_connects_per_ip": 1_000_000,
                "admin_token": "bench-admin-token-not-secret",
            }
        }
    )
    if args.quick:
        args.devices, args.streams, args.step_s, args.max_rate = 20, 10, 1.0, 100
    options = {
        "devices": args.devices,
        "streams": args.streams,
        "step_s": args.step_s,
        "max_rate": args.max_rate,
    }
    with (
        tempfile.TemporaryDirectory(prefix="signage-bench-") as tmp,
        run_in_thread(settings, Path(tmp)) as live,
    ):
        result = _load([live.url], live.admin_token, options)
    replicated = None
    if args.replicas:
        from tools.bench._replicas import replicas

        server = settings.server.model_dump(
            include={
                "heartbeat_interval_s",
                "offline_after_missed",
                "pairing_requests_per_ip",
                "sse_connects_per_ip",
            }
        )
        secret = settings.server.admin_token
        assert secret is not None
        token = secret.get_secret_value()
        with (
            tempfile.TemporaryDirectory(prefix="signage-bench-") as tmp,
            replicas(args.replicas, Path(tmp), server, token) as urls,
        ):
            replicated = _load(urls, token, options) | {"replicas": args.replicas}
    verdict = _verdict(result, replicated)
    if args.json:
        extra = {} if replicated is None else {"replicas": replicated}
        print(json.dumps(result | extra | {"targets": verdict.as_json()}, indent=2))
    else:
        _print_report(result, replicated)
        print(verdict.report())
    return verdict.exit_code()


def _load(urls: list[str], admin_token: str, options: dict[str, Any]) -> dict[str, Any]:
    """The load, from a process of its own, against the server(s) at ``urls``."""
    import multiprocessing

    from tools.bench._server_load import load_main

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    load = context.Process(target=load_main, args=(urls, admin_token, options, results))
    load.start()
    return _wait_for(load, results)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "server",
        help="heartbeats/s with p50/p99 latency and SSE fan-out of the reference server",
        description=(
            "Start the reference server on loopback, drive heartbeats at rising rates from a "
            "separate load process, then hold many SSE streams and time a manifest fan-out."
        ),
    )
    parser.add_argument("--devices", type=int, default=2500, help="paired devices (default 2500)")
    parser.add_argument("--streams", type=int, default=1000, help="SSE streams to hold")
    parser.add_argument("--step-s", type=float, default=3.0, help="seconds at each rate")
    parser.add_argument(
        "--max-rate", type=int, default=1600, help="highest heartbeats/s tried (doubling from 100)"
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=0,
        metavar="N",
        help="also run N server processes on a scratch PostgreSQL and Redis (installed "
        "postgresql and redis-server needed) and report them beside the single SQLite process",
    )
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20 devices, 10 streams, one 1 s step at 100/s (a smoke run: misses the rate target)",
    )
    parser.set_defaults(handler=_run)
