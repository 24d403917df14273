"""Throwaway PostgreSQL and Redis servers on loopback, for benchmarks and tests.

Each runs from a temporary directory on a free port and is stopped (and its directory removed)
on exit. PostgreSQL refuses to run as root: as root, it runs as Debian's ``postgres`` user,
which owns the directory. Nothing here touches a system instance.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tools.bench._processes import stop

START_TIMEOUT_S = 60.0
PG_ROOT = Path("/usr/lib/postgresql")


class EngineUnavailable(RuntimeError):
    """The server program is not installed (the message names the Debian package)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _postgres_bin() -> Path:
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "pg_ctl").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise EngineUnavailable("PostgreSQL is not installed (Debian package postgresql)")
    return versions[-1]


@dataclass(frozen=True)
class ScratchPostgres:
    port: int
    bin: Path
    user: str
    pid: int = 0  # the postmaster's (its backends are its children)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database,
                "-v", "ON_ERROR_STOP=1", "-At", "-c", statement,
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, name: str) -> str:
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_as(user: str | None, command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, user=user, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed: {done.stderr.strip()[-2000:]}")


@contextlib.contextmanager
def scratch_postgres(*, durable: bool = False) -> Iterator[ScratchPostgres]:
    """A PostgreSQL server on 127.0.0.1 (trust authentication, superuser ``postgres``).

    ``durable=False`` turns fsync off (tests); a benchmark keeps fsync but not synchronous
    commits, as SQLite's ``synchronous=NORMAL`` does not sync each commit either.
    """
    binaries = _postgres_bin()
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="signage-pg-"))
    try:
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
        root.chmod(0o700)
        data = root / "data"
        _run_as(
            user,
            [
                str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ],
            cwd=root,
        )  # fmt: skip
        port = free_port()
        settings = [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {root}",
            "-c max_connections=400",
            "-c synchronous_commit=off",
        ]
        if not durable:
            settings += ["-c fsync=off", "-c full_page_writes=off"]
        _run_as(
            user,
            [
                str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                "-t", str(int(START_TIMEOUT_S)), "-o", " ".join(settings), "start",
            ],
            cwd=root,
        )  # fmt: skip
        try:
            postmaster = int((data / "postmaster.pid").read_text().split()[0])
            yield ScratchPostgres(port, binaries, "postgres", postmaster)
        finally:
            subprocess.run(
                [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                user=user,
                capture_output=True,
                check=False,
                cwd=root,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class ScratchRedis:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, *words: str) -> bytes:
        """One command over a raw socket (inline protocol): for setup and teardown."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
            conn.sendall(" ".join(words).encode() + b"\r\n")
            return conn.recv(65536)


@contextlib.contextmanager
def scratch_redis() -> Iterator[ScratchRedis]:
    """A Redis server on 127.0.0.1, in memory only (no snapshots, no append-only file)."""
    program = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(program).exists():
        raise EngineUnavailable("Redis is not installed (Debian package redis-server)")
    root = Path(tempfile.mkdtemp(prefix="signage-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            program, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(root), "--maxclients", "10000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        running = ScratchRedis(port, process)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with status {process.returncode}")
            try:
                if running.command("PING").startswith(b"+PONG"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer")
            time.sleep(0.05)
        yield running
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)
