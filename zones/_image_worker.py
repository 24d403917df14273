"""The image decoder process: pictures are decoded in a child process, never in the player.

Two reasons. Memory: decoding a large PNG takes its whole size in memory however small it is
shown (Pillow cannot decode PNG at a reduced size), and glibc seldom gives such peaks back;
in a child, the player's own memory stays at what it shows (the fitted pictures). Crashes:
Pillow's decoders for formats nobody tests on a kiosk (DDS, PSD, TGA, ICNS...) are C code
reading hostile input; a crash there (a segfault, an abort) kills the child, the player
reports the item as an error and starts a new child for the next picture. A decode that hangs
is killed after ``timeout_s``.

One child serves one request at a time (``ImageDecoder.decode`` blocks: call it off the
event loop). It is a fresh interpreter (``python -m zones._image_child FD``; forking a
process with mpv's and pygame's threads is unsafe), started with the player or on the first
request, talking over a socket pair with ``multiprocessing.connection`` (pickled requests and
pictures). Not ``multiprocessing.Process``: its ``spawn`` runs the parent's main script again
in the child, which breaks any program without an ``if __name__ == "__main__"`` guard. The
child ends when its socket closes (the player exits, even by SIGKILL) or at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from core import ZoneError
from zones._geometry import Fit
from zones._image_decode import Crop, DecodedPicture, decode_fitted

log = logging.getLogger(__name__)


class ImageDecoder:
    """A decoder child process, restarted when it dies; thread-safe, one request at a time."""

    def __init__(self, *, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self.started = 0  # child processes started (a crash costs one more)

    def decode(
        self,
        path: Path,
        size: tuple[int, int],
        fit: Fit,
        max_pixels: int,
        crop: Crop = None,
    ) -> DecodedPicture:
        """Decode in the child; ZoneError with a readable reason for any failure. Blocks."""
        with self._lock:
            conn = self._connection()
            try:
                conn.send((str(path), size, fit, max_pixels, crop))
                ready = conn.poll(self.timeout_s)
            except OSError:
                raise self._lost("stopped answering") from None
            if not ready:
                self._stop(kill=True)
                raise ZoneError(f"decoding took longer than {self.timeout_s:g} s; abandoned")
            try:
                reply = conn.recv()
            except (EOFError, OSError):
                raise self._lost("died") from None
        if reply[0] == "ok":
            picture = reply[1]
            assert isinstance(picture, DecodedPicture)
            return picture
        _, kind, message = reply
        raise ZoneError(f"{message} ({kind})" if message else kind)

    def start(self) -> None:
        """Start the child now rather than on the first picture (it takes a fresh interpreter
        a few hundred milliseconds to import Pillow). Blocks."""
        with self._lock:
            self._connection()

    def _connection(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self._stop(kill=True)
        ours, theirs = socket.socketpair()
        # The child finds our modules where we do (a source checkout run with PYTHONPATH too).
        path = os.pathsep.join(p for p in sys.path if p and Path(p).is_dir())
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "zones._image_child", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path, "PYGAME_HIDE_SUPPORT_PROMPT": "1"},
            )
        self._process, self._conn = process, Connection(ours.detach())
        self.started += 1
        return self._conn

    def _lost(self, what: str) -> ZoneError:
        """The child died while decoding: say how, and let the next request start another."""
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(1.0)
        self._stop(kill=True)
        how = _exit_reason(code)
        log.error("the image decoder %s (%s)", what, how)
        return ZoneError(f"the image decoder crashed on this file ({how})")

    def _stop(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # the child's recv() ends: it exits by itself
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0 if kill else 2.0)
            if process.poll() is None:
                process.kill()
                process.wait(2.0)

    def close(self) -> None:
        with self._lock:
            self._stop(kill=False)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def serve(conn: Connection) -> None:
    """The child (``zones/_image_child.py``): decode requests until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the player's to handle
    libc = _libc()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[object, ...] = ("ok", decode_fitted(*request))
        except Exception as exc:  # any decoder's error is an answer, not the end of the child
            reply = ("error", type(exc).__name__, str(exc))
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        del reply
        if libc is not None:
            libc.malloc_trim(0)  # a large picture's pages go back to the system now


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_decoder: ImageDecoder | None = None
_decoder_lock = threading.Lock()


def shared_decoder(timeout_s: float) -> ImageDecoder:
    """The process's decoder (every image zone of every player shares it)."""
    global _decoder
    with _decoder_lock:
        if _decoder is None:
            _decoder = ImageDecoder(timeout_s=timeout_s)
            atexit.register(_decoder.close)
        _decoder.timeout_s = timeout_s
        return _decoder
