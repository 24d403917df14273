"""CPU time and memory of processes by pid (psutil), and the descriptor limit, for the server
benchmark's per-core and per-stream figures."""

from __future__ import annotations

import contextlib
import resource

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    """The process and its children (PostgreSQL's backends are the postmaster's)."""
    try:
        process = psutil.Process(pid)
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds spent so far by these processes and their live children."""
    total = 0.0
    for pid in pids:
        for process in _tree(pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (not its children)."""
    return int(psutil.Process(pid).memory_info().rss)


def raise_fd_limit() -> None:
    """Open descriptors up to the hard limit: thousands of streams need one each."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
