"""``signage server --workers N`` as real processes on loopback: every worker serves on the one
port, a dead worker is replaced while requests go on, SIGHUP replaces them one at a time,
SIGTERM stops them all, and what cannot work is refused in one line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server._workers import MAX_QUICK_FAILURES, STOP_TIMEOUT_S
from tests.server.server_process import REPO, ServerProcess, free_port, server_process
from tools.bench import ScratchPostgres, ScratchRedis

WAIT_S = 90.0  # a worker's start on a loaded machine (migrations, Redis) takes seconds


def children(pid: int) -> set[int]:
    """The live (not yet reaped) child processes of ``pid``, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie that nobody reaped yet is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_workers(server: ServerProcess, count: int, *, other_than: set[int]) -> set[int]:
    """The supervisor's ``count`` workers once none of ``other_than`` is among them."""
    deadline = time.monotonic() + WAIT_S
    while True:
        assert server.process.poll() is None, server.process.communicate()[1]
        pids = children(server.pid)
        if len(pids) == count and not pids & other_than:
            return pids
        assert time.monotonic() < deadline, f"workers: {pids}, waiting to replace {other_than}"
        time.sleep(0.1)


def healthy(url: str) -> bool:
    """One request on a connection of its own (accepted by whichever worker is free)."""
    return httpx.get(f"{url}/healthz", timeout=WAIT_S).status_code == 200


@contextlib.contextmanager
def only(serving: int, workers: set[int]) -> Iterator[None]:
    """Every worker but ``serving`` stopped (SIGSTOP): what is answered, it answers."""
    paused = workers - {serving}
    for pid in paused:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)


def assert_each_serves(url: str, workers: set[int]) -> None:
    for pid in workers:
        with only(pid, workers):
            assert all(healthy(url) for _ in range(3)), pid


