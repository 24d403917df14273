"""The IDLE screens: pairing (a code to type on the server) and "no content yet".

They are what an installer sees on a ladder five metres away, so the pairing code is huge
(a third of the screen height), high-contrast, grouped 3+3 like a phone number, and every size
is proportional to the screen height so 720p, 1080p and 4K look the same.
"""

from __future__ import annotations

import datetime as dt

import pygame

from protocol import Item
from zones._api import RenderContext, Size
from zones._fonts import font
from zones._shaping import render_text

BACKGROUND_TOP = pygame.Color("#0b1324")
BACKGROUND_BOTTOM = pygame.Color("#16233f")
CARD = pygame.Color("#1d2b4a")
CARD_EDGE = pygame.Color("#33466f")
TEXT = pygame.Color("#f5f7fb")
MUTED = pygame.Color("#9aa8c4")
ACCENT = pygame.Color("#4cc38a")
WARN = pygame.Color("#f0b429")


def _unit(size: Size) -> float:
    """Hundredths of the screen height, narrowed so a portrait screen still fits the code."""
    return min(size[1] / 100, size[0] / 150)


def _row(size: Size, fraction: float) -> int:
    """A height in a band of 100 units centred vertically (the whole height when landscape)."""
    unit = _unit(size)
    return int((size[1] - 100 * unit) / 2 + fraction * 100 * unit)


def _gradient(size: Size) -> pygame.Surface:
    surface = pygame.Surface(size)
    w, h = size
    for y in range(h):
        surface.fill(BACKGROUND_TOP.lerp(BACKGROUND_BOTTOM, y / max(1, h - 1)), (0, y, w, 1))
    return surface


def _text(
    surface: pygame.Surface,
    text: str,
    size: int,
    colour: pygame.Color,
    center: tuple[int, int],
    *,
    bold: bool = False,
    max_width: int | None = None,
) -> pygame.Rect:
    rendered = render_text(text, font(size, "bold" if bold else "regular"), colour)
    if max_width is not None and rendered.get_width() > max_width:
        rendered = pygame.transform.smoothscale_by(rendered, max_width / rendered.get_width())
    rect = rendered.get_rect(center=center)
    surface.blit(rendered, rect)
    return rect


class _Screen:
    """Shared renderer plumbing: a full-canvas picture, painted when its text changes."""

    opaque = True  # the gradient covers every pixel

    def __init__(self, context: RenderContext) -> None:
        self._context = context
        self._size: Size = (1, 1)
        self._background: pygame.Surface | None = None
        self._shown: object = None

    async def prepare(self, item: Item | None, size: Size) -> None:
        self._size = size
        self._background = _gradient(size)

    def start(self, at_ns: int) -> None:
        self._shown = None

    def _state(self, now_ns: int) -> object:
        return True

    def _paint(self, surface: pygame.Surface, now_ns: int) -> None:
        raise NotImplementedError

    def draw(self, surface: pygame.Surface, now_ns: int) -> bool:
        state = self._state(now_ns)
        if state == self._shown:
            return False
        self._shown = state
        if self._background is None:
            self._background = _gradient(self._size)
        surface.blit(self._background, (0, 0))
        self._paint(surface, now_ns)
        return True

    def next_change_ns(self, now_ns: int) -> int | None:
        return None

    @property
    def ended(self) -> bool:
        return False

    def stop(self) -> None:
        """A screen has nothing running between draws."""

    def release(self) -> None:
        self._background = None


