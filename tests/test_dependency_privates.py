"""What we use of our dependencies that they do not promise to keep, checked at the pinned versions.

Each use has no public equivalent (the use site says why). A test here pins the version the use
was checked against: when constraints.txt moves (``./dev lock``) or the installed version differs,
it fails first and says what to re-check, before the feature breaks quietly (a slower download,
a video zone that renders nothing). Then each test checks that the attribute still does what we
rely on. After re-checking, move the pin in ``CHECKED``.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.metadata
from pathlib import Path

import httpcore
import httpx
import mpv
import pygame
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cache._fetch import HTTP_READ_BYTES

CHECKED = {
    "fastapi": "0.165.0",
    "httpcore": "1.0.9",
    "python-mpv": "1.0.8",
    "pygame-ce": "2.5.8",
    "uvicorn": "0.54.0",
}
RECHECK = {
    "httpcore": (
        "cache/_fetch.py raises AsyncHTTP11Connection.READ_NUM_BYTES to 256 KiB: check that "
        "httpcore/_async/http11.py still reads the socket with self.READ_NUM_BYTES and that no "
        "public setting for the read size appeared"
    ),
    "python-mpv": (
        "zones/_mpv_render.py calls mpv._mpv_render_context_render(context.handle, params) with "
        "its own render parameters: check whether MpvRenderParam.TYPES knows sw_size, "
        "sw_format, sw_stride and sw_pointer (then MpvRenderContext.render() will do) and that "
        "the raw binding still takes (handle, parameter array). zones/_mpv_rotation.py adds an "
        "mpv hook on MPV._event_handle (the client python-mpv's event loop waits on): check "
        "whether python-mpv binds mpv_hook_add/mpv_hook_continue now, and that HOOK events "
        "still reach register_event_callback"
    ),
    "pygame-ce": (
        "zones/_mpv_render.py gives mpv Surface._pixels_address as the software render target "
        "and zones/_gl_draw.py hands it to glTexSubImage2D: check that pygame-ce's Surface reference still documents it as the pixel buffer's "
        "address"
    ),
    "uvicorn": (
        "server/_connections.py subclasses uvicorn's HttpToolsProtocol and H11Protocol and reads "
        "their cycle (response_complete, more_body), flow.read_paused, loop and transport, and "
        "hooks connection_made, data_received, on_response_complete and connection_lost: check "
        "they still exist and mean the same, and whether uvicorn gained a request header timeout "
        "(then use it); tests/server/test_slow_clients.py must still pass"
    ),
    "fastapi": (
        "server/_problems.py makes ApiError an HTTPException because FastAPI's request handler "
        "re-raises HTTPException from body parsing (anything else becomes a generic 400): check "
        "fastapi/routing.py get_request_handler still does, so json_too_deep and too_large reach "
        "the client"
    ),
}
CONSTRAINTS = Path(__file__).resolve().parents[1] / "constraints.txt"


def pinned(distribution: str) -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == distribution:
            return version.strip()
    raise AssertionError(f"{distribution} is not pinned in constraints.txt")


@pytest.mark.parametrize("distribution", sorted(CHECKED))
def test_the_pinned_version_is_the_one_the_private_use_was_checked_against(
    distribution: str,
) -> None:
    checked = CHECKED[distribution]
    for where, version in (
        ("constraints.txt pins", pinned(distribution)),
        ("the environment has", importlib.metadata.version(distribution)),
    ):
        assert version == checked, (
            f"{where} {distribution} {version}, but its private use was checked on {checked}. "
            f"Re-check: {RECHECK[distribution]}. Then set CHECKED[{distribution!r}] here."
        )


class _OneResponse(httpcore.AsyncNetworkStream):
    """A connection that answers one request with a body and records the sizes asked for."""

    def __init__(self, body: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
        self._pending = head + body
        self.asked: list[int] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore)
        self.asked.append(max_bytes)
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore)
        return None

    async def aclose(self) -> None:
        return None


async def test_httpcore_reads_the_socket_in_blocks_of_read_num_bytes() -> None:
    stream = _OneResponse(b"x" * (3 * HTTP_READ_BYTES))
    origin = httpcore.Origin(b"http", b"assets.invalid", 80)
    async with httpcore.AsyncHTTP11Connection(origin, stream) as connection:
        response = await connection.request("GET", "http://assets.invalid/a")
    assert len(response.content) == 3 * HTTP_READ_BYTES
    assert stream.asked and set(stream.asked) == {HTTP_READ_BYTES}, (
        f"httpcore asked for {sorted(set(stream.asked))} bytes per read, not READ_NUM_BYTES "
        f"({HTTP_READ_BYTES}): {RECHECK['httpcore']}"
    )


def test_python_mpv_render_cannot_pass_software_targets_but_its_raw_binding_can() -> None:
    software = {"sw_size", "sw_format", "sw_stride", "sw_pointer"}
    assert not software & set(mpv.MpvRenderParam.TYPES), (
        f"python-mpv now knows {sorted(software & set(mpv.MpvRenderParam.TYPES))}: "
        "MpvRenderContext.render() can replace the raw call in zones/_mpv.py"
    )
    render = getattr(mpv, "_mpv_render_context_render", None)
    assert render is not None, f"the raw binding is gone: {RECHECK['python-mpv']}"
    handle, params = render.argtypes
    assert handle is mpv.MpvRenderCtxHandle, RECHECK["python-mpv"]
    assert params is ctypes.POINTER(mpv.MpvRenderParam), RECHECK["python-mpv"]
    assert render.errcheck is not None, "render errors would pass silently"


def test_python_mpv_delivers_hooks_of_its_event_client_to_event_callbacks() -> None:
    player = mpv.MPV(vo="null", ao="null", idle="yes", config="no")
    try:
        handle = getattr(player, "_event_handle", None)
        assert isinstance(handle, mpv.MpvHandle), f"MPV._event_handle: {RECHECK['python-mpv']}"
        assert not hasattr(mpv, "_mpv_hook_add"), "python-mpv binds hooks now: use its binding"
        hooks: list[str] = []

        def on_event(event: object) -> None:
            if event.event_id.value == mpv.MpvEventID.HOOK:  # type: ignore[attr-defined]
                hooks.append(event.data.name)  # type: ignore[attr-defined]
                mpv.backend.mpv_hook_continue(handle, event.data.id)  # type: ignore[attr-defined]

        from zones._mpv_rotation import _bind

        _bind()
        player.register_event_callback(on_event)
        assert mpv.backend.mpv_hook_add(handle, 0, b"on_load", 0) == 0
        player.command("loadfile", str(Path(__file__).parent / "data/red.png"))
        player.wait_for_event("file_loaded", timeout=10)
        assert hooks == ["on_load"], RECHECK["python-mpv"]
    finally:
        player.terminate()


def test_pygame_pixels_address_is_where_the_first_pixel_lives() -> None:
    surface = pygame.Surface((8, 2), depth=32)
    surface.fill((0, 0, 0))
    address = getattr(surface, "_pixels_address", None)
    assert isinstance(address, int), f"Surface._pixels_address is gone: {RECHECK['pygame-ce']}"
    pixels = (ctypes.c_uint32 * (surface.get_pitch() // 4 * 2)).from_address(address)
    pixels[surface.get_pitch() // 4 + 1] = surface.map_rgb((10, 20, 30))  # (1, 1)
    assert surface.get_at((1, 1))[:3] == (10, 20, 30), RECHECK["pygame-ce"]


def test_asyncio_keeps_its_runnable_callbacks_in_the_loops_ready_queue() -> None:
    """tools/sim/_clock.py's SimClock ends a settle when ``loop._ready`` is empty; without it
    the simulator falls back to 100 yields per deadline (a simulated day runs much slower)."""
    loop = asyncio.new_event_loop()
    try:
        ready = getattr(loop, "_ready", None)
        assert ready is not None and not ready, "asyncio's loop has no _ready queue any more"
        loop.call_soon(lambda: None)
        assert len(ready) == 1, "call_soon no longer queues on loop._ready"
        loop.run_until_complete(asyncio.sleep(0))
        assert not ready
    finally:
        loop.close()


def test_uvicorn_protocols_keep_the_hooks_the_slow_client_guard_uses() -> None:
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as ToolsCycle

    hooks = ("connection_made", "data_received", "on_response_complete", "connection_lost")
    for protocol in (H11Protocol, HttpToolsProtocol):
        missing = [hook for hook in hooks if not callable(getattr(protocol, hook, None))]
        assert not missing, f"{protocol.__name__} lost {missing}: {RECHECK['uvicorn']}"
    for cycle in (H11Cycle, ToolsCycle):
        names = cycle.__init__.__code__.co_names
        for attribute in ("response_complete", "more_body"):
            assert attribute in names, f"{cycle} has no {attribute}: {RECHECK['uvicorn']}"
    assert "read_paused" in FlowControl.__init__.__code__.co_names, RECHECK["uvicorn"]


class _Body(BaseModel):
    value: int


async def test_fastapi_lets_http_exceptions_from_body_parsing_through() -> None:
    app = FastAPI()

    @app.post("/")
    async def take(body: _Body) -> int:
        return body.value

    async def receive_refusing() -> dict[str, object]:
        raise HTTPException(413, "from body parsing")

    async def app_refusing_bodies(scope: dict[str, object], receive: object, send: object) -> None:
        await app(scope, receive_refusing, send)  # type: ignore[arg-type]

    transport = httpx.ASGITransport(app=app_refusing_bodies)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/", json={"value": 1})
    assert answer.status_code == 413, f"FastAPI made it {answer.status_code}: {RECHECK['fastapi']}"
