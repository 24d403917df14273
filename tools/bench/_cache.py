"""``signage bench cache``: hashing against sha256sum, downloading against curl.

Both comparisons run on one file (256 MiB by default, page cache warm). The download goes
through the reference server started in a child process (so it competes for no interpreter
lock with either client): curl writes the body to a file; the cache streams it into its part
file while hashing, then fsyncs, checks the hash and renames it into ``objects/``, which is the
whole path an asset takes on a player. Figures are throughput ratios (>1: faster than the
reference tool); the best of ``--rounds`` runs of each side is kept, the download rounds
interleaved so that both sides meet the same load from whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tools.bench._verdict import Verdict, cannot_run

HASH_TARGET = 0.9
DOWNLOAD_TARGET = 0.8


def _best(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _make_file(path: Path, size: int) -> None:
    """A real picture (the server decodes what it stores), padded to ``size`` with random
    bytes after its end (decoders stop at a PNG's IEND chunk)."""
    import io

    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (16, 9), (40, 90, 200)).save(picture, "PNG")
    with open(path, "wb") as handle:
        handle.write(picture.getvalue())
        left = size - len(picture.getvalue())
        while left > 0:
            block = os.urandom(min(left, 4 * 1024 * 1024))
            handle.write(block)
            left -= len(block)


