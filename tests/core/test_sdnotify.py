"""The sd_notify client against real AF_UNIX datagram sockets, as systemd listens."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import SdNotifier, Watchdog
from core._sdnotify import notify_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's side: a datagram socket bound to a path, as ``$NOTIFY_SOCKET`` names it."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def received(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued, without waiting."""
    messages = []
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096))
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(timeout)


def test_ready_status_watchdog_stopping_reach_the_socket(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with SdNotifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.enabled
        assert notifier.status("loading")
        assert notifier.ready("playing l1")
        assert notifier.watchdog_ping()
        assert notifier.stopping("shutting down")
        assert sock.recv(4096) == b"STATUS=loading"
        assert sock.recv(4096) == b"READY=1\nSTATUS=playing l1"
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=shutting down"


def test_abstract_socket_names_start_with_at() -> None:
    name = f"signage-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        with SdNotifier.from_env({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.ready()
            assert sock.recv(4096) == b"READY=1"


def test_ready_is_sent_once_and_repeated_status_is_not_resent(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with SdNotifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.ready()
        assert not notifier.ready()
        assert notifier.ready("playing l2")  # later calls only update the status
        assert not notifier.status("playing l2")
        assert notifier.status("idle")
        assert received(sock) == [b"READY=1", b"STATUS=playing l2", b"STATUS=idle"]


def test_status_cannot_forge_other_assignments(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    with SdNotifier.from_env({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.status("layout\nREADY=1\r\nWATCHDOG=1")
        assert received(sock) == [b"STATUS=layout READY=1 WATCHDOG=1"]


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    with SdNotifier.from_env({"WATCHDOG_USEC": "30000000"}) as notifier:
        assert not notifier.enabled
        assert not notifier.watchdog.enabled
        assert not notifier.ready()
        assert not notifier.status("x")
        assert not notifier.stopping()
        assert not notifier.feed(1.0)
        assert notifier.watchdog.seconds_until_due(1.0) is None


def test_unsupported_socket_kind_disables_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="core._sdnotify"),
        SdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}) as notifier,
    ):
        assert not notifier.enabled
    assert "not notifying systemd" in caplog.text


def test_a_vanished_socket_is_logged_once_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with SdNotifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        with caplog.at_level(logging.WARNING, logger="core._sdnotify"):
            assert not notifier.ready()
            assert not notifier.status("x")
        assert caplog.text.count("could not notify systemd") == 1


def test_notify_address() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abc") == "\0abc"
    for bad in ("relative/path", "@", ""):
        with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
            notify_address(bad)


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0
    # Another process's watchdog (an inherited environment) is not ours to ping.
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_interval({}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid=7) is None


def test_from_env_reads_the_watchdog_for_this_process(listener: tuple[socket.socket, str]) -> None:
    _, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert SdNotifier.from_env(env).watchdog.interval_s == 2.0
    assert not SdNotifier.from_env({**env, "WATCHDOG_PID": "1"}).watchdog.enabled


def test_feed_pings_at_most_every_interval_while_time_advances(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with SdNotifier(path, watchdog_interval_s=15.0) as notifier:
        # 60 frames a second for 40 s of frame loop: pings at 0, 15 and 30 s.
        frames = [n / 60 for n in range(40 * 60)]
        pinged_at = [now for now in frames if notifier.feed(now)]
        assert pinged_at == [0.0, 15.0, 30.0]
        assert received(sock) == [b"WATCHDOG=1"] * 3
        assert notifier.watchdog.pings == 3
        assert notifier.watchdog.seconds_until_due(40.0) == pytest.approx(5.0)
        assert notifier.watchdog_due(45.0)


def test_feed_does_not_ping_when_time_stands_still() -> None:
    pings: list[float] = []

    def ping() -> bool:
        pings.append(0.0)
        return True

    watchdog = Watchdog(ping, interval_s=1.0)
    assert watchdog.feed(10.0)
    assert not watchdog.feed(12.0 - 2.0)  # same instant: the loop did not advance
    # A loop spinning on a clock that stopped (or went back) is not making progress.
    assert all(not watchdog.feed(9.0) for _ in range(100))
    assert watchdog.due(9.0 + 5.0)
    assert watchdog.feed(11.5)
    assert len(pings) == 2


def test_a_failed_send_waits_for_the_next_interval() -> None:
    attempts: list[float] = []

    def failing_ping() -> bool:
        attempts.append(0.0)
        return False

    watchdog = Watchdog(failing_ping, interval_s=1.0)
    assert not watchdog.feed(0.0)
    assert not watchdog.feed(0.5)
    assert not watchdog.feed(1.0)
    assert len(attempts) == 2
    assert watchdog.pings == 0


def test_watchdog_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        Watchdog(lambda: True, interval_s=0.0)


def test_watchdog_stops_being_fed_when_the_frame_loop_stalls(
    listener: tuple[socket.socket, str],
) -> None:
    """A frozen renderer (the loop blocked in a call) must starve systemd's watchdog."""
    sock, path = listener
    # 20 ms watchdog: a ping every 10 ms while the loop runs.
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000", "WATCHDOG_PID": str(os.getpid())}
    with SdNotifier.from_env(env) as notifier:
        stall = threading.Event()
        stalled = threading.Event()
        resume = threading.Event()
        finish = threading.Event()

        def frame_loop() -> None:
            while not finish.is_set():
                notifier.feed(time.monotonic())
                if stall.is_set() and not resume.is_set():
                    stalled.set()
                    resume.wait(30)  # the renderer hangs here
                time.sleep(0.001)

        thread = threading.Thread(target=frame_loop, daemon=True)
        thread.start()
        try:
            assert sock.recv(4096) == b"WATCHDOG=1"  # running: pinged
            stall.set()
            assert stalled.wait(10)
            received(sock)  # everything sent before the stall
            time.sleep(0.3)  # 30 intervals with the loop blocked
            assert received(sock) == []
            pings_while_stalled = notifier.watchdog.pings
            resume.set()
            assert sock.recv(4096) == b"WATCHDOG=1"  # advancing again: pinged again
            # The loop thread counts a ping just after sending it: give it a moment.
            deadline = time.monotonic() + 10
            while notifier.watchdog.pings <= pings_while_stalled and time.monotonic() < deadline:
                time.sleep(0.001)
            assert notifier.watchdog.pings > pings_while_stalled
        finally:
            resume.set()
            finish.set()
            thread.join(10)
