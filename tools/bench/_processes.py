"""Stopping the processes a benchmark started (servers, engines, nginx, Xvfb)."""

from __future__ import annotations

import subprocess
import time


def stop(
    *processes: subprocess.Popen[bytes] | subprocess.Popen[str], timeout_s: float = 15.0
) -> None:
    """SIGTERM every process at once, then wait up to ``timeout_s`` in all for them to exit;
    SIGKILL those still running. Output pipes are drained, so none blocks on a full pipe."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
