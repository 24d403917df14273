"""Text zones: wrapped and auto-sized, or a ticker scrolling at ``speed_px_s``.

The scroll offset is a function of media time (``(now - start) * speed``), not of how many
frames were drawn, so the ticker moves at the same speed on a busy Pi and in a virtual-clock
test, and a dropped frame does not slow it down.
"""

from __future__ import annotations

import math

import pygame

from core import ZoneError
from sync import Item, TextItem
from zones._api import RenderContext, Size, register_renderer
from zones._fonts import font, parse_colour

_SEGMENT_PX = 4096  # a long ticker is rendered in pieces: one huge surface would not fit memory
_MIN_SIZE = 6


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

    async def prepare(self, item: Item, size: Size) -> None:
        if not isinstance(item, TextItem):
            raise ZoneError(f"not a text item: {item.type}", zone=self._context.zone_id)
        self._item, self._size = item, size
        colour = parse_colour(item.color) or pygame.Color("white")
        if item.scroll == "left":
            text = " ".join(item.text.split())
            face = font(item.font_size or max(_MIN_SIZE, int(size[1] * 0.7)))
            self._pieces, self._length = _ticker_pieces(text, face, colour)
        else:
            face = font(item.font_size or fit_font_size(item.text, size))
            block = render_block(wrap(item.text, face, size[0]), face, size[0], colour, item.align)
            self._pieces, self._length = [(0, block)], block.get_height()

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