class PairingScreen(_Screen):
    """The 6-digit code, where to type it, this device's name and when the code renews."""

    def __init__(
        self,
        context: RenderContext,
        *,
        code: str,
        server_url: str,
        device_name: str,
        expires_at: dt.datetime,
    ) -> None:
        super().__init__(context)
        self.code = code
        self.server_url = server_url
        self.device_name = device_name
        self.expires_at = expires_at
        self._issued_at: dt.datetime | None = None

    def _seconds_left(self, now_ns: int) -> int:
        left = (self.expires_at - self._context.wall_time(now_ns)).total_seconds()
        return max(0, int(left + 0.999))

    def _state(self, now_ns: int) -> object:
        return self._seconds_left(now_ns)

    def next_change_ns(self, now_ns: int) -> int | None:
        micros = self._context.wall_time(now_ns).microsecond
        return now_ns + (1_000_000 - micros) * 1_000

    def _paint(self, surface: pygame.Surface, now_ns: int) -> None:
        w = self._size[0]
        unit = _unit(self._size)
        if self._issued_at is None:
            self._issued_at = self._context.wall_time(now_ns)
        _text(
            surface,
            "Pair this screen",
            int(6.2 * unit),
            TEXT,
            (w // 2, _row(self._size, 0.130)),
            bold=True,
        )
        _text(
            surface,
            "Enter this code on your signage server",
            int(3.4 * unit),
            MUTED,
            (w // 2, _row(self._size, 0.215)),
        )
        self._paint_code(surface, unit)
        self._paint_details(surface, unit)
        self._paint_countdown(surface, unit, now_ns)

    def _paint_code(self, surface: pygame.Surface, unit: float) -> None:
        w, _ = self._size
        card_w, card_h = int(19 * unit), int(28 * unit)
        gap, group_gap = int(2.2 * unit), int(6.5 * unit)
        digits = list(self.code)
        total = len(digits) * card_w + (len(digits) - 1) * gap + (group_gap - gap)
        x = (w - total) // 2
        top = _row(self._size, 0.29)
        face = font(int(22 * unit), "bold")
        for index, digit in enumerate(digits):
            if index == len(digits) // 2:
                x += group_gap - gap
            card = pygame.Rect(x, top, card_w, card_h)
            pygame.draw.rect(surface, CARD, card, border_radius=int(2.2 * unit))
            pygame.draw.rect(
                surface,
                CARD_EDGE,
                card,
                width=max(2, int(0.35 * unit)),
                border_radius=int(2.2 * unit),
            )
            rendered = face.render(digit, True, TEXT)
            surface.blit(rendered, rendered.get_rect(center=card.center))
            x += card_w + gap

    def _paint_details(self, surface: pygame.Surface, unit: float) -> None:
        w, _ = self._size
        rows = (("Server", self.server_url), ("Device", self.device_name))
        for row, (label, value) in enumerate(rows):
            y = _row(self._size, 0.69) + int(row * 7 * unit)
            label_face = font(int(2.9 * unit))
            value_face = font(int(3.6 * unit), "bold")
            label_img = render_text(label.upper(), label_face, MUTED)
            value_img = render_text(value, value_face, TEXT)  # a name may be Arabic or Hebrew
            max_value = int(w * 0.7)
            if value_img.get_width() > max_value:
                value_img = pygame.transform.smoothscale_by(
                    value_img, max_value / value_img.get_width()
                )
            spacing = int(2.5 * unit)
            total = label_img.get_width() + spacing + value_img.get_width()
            x = (w - total) // 2
            surface.blit(label_img, label_img.get_rect(midleft=(x, y)))
            surface.blit(
                value_img,
                value_img.get_rect(midleft=(x + label_img.get_width() + spacing, y)),
            )

    def _paint_countdown(self, surface: pygame.Surface, unit: float, now_ns: int) -> None:
        w = self._size[0]
        left = self._seconds_left(now_ns)
        colour = WARN if left < 60 else ACCENT
        words = f"New code in {left // 60}:{left % 60:02d}" if left else "Getting a new code…"
        _text(surface, words, int(3.2 * unit), colour, (w // 2, _row(self._size, 0.860)))
        issued = self._issued_at or self._context.wall_time(now_ns)
        total = max(1.0, (self.expires_at - issued).total_seconds())
        bar = pygame.Rect(0, 0, int(w * 0.36), max(4, int(0.7 * unit)))
        bar.center = (w // 2, _row(self._size, 0.910))
        pygame.draw.rect(surface, CARD, bar, border_radius=bar.h // 2)
        filled = bar.copy()
        filled.w = int(bar.w * min(1.0, left / total))
        if filled.w > 0:
            pygame.draw.rect(surface, colour, filled, border_radius=bar.h // 2)


class NoContentScreen(_Screen):
    """Shown while paired (or playing locally) with nothing scheduled or nothing ready yet."""

    def __init__(
        self,
        context: RenderContext,
        *,
        title: str = "No content yet",
        message: str = "This screen is ready. Schedule something on the server to show it here.",
        footer: str = "",
    ) -> None:
        super().__init__(context)
        self.title = title
        self.message = message
        self.footer = footer

    def _paint(self, surface: pygame.Surface, now_ns: int) -> None:
        w = self._size[0]
        unit = _unit(self._size)
        # A screen glyph: a rounded frame on a stand, in the accent colour.
        frame = pygame.Rect(0, 0, int(24 * unit), int(15 * unit))
        frame.center = (w // 2, _row(self._size, 0.320))
        thickness = max(3, int(0.9 * unit))
        pygame.draw.rect(surface, ACCENT, frame, width=thickness, border_radius=int(1.6 * unit))
        stand = pygame.Rect(0, 0, int(9 * unit), thickness)
        stand.midtop = (w // 2, frame.bottom + int(3 * unit))
        pygame.draw.rect(surface, ACCENT, stand, border_radius=thickness // 2)
        neck = pygame.Rect(0, 0, thickness, int(3 * unit))
        neck.midtop = (w // 2, frame.bottom)
        pygame.draw.rect(surface, ACCENT, neck)
        _text(
            surface, self.title, int(7 * unit), TEXT, (w // 2, _row(self._size, 0.560)), bold=True
        )
        _text(
            surface,
            self.message,
            int(3.3 * unit),
            MUTED,
            (w // 2, _row(self._size, 0.650)),
            max_width=int(w * 0.9),
        )
        if self.footer:
            _text(
                surface,
                self.footer,
                int(2.8 * unit),
                MUTED,
                (w // 2, _row(self._size, 0.900)),
                max_width=int(w * 0.9),
            )
