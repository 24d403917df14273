"""Black and frozen frames: one definition, shared by the simulator, the benchmarks and tests.

**Black.** A pixel is *near black* when its luma is below 16: BT.601 luma of the 8-bit RGB
value, ``(299 R + 587 G + 114 B) / 1000`` rounded to the nearest integer (Pillow's ``"L"``
conversion), 16 being black in limited-range video, the level every decoder maps black to. So
(15, 15, 15) is near black and (16, 16, 16) is not. A zone of a presented frame is *black*
when at least 2 % of its area is near black at pixels where the item's own reference render
(the item drawn alone, over the layout background) is not: a black frame, a dark-grey one, a
half-black one all count, while a dark picture, black letterbox bars or a black layout
background do not, since the reference is dark at the same places.

**Frozen.** A playing video zone is *frozen* when it shows the same picture longer than one
source-frame interval plus one display frame (a 25 fps clip on a 60 Hz screen: 40 + 16.7 ms):
the next source frame was due and did not come. ``FreezeWatch`` follows one zone: it is told
when the zone's picture changed and answers how long the longest hold was.

The checks cost a few milliseconds per full-HD zone (Pillow releases the interpreter lock while
it converts), so callers that check every frame run them on a worker thread.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pygame
from PIL import Image, ImageChops

NEAR_BLACK_LUMA = 16  # luma below this is near black
BLACK_AREA = 0.02  # a zone with this share of unexpected near-black pixels is black
_TO_MASK = [255 if level < NEAR_BLACK_LUMA else 0 for level in range(256)]

Box = tuple[int, int, int, int]  # x, y, w, h


def _raw_mode(surface: pygame.Surface) -> str | None:
    """Pillow's raw mode for the surface's pixel layout in memory (e.g. ``BGRX``), if it is a
    plain 32-bit one; None otherwise."""
    if surface.get_bytesize() != 4 or sys.byteorder != "little":
        return None
    at = {shift // 8: name for name, mask, shift in
          zip("RGB", surface.get_masks(), surface.get_shifts(), strict=False) if mask}  # fmt: skip
    if sorted(at.values()) != ["B", "G", "R"]:
        return None
    return "".join(at.get(index, "X") for index in range(4))


def surface_image(surface: pygame.Surface, box: Box | None = None, sample: int = 1) -> Image.Image:
    """The ``box`` of the surface (default: all of it) as a Pillow RGB or RGBX image, a copy;
    with ``sample`` n, every n-th pixel of every n-th row (nearest, so values are unchanged)."""
    x, y, w, h = box if box is not None else (0, 0, *surface.get_size())
    mode = _raw_mode(surface)
    if mode is None:
        whole = Image.frombytes("RGB", surface.get_size(), pygame.image.tobytes(surface, "RGB"))
    else:
        # Read in place (the surface's bytes, rows ``pitch`` apart): no copy of the whole
        # frame. The buffer locks the surface until it is dropped, when this function returns.
        pixels = surface.get_buffer()
        whole = Image.frombuffer(
            "RGBX", surface.get_size(), pixels, "raw", mode, surface.get_pitch(), 1
        )
    if sample > 1:
        size = (max(1, w // sample), max(1, h // sample))
        return whole.resize(size, Image.Resampling.NEAREST, box=(x, y, x + w, y + h))
    return whole.crop((x, y, x + w, y + h))


def luma(surface: pygame.Surface, box: Box | None = None, sample: int = 1) -> Image.Image:
    """BT.601 luma (Pillow's ``"L"``) of the ``box``; with ``sample`` n, of every n-th pixel of
    every n-th row (the shares below are then estimates, exact for flat areas)."""
    return surface_image(surface, box, sample).convert("L")


def near_black(luma_image: Image.Image) -> Image.Image:
    """An ``L`` mask: 255 where ``luma_image`` is below 16, else 0."""
    return luma_image.point(_TO_MASK)


def near_black_mask(
    surface: pygame.Surface, box: Box | None = None, sample: int = 1
) -> Image.Image:
    """An ``L`` image: 255 where the pixel is near black (luma < 16), else 0."""
    return near_black(luma(surface, box, sample))


def black_share(
    frame: pygame.Surface,
    box: Box | None = None,
    reference: Image.Image | None = None,
    sample: int = 1,
) -> float:
    """The share of ``box`` (default: the whole frame) that is near black in ``frame`` where
    ``reference`` (a ``near_black_mask`` of the item's own render, of the same size and
    ``sample``) is not."""
    return black_share_of(luma(frame, box, sample), reference)


def black_share_of(luma_image: Image.Image, reference: Image.Image | None = None) -> float:
    """``black_share`` of a picture already turned into luma (``luma``)."""
    mask = near_black(luma_image)
    if reference is not None:
        if reference.size != mask.size:
            raise ValueError(f"reference is {reference.size}, the zone {mask.size}")
        mask = ImageChops.subtract(mask, reference)
    width, height = mask.size
    area = width * height
    return mask.histogram()[255] / area if area else 0.0


def is_black(
    frame: pygame.Surface,
    box: Box | None = None,
    reference: Image.Image | None = None,
    sample: int = 1,
) -> bool:
    """At least 2 % of the zone is near black where its reference render is not."""
    return black_share(frame, box, reference, sample) >= BLACK_AREA


def picture_digest(frame: pygame.Surface, box: Box | None = None) -> bytes:
    """Identifies the picture in ``box``: equal digests, same pixels."""
    import hashlib

    return hashlib.blake2b(surface_image(frame, box).tobytes(), digest_size=16).digest()


@dataclass
class FreezeWatch:
    """One playing video zone: how long each picture was held, against the allowed hold."""

    source_frame_ns: int  # the clip's frame interval (1 / its frame rate)
    display_frame_ns: int  # the screen's refresh interval
    _since_ns: int | None = None
    _digest: bytes | None = None
    longest_hold_ns: int = 0
    frozen: int = 0  # holds longer than allowed

    @property
    def limit_ns(self) -> int:
        return self.source_frame_ns + self.display_frame_ns

    def start(self, at_ns: int, digest: bytes | None = None) -> None:
        """The video starts playing at ``at_ns`` (its first picture, when known)."""
        self._since_ns, self._digest = at_ns, digest

    def picture(self, at_ns: int, digest: bytes) -> bool:
        """A frame presented at ``at_ns`` shows ``digest``; True when the hold that just ended
        was a freeze."""
        if self._since_ns is None:
            self.start(at_ns, digest)
            return False
        if digest == self._digest:
            return False
        return self._close(at_ns, digest)

    def stop(self, at_ns: int) -> bool:
        """The video stopped playing (it ended, or was replaced) at ``at_ns``."""
        if self._since_ns is None:
            return False
        frozen = self._close(at_ns, None)
        self._since_ns = None
        return frozen

    def _close(self, at_ns: int, digest: bytes | None) -> bool:
        assert self._since_ns is not None
        held = at_ns - self._since_ns
        self.longest_hold_ns = max(self.longest_hold_ns, held)
        self._since_ns, self._digest = at_ns, digest
        if held > self.limit_ns:
            self.frozen += 1
            return True
        return False
