"""Several server processes on one port: a supervisor that binds the socket once, forks N
workers that accept on it, restarts a worker that dies and stops them all on a signal.

One listening socket shared by every worker (as gunicorn and uvicorn's ``--workers`` do),
rather than a socket per worker with SO_REUSEPORT: connections waiting in the backlog are
accepted by whichever worker is free, so a worker that dies or restarts drops none of them
(with SO_REUSEPORT the kernel hashes each connection to one worker's queue, and a dead
worker's queue is reset), and the port is taken once, before any worker starts, so a busy
port is one clear error. Workers are forked: they share the supervisor's imported code, and
each reads the configuration afresh, so a rolling restart (SIGHUP) applies an edited file.

Signals: SIGTERM or SIGINT stop every worker gracefully (a second one kills them); SIGHUP
restarts the workers one at a time, each replaced only once its successor serves.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from core import SdNotifier, Settings
from server._app import create_app
from server._run import ReadyServer, uvicorn_config

log = logging.getLogger("signage.server.workers")

# A worker that dies before it served this long counts as a failure to start: restarted
# after a growing pause (BACKOFF_FIRST_S, doubled each time, at most BACKOFF_MAX_S), and
# given up on after MAX_QUICK_FAILURES in a row. One that served longer is restarted at once.
STABLE_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 15.0
MAX_QUICK_FAILURES = 5
# How long a rolling restart waits for a replacement to serve before giving up on it.
REPLACE_TIMEOUT_S = 60.0
# uvicorn's own graceful shutdown (open requests and streams) is GRACEFUL_S; the supervisor
# kills what is left after STOP_TIMEOUT_S, well inside systemd's TimeoutStopSec (30 s).
GRACEFUL_S = 5
STOP_TIMEOUT_S = 15.0
_READY = b"r"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def serve_worker(
    settings: Settings, data_dir: Path, listener: socket.socket, ready: Callable[[], None]
) -> int:
    """One worker: the app on ``listener``, as ``signage server`` runs it; 0 after a stop."""
    app = create_app(settings, data_dir)
    host, port = listener.getsockname()[:2]
    config = uvicorn_config(
        app,
        settings.server,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    server = ReadyServer(config, ready)
    try:
        server.run(sockets=[listener])
    except SystemExit:
        server.started = False  # a startup failure uvicorn has logged
    return 0 if server.started else 1


@dataclass
class _Worker:
    slot: int
    pid: int
    ready_fd: int
    born: float
    ready_at: float | None = None
    retiring: bool = False


@dataclass
class _Slot:
    index: int
    active: _Worker | None = None
    incoming: _Worker | None = None  # its successor, during a rolling restart
    quick_failures: int = 0
    restart_at: float | None = None


@dataclass
class _State:
    stop: int | None = None  # the signal that asked for it
    kill: bool = False  # a second stop signal
    reload: bool = False
    rolling: list[int] = field(default_factory=list)


WorkerTarget = Callable[[socket.socket, Callable[[], None]], int]


class Supervisor:
    """Keeps ``count`` workers running ``target(listener, ready)`` until a stop signal.

    ``target`` runs in a forked child; it calls ``ready()`` once it accepts connections and
    returns the child's exit code. ``run()`` returns 0 after a requested stop (``stopped_by``
    names the signal), 1 when the workers could not be started or kept up (each reason
    logged).
    """

    def __init__(
        self,
        listener: socket.socket,
        count: int,
        target: WorkerTarget,
        *,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        notifier: SdNotifier | None = None,
    ) -> None:
        self._notifier = SdNotifier(None) if notifier is None else notifier
        self._serving = False
        self._listener = listener
        self._target = target
        self._stop_timeout_s = stop_timeout_s
        self._slots = [_Slot(i + 1) for i in range(count)]
        self._state = _State()
        self._announced = False
        self._retiring: list[_Worker] = []  # replaced by a rolling restart, stopping
        self._wake_r, self._wake_w = os.pipe()

    # --- signals -------------------------------------------------------------------------------

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._state.stop is not None:
            self._state.kill = True
        self._state.stop = signum

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._state.reload = True

    def _on_child(self, signum: int, frame: FrameType | None) -> None:
        pass  # the wake-up fd is the point: the loop reaps

    def _install_signals(self) -> dict[int, object]:
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        handlers = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGHUP: self._on_reload,
            signal.SIGCHLD: self._on_child,
        }
        return {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    # --- the loop ------------------------------------------------------------------------------

    @property
    def stopped_by(self) -> int | None:
        return self._state.stop

    def run(self) -> int:
        previous = self._install_signals()
        try:
            code = self._supervise()
            self._stop_all()
            return code
        finally:
            signal.set_wakeup_fd(-1)
            for sig, handler in previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _supervise(self) -> int:
        for slot in self._slots:
            slot.active = self._spawn(slot.index)
        while self._state.stop is None:
            self._wait(self._next_timeout())
            code = self._reap()
            if code is not None:
                return code
            now = time.monotonic()
            for slot in self._slots:
                if slot.active is None and slot.restart_at is not None and now >= slot.restart_at:
                    slot.restart_at = None
                    slot.active = self._spawn(slot.index)
            self._announce()
            self._roll(now)
        name = signal.Signals(self._state.stop).name
        log.info("stopping the workers", extra={"fields": {"signal": name}})
        return 0

    def _workers(self) -> list[_Worker]:
        found = [w for s in self._slots for w in (s.active, s.incoming) if w is not None]
        return found + self._retiring

    def _next_timeout(self) -> float:
        now = time.monotonic()
        timeout = 1.0
        for slot in self._slots:
            if slot.restart_at is not None:
                timeout = min(timeout, max(0.0, slot.restart_at - now))
        return timeout

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r] + [w.ready_fd for w in self._workers() if w.ready_at is None]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        now = time.monotonic()
        for fd in readable:
            if fd == self._wake_r:
                self._empty_wake_pipe()
                continue
            worker = next(w for w in self._workers() if w.ready_fd == fd)
            if os.read(fd, 1) == _READY:
                worker.ready_at = now
                log.info(
                    "worker serving", extra={"fields": {"worker": worker.slot, "pid": worker.pid}}
                )
            else:
                worker.ready_at = None  # closed without serving: its exit is reaped below

    def _announce(self) -> None:
        """READY=1 for systemd once every worker serves; STATUS= whenever that changes."""
        count = len(self._slots)
        serving = sum(s.active is not None and s.active.ready_at is not None for s in self._slots)
        if (serving == count) == self._serving:
            return
        self._serving = serving == count
        if not self._serving:
            self._notifier.status(f"{serving} of {count} workers serving, restarting the others")
            return
        status = f"{count} workers serving"
        if not self._announced:
            self._announced = True
            fields = {"workers": count, "pid": os.getpid()}
            log.info("all workers serving", extra={"fields": fields})
            self._notifier.ready(status)
        else:
            self._notifier.status(status)

    # --- children ------------------------------------------------------------------------------

    def _spawn(self, slot: int) -> _Worker:
        supervisor = os.getpid()
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # rolling restarts are ours
                _stop_with(supervisor)
                os.close(read_fd)
                for fd in [self._wake_r, self._wake_w] + [w.ready_fd for w in self._workers()]:
                    os.close(fd)

                def ready() -> None:
                    os.write(write_fd, _READY)

                code = self._target(self._listener, ready)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker failed", extra={"fields": {"worker": slot}})
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        log.info("worker started", extra={"fields": {"worker": slot, "pid": pid}})
        return _Worker(slot, pid, read_fd, time.monotonic())

    def _reap(self) -> int | None:
        """Collect exited workers; a code when the supervisor must give up."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            code = self._exited(pid, status)
            if code is not None:
                return code

    def _exited(self, pid: int, status: int) -> int | None:
        for old in self._retiring:
            if old.pid == pid:
                self._retiring.remove(old)
                os.close(old.ready_fd)
                return None
        slot = next((s for s in self._slots if pid in _pids(s)), None)
        if slot is None:
            return None
        found = slot.incoming if slot.active is None or slot.active.pid != pid else slot.active
        assert found is not None
        worker = found
        os.close(worker.ready_fd)
        how = _describe(status)
        if worker is slot.incoming:
            slot.incoming = None
            self._state.rolling.clear()
            self._reloaded()
            log.error(
                "a replacement worker did not start: the rolling restart stopped, the "
                "running workers stay",
                extra={"fields": {"worker": slot.index, "pid": pid, "exit": how}},
            )
            return None
        slot.active = None
        if not self._announced and worker.ready_at is None:
            log.error(
                "a worker did not start (see the lines above)",
                extra={"fields": {"worker": slot.index, "pid": pid, "exit": how}},
            )
            return 1
        now = time.monotonic()
        quick = worker.ready_at is None or now - worker.ready_at < STABLE_S
        slot.quick_failures = slot.quick_failures + 1 if quick else 0
        if slot.quick_failures >= MAX_QUICK_FAILURES:
            log.error(
                "a worker keeps failing: stopping the server",
                extra={"fields": {"worker": slot.index, "failures": slot.quick_failures}},
            )
            return 1
        delay = 0.0
        if slot.quick_failures:
            delay = min(BACKOFF_FIRST_S * 2 ** (slot.quick_failures - 1), BACKOFF_MAX_S)
        slot.restart_at = now + delay
        log.warning(
            "worker exited: restarting it",
            extra={"fields": {"worker": slot.index, "pid": pid, "exit": how, "in_s": delay}},
        )
        return None

    # --- rolling restart -----------------------------------------------------------------------

    def _roll(self, now: float) -> None:
        state = self._state
        if state.reload:
            state.reload = False
            if not state.rolling and self._announced:
                log.info("rolling restart of the workers")
                state.rolling = [s.index for s in self._slots]
                self._notifier.notify("RELOADING=1", "STATUS=rolling restart of the workers")
        if not state.rolling:
            return
        slot = self._slots[state.rolling[0] - 1]
        incoming = slot.incoming
        if incoming is None:
            if slot.active is None or slot.active.ready_at is None:
                return  # restarting anyway: wait until it serves
            slot.incoming = self._spawn(slot.index)
            return
        if incoming.ready_at is None:
            if now - incoming.born > REPLACE_TIMEOUT_S:
                log.error(
                    "a replacement worker did not serve in time: the rolling restart stopped",
                    extra={"fields": {"worker": slot.index, "pid": incoming.pid}},
                )
                _signal(incoming.pid, signal.SIGKILL)
            return
        old, slot.active, slot.incoming = slot.active, incoming, None
        slot.quick_failures = 0
        if old is not None:
            old.retiring = True
            self._retiring.append(old)
            _signal(old.pid, signal.SIGTERM)
        state.rolling.pop(0)
        if not state.rolling:
            log.info("rolling restart done")
            self._reloaded()

    def _reloaded(self) -> None:
        count = len(self._slots)
        self._notifier.notify("READY=1", f"STATUS={count} workers serving")

    # --- stopping ------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        self._notifier.stopping("stopping the workers")
        workers = self._workers()
        for worker in workers:
            _signal(worker.pid, signal.SIGKILL if self._state.kill else signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout_s
        remaining = {w.pid for w in workers}
        killed = self._state.kill
        while remaining:
            left = deadline - time.monotonic()
            if (left <= 0 or self._state.kill) and not killed:
                log.error(
                    "workers still running after the stop timeout: killing them",
                    extra={"fields": {"pids": sorted(remaining)}},
                )
                for pid in remaining:
                    _signal(pid, signal.SIGKILL)
                killed = True
            self._drain_wakeups(min(max(left, 0.05), 0.5))
            while remaining:
                try:
                    pid, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    remaining.clear()
                    break
                if pid == 0:
                    break
                remaining.discard(pid)
        for worker in workers:
            with contextlib.suppress(OSError):
                os.close(worker.ready_fd)
        self._retiring.clear()
        for slot in self._slots:
            slot.active = slot.incoming = None
        log.info("workers stopped")

    def _drain_wakeups(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            if readable:
                self._empty_wake_pipe()

    def _empty_wake_pipe(self) -> None:
        """Read every byte the signal handlers wrote (the pipe is non-blocking)."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass


def _stop_with(supervisor: int) -> None:
    """SIGTERM this worker when the supervisor dies, even killed (Linux: PR_SET_PDEATHSIG), so
    no orphan goes on serving the port with nobody to stop it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning(
            "a worker will outlive a killed supervisor",
            extra={"fields": {"error": os.strerror(ctypes.get_errno())}},
        )
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _pids(slot: _Slot) -> set[int]:
    return {w.pid for w in (slot.active, slot.incoming) if w is not None}


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # already gone: reaped next
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
