"""Every route of /openapi.json against hostile bodies, on a real ``signage server`` process:
each answer is a 4xx, and the server's memory stays flat (four floods at a time included)."""

from __future__ import annotations

import re
import selectors
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.server.server_process import ServerProcess, reset_peak, rss_kib, server_process

MIB = 1024 * 1024
CHUNK = 64 * 1024
FLOOD_MAX = 80 * MIB  # above every route's limit (the largest, one-shot media, is 64 MiB)
PEAK_GROWTH_MAX_MIB = 64  # the unbounded server grew by 1.3 GiB under four 200 MiB bodies


@dataclass(frozen=True)
class Hostile:
    name: str
    headers: dict[str, str]
    chunks: Callable[[], Iterator[bytes]]
    chunked: bool = False


def _repeat(data: bytes, total: int) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        for _ in range(0, total, len(data)):
            yield data

    return chunks


def _once(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([data])


DEEP = b"[" * 10_000 + b"]" * 10_000
HOSTILE = [
    # Declares 200 MiB and sends the first 64 KiB: must be refused on the headers.
    Hostile(
        "declared-200MiB",
        {"Content-Type": "application/json", "Content-Length": str(200 * MIB)},
        _once(b"[" * CHUNK),
    ),
    # No length at all: only counting the streamed bytes can stop it.
    Hostile(
        "chunked-flood",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        _repeat(b"[" * CHUNK, FLOOD_MAX),
        chunked=True,
    ),
    Hostile(
        "deep-json",
        {"Content-Type": "application/json", "Content-Length": str(len(DEEP))},
        _once(DEEP),
    ),
    Hostile(
        "not-json",
        {"Content-Type": "application/json", "Content-Length": "4096"},
        _once(bytes(range(256)) * 16),
    ),
    Hostile(
        "huge-content-length",
        {"Content-Type": "application/json", "Content-Length": "9" * 5000},
        _once(b"{}"),
    ),
    Hostile(
        "huge-content-range",
        {"Content-Range": f"bytes 0-{'9' * 5000}/10", "Content-Length": "10"},
        _once(b"0123456789"),
    ),
]


def _send(port: int, request: bytes, hostile: Hostile) -> int | None:
    """Send ``request`` and the hostile body until the server answers (or stops reading);
    the status it answered, or None when the connection died without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        sock.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            pending = b""
            chunks = hostile.chunks()
            done = False
            while not done:
                events = selector.select(timeout=30)
                if not events:
                    return None
                readable = any(mask & selectors.EVENT_READ for _, mask in events)
                if readable:
                    break
                if not pending:
                    chunk = next(chunks, None)
                    if chunk is None:
                        pending = b"0\r\n\r\n" if hostile.chunked else b""
                        done = not pending
                    else:
                        pending = (
                            f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                            if hostile.chunked
                            else chunk
                        )
                try:
                    sent = sock.send(pending)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                pending = pending[sent:]
        sock.setblocking(True)
        sock.settimeout(30)
        head = b""
        try:
            while b"\r\n" not in head:
                data = sock.recv(4096)
                if not data:
                    break
                head += data
        except OSError:
            pass
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    return int(match.group(1)) if match else None


def _cases(live: ServerProcess, device_token: str) -> list[tuple[str, bytes, Hostile]]:
    schema = httpx.get(f"{live.url}/openapi.json").json()
    cases = []
    for template, operations in schema["paths"].items():
        path = re.sub(r"\{sha256\}", "0" * 64, template)
        path = re.sub(r"\{[^}]+\}", "x1", path)
        for method in operations:
            for auth in ("valid", "none"):
                token = device_token if not path.startswith("/api/v1/admin/") else live.admin_token
                headers = {"Host": "127.0.0.1", "Connection": "close"}
                if auth == "valid":
                    headers["Authorization"] = f"Bearer {token}"
                for hostile in HOSTILE:
                    lines = [f"{method.upper()} {path} HTTP/1.1"]
                    lines += [f"{k}: {v}" for k, v in {**headers, **hostile.headers}.items()]
                    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
                    label = f"{method.upper()} {path} [{auth} token, {hostile.name}]"
                    cases.append((label, request, hostile))
    return cases


def _device_token(live: ServerProcess) -> str:
    admin = {"Authorization": f"Bearer {live.admin_token}"}
    with httpx.Client(base_url=live.url, timeout=10) as client:
        created = client.post("/api/v1/pairings", json={"hardware_id": "hostile"}).json()
        claimed = client.post(
            "/api/v1/admin/pairings/claim", json={"code": created["code"]}, headers=admin
        )
        assert claimed.status_code == 201, claimed.text
        paired = client.get(
            f"/api/v1/pairings/{created['pairing_id']}",
            headers={"Authorization": f"Bearer {created['poll_token']}"},
        ).json()
    token: str = paired["device_token"]
    return token


def test_every_route_answers_hostile_bodies_with_a_4xx_in_bounded_memory(tmp_path: Path) -> None:
    # Limits generous enough that the hostile requests meet the body checks, not a lockout.
    env = {
        "SIGNAGE_SERVER__AUTH_FAILURES_PER_IP": "100000",
        "SIGNAGE_SERVER__PAIRING_REQUESTS_PER_IP": "100000",
    }
    with server_process(tmp_path / "srv", **env) as live:
        cases = _cases(live, _device_token(live))
        warm = [c for c in cases if "[valid token, deep-json]" in c[0]]
        for _, request, hostile in warm:  # first use of every route allocates its caches
            _send(live.port, request, hostile)
        reset_peak(live.pid)
        baseline = rss_kib(live.pid)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda c: (c[0], _send(live.port, c[1], c[2])), cases))
        peak = rss_kib(live.pid, "VmHWM")
        assert live.process.poll() is None, "the server died"
        assert httpx.get(f"{live.url}/healthz").status_code == 200
    wrong = [
        f"{label}: {status}" for label, status in statuses if not (status and 400 <= status < 500)
    ]
    assert wrong == []
    assert len(statuses) >= 30 * 2 * len(HOSTILE)
    growth_mib = (peak - baseline) / 1024
    assert growth_mib < PEAK_GROWTH_MAX_MIB, f"peak RSS grew {growth_mib:.0f} MiB"