def _hash_bench(path: Path, rounds: int) -> tuple[list[float], list[float]]:
    from cache import sha256_file

    tool = shutil.which("sha256sum")
    if tool is None:
        cannot_run("sha256sum not found (coreutils)")
    reference, ours = [], []
    for _ in range(rounds):
        reference.append(_best(1, lambda: subprocess.run([tool, str(path)], check=True, stdout=-3)))
        ours.append(_best(1, lambda: sha256_file(path)))
    return reference, ours


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _reference_server(workdir: Path) -> Iterator[tuple[str, str]]:
    """The reference server in a child process; yields (url, admin token)."""
    import httpx

    token = secrets.token_urlsafe(32)
    port = _free_port()
    env = {**os.environ, "SIGNAGE_ADMIN_TOKEN": token, "SIGNAGE_LOGGING__LEVEL": "warning"}
    argv = [sys.executable, "-m", "tools", "server", "--data-dir", str(workdir / "server")]
    child = subprocess.Popen([*argv, "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if child.poll() is not None:
                cannot_run("the reference server did not start")
            time.sleep(0.1)
        yield url, token
    finally:
        child.terminate()
        child.wait(timeout=30)


def _publish(url: str, admin_token: str, path: Path) -> tuple[str, dict[str, object]]:
    """Upload the file, pair a device, give it a layout showing the file.

    Returns the device token and the asset entry of its manifest.
    """
    import httpx

    from server import AdminClient

    with AdminClient(url, admin_token, timeout=120) as admin:
        sha = admin.upload(path)
        admin.put_playlist({"id": "bench", "items": [{"id": "p", "type": "image", "asset": sha}]})
        admin.put_layout(
            {"id": "bench", "zones": [{"id": "main", "w": 1920, "h": 1080, "playlist": "bench"}]}
        )
        created = httpx.post(f"{url}/api/v1/pairings", json={"hardware_id": "bench"}).json()
        device_id = admin.claim(created["code"], "bench")
        paired = httpx.get(
            f"{url}/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        ).json()
        admin.assign(device_id, default_layout="bench")
    device_token = str(paired["device_token"])
    manifest = httpx.get(
        f"{url}/api/v1/device/manifest", headers={"Authorization": f"Bearer {device_token}"}
    ).json()
    asset = next(a for a in manifest["assets"] if a["sha256"] == sha)
    return device_token, asset


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def _fetch_once(
    url: str, token: str, asset: dict[str, object], root: Path
) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of one fetch into an empty cache."""
    import httpx

    from cache import AssetCache, Limits
    from protocol import Asset

    wanted = Asset.model_validate(asset)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client,
        await AssetCache.open(root, client=client, limits=Limits(verify_after_start=False)) as c,
    ):
        started, cpu = time.perf_counter(), _cpu_s(resource.RUSAGE_SELF)
        readiness = await c.ensure([wanted])
        if not await readiness.wait(timeout=600):
            cannot_run(f"the cache did not fetch the asset: {c.stats()}")
        return time.perf_counter() - started, _cpu_s(resource.RUSAGE_SELF) - cpu


def _download_bench(workdir: Path, path: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Times of curl and of the cache, rounds interleaved so both see the same load.

    Also prints CPU seconds per GiB of each, which the machine's load does not skew.
    """
    curl = shutil.which("curl")
    if curl is None:
        cannot_run("curl not found (apt install curl)")
    with _reference_server(workdir) as (url, admin_token):
        token, asset = _publish(url, admin_token, path)
        target = f"{url}/api/v1/assets/{asset['sha256']}"
        out = workdir / "curl.out"
        command = [curl, "-sSf", "-H", f"Authorization: Bearer {token}", "-o", str(out), target]
        reference, ours, curl_cpu, our_cpu = [], [], [], []
        for n in range(rounds):
            cpu = _cpu_s(resource.RUSAGE_CHILDREN)  # the server child is still running
            reference.append(_best(1, lambda: subprocess.run(command, check=True)))
            curl_cpu.append(_cpu_s(resource.RUSAGE_CHILDREN) - cpu)
            out.unlink()
            wall, used = asyncio.run(_fetch_once(url, token, asset, workdir / f"cache{n}"))
            ours.append(wall)
            our_cpu.append(used)
            shutil.rmtree(workdir / f"cache{n}")
    gib = path.stat().st_size / 1024**3
    print(
        f"download CPU per GiB: cache {min(our_cpu) / gib:.2f} s (receive, hash, write, fsync), "
        f"curl {min(curl_cpu) / gib:.2f} s (receive, write)"
    )
    return reference, ours


def _report(
    name: str, size: int, reference: list[float], ours: list[float], target: float, tool: str
) -> tuple[str, float]:
    """The figures' line and the ratio (>1: faster than the reference tool)."""
    mib = size / 1024**2
    ratio = min(reference) / min(ours)
    per_round = ", ".join(f"{r / o:.2f}" for r, o in zip(reference, ours, strict=True))
    line = (
        f"{name}: cache {mib / min(ours):7.1f} MiB/s, {tool} {mib / min(reference):7.1f} MiB/s, "
        f"ratio {ratio:.2f} (target >= {target}; per round {per_round})"
    )
    return line, ratio


def _run(args: argparse.Namespace) -> int:
    if args.quick:
        args.size_mb, args.rounds = 8, 1
    size = args.size_mb * 1024 * 1024
    verdict = Verdict()
    workdir = Path(tempfile.mkdtemp(prefix="signage-bench-cache-", dir=args.workdir))
    try:
        path = workdir / "asset.png"
        _make_file(path, size)
        load = os.getloadavg()[0]
        print(f"{args.size_mb} MiB file, {args.rounds} rounds, load average {load:.1f}")
        hash_ref, hash_ours = _hash_bench(path, args.rounds)
        line, ratio = _report("hashing ", size, hash_ref, hash_ours, HASH_TARGET, "sha256sum")
        print(line)
        verdict.check("hashing throughput / sha256sum's", ratio, ">=", HASH_TARGET)
        down_ref, down_ours = _download_bench(workdir, path, args.rounds)
        line, ratio = _report("download", size, down_ref, down_ours, DOWNLOAD_TARGET, "curl")
        print(line)
        verdict.check("download throughput / curl's", ratio, ">=", DOWNLOAD_TARGET)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(verdict.report())
    return verdict.exit_code()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cache",
        help="asset cache: hashing vs sha256sum, download vs curl",
        description=(__doc__ or "").split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument("--size-mb", type=int, default=256, metavar="N", help="file size")
    parser.add_argument("--rounds", type=int, default=3, metavar="N", help="runs of each side")
    parser.add_argument(
        "--workdir", type=Path, default=None, metavar="DIR", help="where the file goes (a disk)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="an 8 MiB file, one round (a smoke run)"
    )
    parser.set_defaults(handler=_run)
