"""Text zones: wrapped and auto-sized, or a ticker scrolling at ``speed_px_s``.

The scroll offset is a function of media time (``(now - start) * speed``), not of how many
frames were drawn, so the ticker moves at the same speed on a busy Pi and in a virtual-clock
test, and a dropped frame does not slow it down.
"""

from __future__ import annotations

import functools
import math

import pygame

from core import ZoneError
from sync import Item, TextItem
from zones._api import RenderContext, Size, register_renderer
from zones._fonts import font, parse_colour

_SEGMENT_PX = 4096  # a long ticker is rendered in pieces: one huge surface would not fit memory
_MIN_SIZE = 6
_LAID_OUT_CACHE = 8  # texts kept rendered (a full-screen block is up to 8 MB)


def wrap(text: str, face: pygame.font.Font, width: int) -> list[str]:
    """Lines no wider than ``width`` (a word longer than the line is cut by characters)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if face.size(candidate)[0] <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while face.size(word)[0] > width and len(word) > 1:
                cut = next(
                    i for i in range(len(word), 0, -1) if face.size(word[:i])[0] <= width or i == 1
                )
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    return lines


def _longest_prefix(word: str, face: pygame.font.Font, width: int) -> int:
    for cut in range(len(word), 1, -1):
        if face.size(word[:cut])[0] <= width:
            return cut
    return 1


def fit_font_size(text: str, size: Size, *, bold: bool = False) -> int:
    """The largest font size at which ``text`` wrapped to the zone's width fits its height."""
    weight = "bold" if bold else "regular"
    low, high = _MIN_SIZE, max(_MIN_SIZE, size[1])
    while low < high:
        mid = (low + high + 1) // 2
        face = font(mid, weight)
        lines = wrap(text, face, size[0])
        fits = len(lines) * face.get_linesize() <= size[1] and all(
            face.size(line)[0] <= size[0] for line in lines
        )
        if fits:
            low = mid
        else:
            high = mid - 1
    return low


def fit_line_size(text: str, size: Size, *, bold: bool = False) -> int:
    """The largest font size at which ``text`` on one line fits ``size``."""
    weight = "bold" if bold else "regular"
    low, high = _MIN_SIZE, max(_MIN_SIZE, size[1])
    while low < high:
        mid = (low + high + 1) // 2
        face = font(mid, weight)
        width, height = face.size(text)
        if width <= size[0] and height <= size[1]:
            low = mid
        else:
            high = mid - 1
    return low


def render_block(
    lines: list[str], face: pygame.font.Font, width: int, colour: pygame.Color, align: str
) -> pygame.Surface:
    height = max(1, len(lines) * face.get_linesize())
    block = pygame.Surface((max(1, width), height), pygame.SRCALPHA)
    for row, line in enumerate(lines):
        if not line:
            continue
        rendered = face.render(line, True, colour)
        x = {"left": 0, "center": (width - rendered.get_width()) // 2}.get(
            align, width - rendered.get_width()
        )
        block.blit(rendered, (x, row * face.get_linesize()))
    return block


class TextRenderer:
    prerender = True  # start/draw before the deadline are invisible: the switch is a blit

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._item: TextItem | None = None
        self._size: Size = (1, 1)
        self._pieces: list[tuple[int, pygame.Surface]] = []  # (offset along the scroll, piece)
        self._length = 0  # extent of the content along the scroll axis
        self._start_ns = 0
        self._last_offset: int | None = None

    @property
    def opaque(self) -> bool:
        """True when an opaque background covers every pixel: the zone's surface then needs
        no alpha, and composing it is a copy instead of a blend (twice per frame saved)."""
        item = self._item
        background = None if item is None else parse_colour(item.background)
        return background is not None and background.a == 255

    async def prepare(self, item: Item, size: Size) -> None:
        if not isinstance(item, TextItem):
            raise ZoneError(f"not a text item: {item.type}", zone=self._context.zone_id)
        self._item, self._size = item, size
        pieces, self._length = _laid_out(
            item.text, item.scroll, item.align, item.color, item.font_size, size
        )
        self._pieces = list(pieces)

    def start(self, at_ns: int) -> None:
        self._start_ns = at_ns
        self._last_offset = None

    def _offset(self, now_ns: int) -> int:
        """Scroll position in whole pixels; the content re-enters after leaving the zone."""
        item = self._item
        if item is None or item.scroll == "none":
            return 0
        travel = self._length + (self._size[0] if item.scroll == "left" else self._size[1])
        moved = max(0, now_ns - self._start_ns) * item.speed_px_s / 1e9
        return int(moved) % max(1, travel)

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        item = self._item
        if item is None:
            return False
        offset = self._offset(now_ns)
        if offset == self._last_offset:
            return False
        self._last_offset = offset
        background = parse_colour(item.background)
        surface.fill(background if background is not None else (0, 0, 0, 0))
        width, height = self._size
        for start, piece in self._pieces:
            if item.scroll == "left":
                x = width - offset + start
                if x < width and x + piece.get_width() > 0:
                    surface.blit(piece, (x, (height - piece.get_height()) // 2))
            elif item.scroll == "up":
                surface.blit(piece, (0, height - offset + start))
            else:
                surface.blit(piece, (0, max(0, (height - piece.get_height()) // 2)))
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        item = self._item
        if item is None or item.scroll == "none":
            return None
        moved = max(0, now_ns - self._start_ns) * item.speed_px_s / 1e9
        next_pixel = math.floor(moved) + 1
        return self._start_ns + math.ceil(next_pixel * 1e9 / item.speed_px_s)

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        """Scrolling is a function of time: there is no timer to stop."""

    def release(self) -> None:
        self._pieces = []


@functools.lru_cache(maxsize=_LAID_OUT_CACHE)
def _laid_out(
    text: str, scroll: str, align: str, color: str | None, font_size: int | None, size: Size
) -> tuple[tuple[tuple[int, pygame.Surface], ...], int]:
    """The rendered pieces of a text and their extent along the scroll axis.

    Cached: a playlist shows the same text every cycle, and fitting and rendering a full-screen
    block costs milliseconds each time. The surfaces are only ever read (blitted from).
    """
    colour = parse_colour(color) or pygame.Color("white")
    if scroll == "left":
        face = font(font_size or max(_MIN_SIZE, int(size[1] * 0.7)))
        pieces, length = _ticker_pieces(" ".join(text.split()), face, colour)
        return tuple(pieces), length
    face = font(font_size or fit_font_size(text, size))
    block = render_block(wrap(text, face, size[0]), face, size[0], colour, align)
    return ((0, block),), block.get_height()


def _ticker_pieces(
    text: str, face: pygame.font.Font, colour: pygame.Color
) -> tuple[list[tuple[int, pygame.Surface]], int]:
    pieces: list[tuple[int, pygame.Surface]] = []
    x = 0
    chunk = ""
    for word in text.split(" "):
        candidate = f"{chunk} {word}" if chunk else word
        if chunk and face.size(candidate)[0] > _SEGMENT_PX:
            piece = face.render(chunk + " ", True, colour)
            pieces.append((x, piece))
            x += piece.get_width()
            chunk = word
        else:
            chunk = candidate
    if chunk:
        piece = face.render(chunk, True, colour)
        pieces.append((x, piece))
        x += piece.get_width()
    return pieces, x


register_renderer("text", TextRenderer)
