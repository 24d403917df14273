"""Rotated clips (a phone's portrait video): turned upright by a filter, before any renderer.

A container may say how its picture is to be displayed ("rotate 90°", a display matrix).
mpv normally leaves the frames as decoded and turns them at render time (``video-rotate``),
but libmpv 0.35's software render API cannot: it aborts the whole process on the first frame
of such a clip (``mp_image_crop: Assertion `x1 <= img->w && y1 <= img->h'``). So the handle
is told to ignore the container's rotation (``video-rotate=no``) and each file gets, before
its decoders start, a ``transpose``/flip filter for that rotation. Frames then leave mpv's
filter chain already upright and every render path sees an ordinary (portrait) video: the
software path fits it into the zone like any other, and an OpenGL render context does the
same, so both paths show identical pixels. ``rotate_by_filter(handle)`` is the whole
interface: an output calls it once on a new handle, before its first file. ``then`` gives the
filters that follow the rotation for the file being opened (a video wall's crop, which
applies to the upright picture).

The filter is chosen in mpv's ``on_preloaded`` hook: the file is opened and its tracks are
known, nothing is decoded yet. python-mpv 1.0.8 has no binding for hooks, so the two calls
(``mpv_hook_add``, ``mpv_hook_continue``) are declared here from mpv's client.h. A hook must
always be continued, or mpv waits for it forever (the load would then time out): whatever
happens while the filter is chosen, ``mpv_hook_continue`` is called.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

import mpv

log = logging.getLogger(__name__)

HOOK = "on_preloaded"

# Clockwise degrees (mpv's ``demux-rotation``) -> the filter that turns the frame upright.
_FILTERS: dict[int, str] = {
    90: "lavfi=[transpose=clock]",
    180: "lavfi=[hflip,vflip]",
    270: "lavfi=[transpose=cclock]",
}

_bound = False


def _bind() -> None:
    global _bound
    if _bound:
        return
    backend = mpv.backend
    backend.mpv_hook_add.argtypes = [mpv.MpvHandle, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_int]
    backend.mpv_hook_add.restype = ctypes.c_int
    backend.mpv_hook_continue.argtypes = [mpv.MpvHandle, ctypes.c_uint64]
    backend.mpv_hook_continue.restype = ctypes.c_int
    _bound = True


def rotation_filter(degrees: int) -> str:
    """The ``vf`` that shows a frame rotated ``degrees`` clockwise upright ("" for none).

    mpv only rotates by quarter turns; anything else is rounded to the nearest one.
    """
    quarter = (round(degrees / 90) * 90) % 360
    return _FILTERS.get(quarter, "")


def video_rotation(tracks: object) -> int:
    """The clockwise rotation of the video track mpv will pick (the first one that is not a
    cover picture), from mpv's ``track-list``; 0 when there is none."""
    if not isinstance(tracks, list):
        return 0
    for track in tracks:
        if not isinstance(track, dict) or track.get("type") != "video":
            continue
        if track.get("albumart"):
            continue
        rotation = track.get("demux-rotation")
        return rotation if isinstance(rotation, int) else 0
    return 0


def rotate_by_filter(player: Any, *, then: Callable[[], str] = lambda: "") -> None:
    """Make ``player`` (an ``mpv.MPV``) turn rotated clips upright with a filter.

    Must be called before the first ``loadfile``. Events, the hook's included, reach
    python-mpv's event thread; the filter is set there, as a file-local option (it ends with
    the file).
    """
    _bind()
    player["video-rotate"] = "no"  # the render API must never see a rotation
    # Hooks belong to the client that receives the events: python-mpv's event client, which it
    # keeps private (tests/test_dependency_privates.py).
    handle = player._event_handle

    def on_event(event: Any) -> None:
        if event.event_id.value != mpv.MpvEventID.HOOK:
            return
        hook = event.data
        try:
            if hook.name == HOOK:
                turned = rotation_filter(video_rotation(player.track_list))
                vf = ",".join(f for f in (turned, then()) if f)
                player.command("set", "file-local-options/vf", vf)
                if vf:
                    log.debug("rotated clip", extra={"fields": {"filter": vf}})
        except Exception:  # a core shutting down; the file then fails by itself
            log.debug("choosing the rotation filter failed", exc_info=True)
        finally:
            mpv.backend.mpv_hook_continue(handle, hook.id)

    player.register_event_callback(on_event)
    if mpv.backend.mpv_hook_add(handle, 0, HOOK.encode(), 0) < 0:
        raise RuntimeError("libmpv refused the on_preloaded hook")
