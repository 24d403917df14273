"""Clock zones: the wall time in a strftime format and a time zone.

A clock is redrawn when its text can change: every second when the format shows seconds, on the
minute for ``%H:%M``, and every quarter of an hour for coarser formats (hours, dates). Quarter
hours, not hours, because UTC offsets (+05:45) and daylight-saving transitions fall on quarter
hours of UTC, not always on whole local hours; 96 wake-ups a day cost nothing. A kiosk showing
``%H:%M`` thus wakes 60 times less often, and a simulated day composes 60 times fewer frames.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pygame

from core import ZoneError
from protocol import ClockItem, Item
from zones._api import RenderContext, Size, register_renderer
from zones._fonts import font, parse_colour
from zones._shaping import render_text
from zones._text import fit_line_size

_NS_PER_US = 1_000
SECOND, MINUTE, QUARTER_HOUR = 1, 60, 900  # how often a format's text can change, in seconds

# Directives (after optional glibc flags and E/O modifiers) by the finest unit they show.
# Anything not listed (%c, %X, %T, %r, %s, %f, unknown ones) counts as seconds: redrawing too
# often is only a cost, too rarely a wrong clock.
_MINUTE_DIRECTIVES = frozenset("MR")
_COARSE_DIRECTIVES = frozenset("HIklpPaAbBhdejmyYCgGuwUWVDFxzZn%t")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DIRECTIVE = re.compile(r"%[-_0^#]*[EO]?(.|$)", re.DOTALL)


def change_period_s(format_: str) -> int:
    """How often (seconds) a strftime ``format_``'s text can change: 1, 60 or 900."""
    period = QUARTER_HOUR
    for match in _DIRECTIVE.finditer(format_):
        directive = match.group(1)
        if directive in _COARSE_DIRECTIVES:
            continue
        if directive in _MINUTE_DIRECTIVES:
            period = min(period, MINUTE)
        else:
            return SECOND
    return period


class ClockRenderer:
    prerender = True  # start/draw before the deadline are invisible: the switch is a blit

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._item: ClockItem | None = None
        self._size: Size = (1, 1)
        self._tz = ZoneInfo("UTC")
        self._font_size = 12
        self._shown: str | None = None
        self._text_rect: pygame.Rect | None = None
        self.damage: tuple[int, int, int, int] | None = None  # see zones._api
        self._period_s = SECOND

    async def prepare(self, item: Item, size: Size) -> None:
        if not isinstance(item, ClockItem):
            raise ZoneError(f"not a clock item: {item.type}", zone=self._context.zone_id)
        self._item, self._size = item, size
        self._tz = ZoneInfo(item.timezone or self._context.timezone)
        self._period_s = change_period_s(item.format)
        # Sized for the widest rendering (all digits 8) so the text does not breathe.
        sample = dt.datetime(2026, 12, 28, 18, 58, 58, tzinfo=self._tz).strftime(item.format)
        self._font_size = fit_line_size(
            sample, (int(size[0] * 0.92), int(size[1] * 0.9)), bold=True
        )

    def start(self, at_ns: int) -> None:
        self._shown = None
        self._text_rect = None
        self.damage = None

    def text_at(self, now_ns: int) -> str:
        if self._item is None:
            return ""
        return self._context.wall_time(now_ns).astimezone(self._tz).strftime(self._item.format)

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        item = self._item
        if item is None:
            return False
        text = self.text_at(now_ns)
        if text == self._shown:
            return False
        first = self._shown is None or self._text_rect is None
        self._shown = text
        background = parse_colour(item.background)
        rendered = render_text(  # shaped like fit_line_size measured it (an Arabic literal)
            text, font(self._font_size, "bold"), parse_colour(item.color) or pygame.Color("white")
        )
        rect = rendered.get_rect(center=(self._size[0] // 2, self._size[1] // 2))
        # After the first paint only the text's box changes: repaint the old and new boxes.
        area = None if first or self._text_rect is None else rect.union(self._text_rect)
        surface.fill(background if background is not None else (0, 0, 0, 0), area)
        surface.blit(rendered, rect)
        self._text_rect = rect
        self.damage = None if area is None else (area.x, area.y, area.w, area.h)
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        """The next boundary of the format's finest unit, in UTC (see the module docstring)."""
        wall = self._context.wall_time(now_ns)
        seconds = (wall - _EPOCH) // dt.timedelta(seconds=1)  # exact, unlike timestamp()
        into_period_us = (seconds % self._period_s) * 1_000_000 + wall.microsecond
        return now_ns + (self._period_s * 1_000_000 - into_period_us) * _NS_PER_US

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        """Nothing runs between draws."""

    def release(self) -> None:
        self._item = None


register_renderer("clock", ClockRenderer)
