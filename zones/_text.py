"""Text zones: wrapped and auto-sized, or a ticker scrolling at ``speed_px_s``.

The scroll offset is a function of media time (``(now - start) * speed``), not of how many
frames were drawn, so the ticker moves at the same speed on a busy Pi and in a virtual-clock
test, and a dropped frame does not slow it down.

Right-to-left text (Arabic, Hebrew...) is shaped and laid out by zones._shaping: each paragraph
takes the direction of its first strong character, lines are broken in reading order and
reordered one by one. ``align`` stays physical (left, center, right) for every direction. A
ticker (``scroll: left``) whose text is right-to-left travels the other way, left to right, so
its first words enter first, from the left edge, as on Arabic news channels.
"""

from __future__ import annotations

import functools
import math

import pygame

from core import ZoneError
from protocol import Item, TextItem
from zones._api import RenderContext, Size, register_renderer
from zones._fonts import Face, font, parse_colour
from zones._shaping import (
    Paragraph,
    Run,
    line_runs,
    paragraph,
    render_line,
    render_runs,
    runs_width,
)
from zones._wrap import MIN_SIZE, Line, wrap_lines

# Wrapping and sizing live in zones._wrap; zones/__init__ and the clock import them from here.
from zones._wrap import fit_font_size as fit_font_size
from zones._wrap import fit_line_size as fit_line_size
from zones._wrap import wrap as wrap

_SEGMENT_PX = 4096  # a long ticker is rendered in pieces: one huge surface would not fit memory
_SHORT_RUN = 100  # characters: a longer run is measured word by word (shaping is per call)
_LAID_OUT_CACHE = 8  # texts kept rendered (a full-screen block is up to 8 MB)


def render_block(
    lines: list[Line],
    face: Face,
    width: int,
    colour: pygame.Color,
    align: str,
) -> pygame.Surface:
    """Wrapped lines one under the other, each placed by ``align`` (left, center, right)."""
    linesize = face.get_linesize()
    height = max(1, len(lines) * linesize)
    block = pygame.Surface((max(1, width), height), pygame.SRCALPHA)
    for row, (par, start, end) in enumerate(lines):
        if start >= end:
            continue
        rendered = render_line(par, start, end, face, colour)
        x = {"left": 0, "center": (width - rendered.get_width()) // 2}.get(
            align, width - rendered.get_width()
        )
        block.blit(rendered, (x, row * linesize))
    return block


class TextRenderer:
    prerender = True  # start/draw before the deadline are invisible: the switch is a blit

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._item: TextItem | None = None
        self._size: Size = (1, 1)
        self._pieces: list[tuple[int, pygame.Surface]] = []  # (offset along the scroll, piece)
        self._length = 0  # extent of the content along the scroll axis
        self._rtl = False  # a right-to-left ticker travels rightwards
        self._start_ns = 0
        self._last_offset: int | None = None
        self._still: pygame.Surface | None = None  # the whole frame of a still, opaque text

    @property
    def surface(self) -> pygame.Surface | None:
        """A still text's finished frame, lent to the compositor (see zones._api)."""
        return self._still

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
        pieces, self._length, self._rtl = _laid_out(
            item.text, item.scroll, item.align, item.color, item.font_size, size
        )
        self._pieces = list(pieces)
        self._still = None
        if item.scroll == "none" and self.opaque:
            self._still = _still_frame(
                item.text, item.align, item.color, item.font_size, size, item.background
            )

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
        if self._still is not None:
            if surface is not self._still:
                surface.blit(self._still, (0, 0))  # composed once per text, then a copy
            return True
        background = parse_colour(item.background)
        surface.fill(background if background is not None else (0, 0, 0, 0))
        width, height = self._size
        for start, piece in self._pieces:
            if item.scroll == "left":
                x = offset - self._length + start if self._rtl else width - offset + start
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
        self._still = None


@functools.lru_cache(maxsize=4)
def _still_frame(
    text: str, align: str, color: str | None, font_size: int | None, size: Size, background: str
) -> pygame.Surface:
    """A still text on its opaque background, composed once: showing it again (every cycle
    of a playlist) is then one copy, not a fill and a blend of the whole zone."""
    ((_, block),), _, _ = _laid_out(text, "none", align, color, font_size, size)
    frame = pygame.Surface(size)
    frame.fill(parse_colour(background) or pygame.Color("black"))
    frame.blit(block, (0, max(0, (size[1] - block.get_height()) // 2)))
    return frame


@functools.lru_cache(maxsize=_LAID_OUT_CACHE)
def _laid_out(
    text: str, scroll: str, align: str, color: str | None, font_size: int | None, size: Size
) -> tuple[tuple[tuple[int, pygame.Surface], ...], int, bool]:
    """The rendered pieces of a text, their extent along the scroll axis and whether the text
    is right-to-left (a ticker's direction of travel).

    Cached: a playlist shows the same text every cycle, and fitting and rendering a full-screen
    block costs milliseconds each time. The surfaces are only ever read (blitted from).
    """
    colour = parse_colour(color) or pygame.Color("white")
    if scroll == "left":
        face = font(font_size or max(MIN_SIZE, int(size[1] * 0.7)))
        par = paragraph(" ".join(text.split()))
        pieces, length = _ticker_pieces(par, face, colour)
        return tuple(pieces), length, par.rtl
    face = font(font_size or fit_font_size(text, size))
    block = render_block(wrap_lines(text, face, size[0]), face, size[0], colour, align)
    return ((0, block),), block.get_height(), False


def _ticker_pieces(
    par: Paragraph, face: Face, colour: pygame.Color
) -> tuple[list[tuple[int, pygame.Surface]], int]:
    """The ticker's line in pieces of at most ``_SEGMENT_PX``, placed left to right."""
    pieces: list[tuple[int, pygame.Surface]] = []
    x = 0
    batch: list[Run] = []
    batch_width = 0
    for run in _ticker_runs(par, face):
        width = runs_width(par, [run], face)
        if batch and batch_width + width > _SEGMENT_PX:
            piece = render_runs(par, batch, face, colour)
            pieces.append((x, piece))
            x += piece.get_width()
            batch, batch_width = [], 0
        batch.append(run)
        batch_width += width
    if batch:
        piece = render_runs(par, batch, face, colour)
        pieces.append((x, piece))
        x += piece.get_width()
    return pieces, x


def _ticker_runs(par: Paragraph, face: Face) -> list[Run]:
    """The line's runs in visual order, a run wider than a piece cut after spaces (the words
    after a cut of a right-to-left run go to its left). Chunk widths are the sums of their
    words' (each shaped once), so a piece may pass ``_SEGMENT_PX`` by a few pixels."""
    runs: list[Run] = []
    for run in line_runs(par, 0, len(par.text)):
        if run.end - run.start <= _SHORT_RUN and runs_width(par, [run], face) <= _SEGMENT_PX:
            runs.append(run)
            continue
        chunks: list[Run] = []
        start, chunk_width = run.start, 0
        position = run.start
        for word in par.text[run.start : run.end].split(" "):
            word_start, position = position, min(run.end, position + len(word) + 1)
            word_width = runs_width(par, [Run(word_start, position, run.level, run.script)], face)
            if chunk_width and chunk_width + word_width > _SEGMENT_PX:
                chunks.append(Run(start, word_start, run.level, run.script))
                start, chunk_width = word_start, 0
            chunk_width += word_width
        chunks.append(Run(start, run.end, run.level, run.script))
        runs.extend(reversed(chunks) if run.level % 2 else chunks)
    return runs


register_renderer("text", TextRenderer)
