"""Process-level helpers: the ownership lock, free space, a low-priority verification thread."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
from pathlib import Path

import psutil

from core import CacheError


class CacheBusy(CacheError):
    """Another process (a running player) owns the cache directory."""

    def __init__(self, root: Path, owner: str) -> None:
        self.root = root
        self.owner = owner
        who = f" (pid {owner})" if owner else ""
        super().__init__(f"the cache at {root} is in use by another process{who}")


def take_lock(path: Path) -> int:
    """Hold an exclusive flock on ``path`` for the life of the cache; CacheBusy when taken.

    Two processes reconciling or evicting in one directory would undo each other's work.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise CacheBusy(path.parent, owner) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def is_locked(path: Path) -> bool:
    """True when a live process holds the cache's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def lower_thread_priority() -> None:
    """Run the calling thread at nice 19 and idle I/O class (Linux: both are per thread).

    Verification rehashes every object; it must never take CPU or disk from playback.
    """
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, 19)
    with contextlib.suppress(AttributeError, OSError, psutil.Error):
        psutil.Process(tid).ionice(psutil.IOPRIO_CLASS_IDLE)