def stop(server: ServerProcess) -> tuple[int, str, float]:
    """SIGTERM: the exit status, stderr and how long the supervisor took to exit."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    _, stderr = server.process.communicate(timeout=STOP_TIMEOUT_S + 15)
    return server.process.returncode, stderr, time.monotonic() - started


@pytest.fixture
def shared(
    postgres_server: ScratchPostgres, redis_server: ScratchRedis
) -> Iterator[dict[str, str]]:
    """PostgreSQL and Redis settings for the workers."""
    redis_server.command("FLUSHALL")
    database = postgres_server.create_database("workers")
    try:
        yield {
            "SIGNAGE_SERVER__DATABASE_URL": database,
            "SIGNAGE_SERVER__REDIS_URL": redis_server.url,
        }
    finally:
        postgres_server.drop_database("workers")
        redis_server.command("FLUSHALL")


def test_each_worker_serves_a_killed_one_is_replaced_and_sigterm_stops_all(
    shared: dict[str, str], tmp_path: Path
) -> None:
    with server_process(tmp_path / "data", options=("--workers", "2"), **shared) as server:
        first = wait_for_workers(server, 2, other_than=set())
        assert_each_serves(server.url, first)

        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)
        served = 0
        deadline = time.monotonic() + WAIT_S
        while True:  # requests go on while the supervisor restarts the dead worker
            assert healthy(server.url)
            served += 1
            pids = children(server.pid)
            if len(pids) == 2 and victim not in pids:
                break
            assert time.monotonic() < deadline, pids
            time.sleep(0.05)
        assert served >= 1
        second = wait_for_workers(server, 2, other_than={victim})
        assert survivor in second
        assert_each_serves(server.url, second)  # the new worker serves too

        # Open event streams (as devices and dashboards hold them) do not hold the stop up.
        admin = {"Authorization": f"Bearer {server.admin_token}"}
        with contextlib.ExitStack() as streams:
            for _ in range(4):
                client = streams.enter_context(httpx.Client(base_url=server.url, timeout=WAIT_S))
                response = streams.enter_context(
                    client.stream("GET", "/api/v1/admin/events", headers=admin)
                )
                assert response.status_code == 200
            code, stderr, took = stop(server)
    assert code == 0, stderr
    assert took < STOP_TIMEOUT_S
    assert not any(alive(pid) for pid in second)
    assert "worker exited: restarting it" in stderr
    assert f"pid={victim}" in stderr
    assert "Traceback" not in stderr


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's end of ``$NOTIFY_SOCKET``: a datagram socket bound to a path."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(WAIT_S)
        yield sock, path


def notified(sock: socket.socket, until: str) -> list[str]:
    """The messages received up to and including the first one holding ``until``."""
    messages = [sock.recv(4096).decode()]
    while until not in messages[-1].splitlines():
        messages.append(sock.recv(4096).decode())
    return messages


def test_sighup_replaces_the_workers_one_at_a_time_and_ctrl_c_stops_them(
    redis_server: ScratchRedis, tmp_path: Path, systemd: tuple[socket.socket, str]
) -> None:
    """Also SQLite (WAL) shared by the workers of one machine, the decision docs/server.md
    documents, and what systemd is told (Type=notify)."""
    redis_server.command("FLUSHALL")
    sock, path = systemd
    env = {"SIGNAGE_SERVER__REDIS_URL": redis_server.url, "NOTIFY_SOCKET": path}
    with server_process(tmp_path / "data", options=("--workers", "2"), **env) as server:
        # READY=1 once, when both workers serve.
        assert notified(sock, "READY=1") == ["READY=1\nSTATUS=2 workers serving"]
        old = children(server.pid)
        assert len(old) == 2
        assert_each_serves(server.url, old)
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 2 * WAIT_S
        served = 0
        while True:
            assert healthy(server.url)
            served += 1
            pids = children(server.pid)
            if len(pids) == 2 and not pids & old:
                break
            assert len(pids) <= 3, pids  # one successor at a time
            assert time.monotonic() < deadline, pids
            time.sleep(0.05)
        assert served >= 2
        assert notified(sock, "READY=1") == [
            "RELOADING=1\nSTATUS=rolling restart of the workers",
            "READY=1\nSTATUS=2 workers serving",
        ]
        assert_each_serves(server.url, pids)
        server.process.send_signal(signal.SIGINT)  # Ctrl+C: stopped, status 130 as with one
        _, stderr = server.process.communicate(timeout=STOP_TIMEOUT_S + 15)
        assert notified(sock, "STOPPING=1") == ["STOPPING=1\nSTATUS=stopping the workers"]
    assert server.process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "signage: interrupted"
    assert "rolling restart done" in stderr
    assert not any(alive(pid) for pid in pids)


def test_a_worker_that_keeps_dying_stops_the_server_with_status_1(
    redis_server: ScratchRedis, tmp_path: Path
) -> None:
    env = {"SIGNAGE_SERVER__REDIS_URL": redis_server.url}
    with server_process(tmp_path / "data", options=("--workers", "2"), **env) as server:
        killed: set[int] = set()
        pids = wait_for_workers(server, 2, other_than=set())
        victim = min(pids)
        deadline = time.monotonic() + 4 * WAIT_S
        # The first worker may have served long enough for its death not to count.
        while server.process.poll() is None and len(killed) <= MAX_QUICK_FAILURES:
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            # Its successor, once it serves (the other worker stopped, so it must answer).
            while server.process.poll() is None:
                assert time.monotonic() < deadline
                fresh = children(server.pid) - pids
                if fresh:
                    victim = fresh.pop()
                    pids = children(server.pid)
                    with only(victim, pids):
                        assert healthy(server.url)
                    break
                time.sleep(0.05)
        _, stderr = server.process.communicate(timeout=STOP_TIMEOUT_S + 15)
    assert len(killed) in (MAX_QUICK_FAILURES, MAX_QUICK_FAILURES + 1), stderr
    assert server.process.returncode == 1, stderr
    assert "a worker keeps failing: stopping the server" in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("signage: the server on 127.0.0.1:")
    assert "workers could not be kept running" in last
    assert "Traceback" not in stderr


def test_workers_stop_when_the_supervisor_is_killed(
    redis_server: ScratchRedis, tmp_path: Path
) -> None:
    """SIGKILL leaves the supervisor no time to stop its workers: they stop on their own."""
    env = {"SIGNAGE_SERVER__REDIS_URL": redis_server.url}
    with server_process(tmp_path / "data", options=("--workers", "2"), **env) as server:
        workers = wait_for_workers(server, 2, other_than=set())
        server.process.kill()
        server.process.wait(timeout=WAIT_S)
        try:
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while any(alive(pid) for pid in workers):
                assert time.monotonic() < deadline, "a worker outlived its supervisor"
                time.sleep(0.1)
        finally:  # an orphan would hold the port, and the stderr pipe the helper reads
            for pid in filter(alive, workers):
                os.kill(pid, signal.SIGKILL)
        with pytest.raises(httpx.ConnectError):
            healthy(server.url)  # nobody serves the port any more


def run_cli(tmp_path: Path, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAGE_")} | env
    command = [sys.executable, "-m", "tools", "server", "--port", str(free_port())]
    return subprocess.run(
        [*command, "--data-dir", str(tmp_path / "data"), *options],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=WAIT_S,
        check=False,
    )


def test_a_worker_that_cannot_start_stops_the_server(
    redis_server: ScratchRedis, tmp_path: Path
) -> None:
    unreachable = f"postgresql+asyncpg://signage:x@127.0.0.1:{free_port()}/signage"
    env = {"SIGNAGE_SERVER__REDIS_URL": redis_server.url}
    done = run_cli(tmp_path, "--workers", "2", SIGNAGE_SERVER__DATABASE_URL=unreachable, **env)
    assert done.returncode == 1, done.stderr
    assert "a worker did not start" in done.stderr
    assert "workers could not be kept running" in done.stderr.strip().splitlines()[-1]


def test_several_workers_without_redis_are_refused_in_one_line(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--workers", "2")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "signage: 2 workers need server.redis_url: presence, rate limits and device "
        "events must be shared between them (docs/server.md, Deployment); or run one worker"
    ]
    from_config = run_cli(tmp_path, SIGNAGE_SERVER__WORKERS="3")
    assert from_config.returncode == 1
    assert "3 workers need server.redis_url" in from_config.stderr
    assert "Traceback" not in from_config.stderr


@pytest.mark.parametrize("count", ["0", "-1", "65", "two", "1.5"])
def test_a_bad_worker_count_is_refused(tmp_path: Path, count: str) -> None:
    done = run_cli(tmp_path, "--workers", count)
    assert done.returncode == 2
    assert "argument --workers: expected a whole number from 1 to 64" in done.stderr
    assert "Traceback" not in done.stderr
