"""Pure geometry: fitting pictures into zones, mapping a canvas onto a rotated screen."""

from __future__ import annotations

from typing import Literal

Fit = Literal["contain", "cover", "stretch"]
Rotation = Literal[0, 90, 180, 270]
Box = tuple[int, int, int, int]  # x, y, w, h


def fit_box(source: tuple[int, int], target: tuple[int, int], fit: Fit) -> Box:
    """Where a ``source``-sized picture goes in a ``target``-sized zone (may overflow: cover)."""
    sw, sh = source
    tw, th = target
    if sw <= 0 or sh <= 0:
        raise ValueError(f"empty picture {sw}x{sh}")
    if fit == "stretch":
        return 0, 0, tw, th
    scale = min(tw / sw, th / sh) if fit == "contain" else max(tw / sw, th / sh)
    w = max(1, round(sw * scale))
    h = max(1, round(sh * scale))
    return (tw - w) // 2, (th - h) // 2, w, h


def rotated_size(size: tuple[int, int], rotation: Rotation) -> tuple[int, int]:
    """The logical (content) size of a physical screen turned by ``rotation`` degrees."""
    return (size[1], size[0]) if rotation in (90, 270) else size


def rotate_box(box: Box, size: tuple[int, int], rotation: Rotation) -> Box:
    """``box`` in a ``size`` logical canvas, as a box on the physical screen.

    Rotation is clockwise: content drawn upright appears upright on a screen mounted turned
    ``rotation`` degrees clockwise.
    """
    x, y, w, h = box
    cw, ch = size
    if rotation == 0:
        return box
    if rotation == 180:
        return cw - x - w, ch - y - h, w, h
    if rotation == 90:
        return ch - y - h, x, h, w
    return y, cw - x - w, h, w
