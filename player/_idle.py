"""The IDLE screens: which one to show (pairing, preparing, no content) and presenting it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pygame

from player._clock import Clock
from zones import (
    Compositor,
    NoContentScreen,
    PairingScreen,
    RenderContext,
    Renderer,
    Scene,
    ZoneView,
)


@dataclass(frozen=True)
class Pairing:
    code: str
    server_url: str
    device_name: str
    expires_at: dt.datetime


class IdleScreens:
    def __init__(
        self, *, device: str, server_url: str | None, context: RenderContext, clock: Clock
    ) -> None:
        self.device = device
        self.server_url = server_url
        self.pairing: Pairing | None = None
        self._context = context
        self._clock = clock
        self._shown: tuple[object, Scene] | None = None  # what is on screen, to skip repaints

    def showing(self, compositor: Compositor, *, preparing: bool) -> bool:
        """True when exactly this idle screen is already the compositor's scene."""
        shown = self._shown
        return (
            shown is not None
            and shown[0] == (self.pairing, preparing)
            and compositor.active is shown[1]
            and compositor.pending is None
        )

    def screen(self, *, preparing: bool) -> Renderer:
        """The pairing screen while unpaired; else "preparing" or "no content yet"."""
        pairing = self.pairing
        if pairing is not None:
            return PairingScreen(
                self._context,
                code=pairing.code,
                server_url=pairing.server_url,
                device_name=pairing.device_name,
                expires_at=pairing.expires_at,
            )
        footer = "  ·  ".join(p for p in (self.device, self.server_url) if p)
        if preparing:
            return NoContentScreen(
                self._context,
                title="Preparing content",
                message="Downloading what is scheduled; it will start on its own.",
                footer=footer,
            )
        return NoContentScreen(self._context, footer=footer)

    async def present(
        self,
        compositor: Compositor,
        renderer: Renderer,
        still_idle: Callable[[], bool],
        *,
        preparing: bool,
    ) -> None:
        """Prepare ``renderer`` full-screen and show it, unless the player left IDLE meanwhile."""
        size = compositor.display.size
        await renderer.prepare(None, size)  # type: ignore[arg-type]
        if compositor.pending is not None or not still_idle():
            renderer.release()
            return
        scene = Scene("idle", size, "#0b1324")
        view = scene.add_zone(ZoneView(self._context.zone_id, pygame.Rect((0, 0), size)))
        view.show(renderer, self._clock.now_ns())
        compositor.present(scene)
        self._shown = ((self.pairing, preparing), scene)
        self._context.wake()
