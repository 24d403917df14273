"""Bidirectional, shaped lines: measure and render text in any mix of directions.

A paragraph's levels are resolved once (zones._bidi); a line is a slice of it. Each line is cut
into runs of one level (and, right-to-left, one script), every run is shaped by HarfBuzz with its
own direction and script (SDL_ttf does that per font), and the runs are placed in visual order.
So an Arabic line is joined and reads from the right, and "2024" inside it stays "2024".

Text without right-to-left characters takes a fast path identical to plain ``Font.render``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import pygame

from zones._bidi import (
    LTR,
    RTL,
    bidi_class,
    line_levels,
    paragraph_level,
    reorder,
    resolve_levels,
    rtl_script,
)
from zones._fonts import Face, font

_NEEDS_BIDI = {"R", "AL", "AN", "RLE", "RLO", "RLI", "FSI"}


@dataclass(frozen=True)
class Paragraph:
    """One paragraph of text with its direction (``level`` 0 LTR, 1 RTL) and, per character,
    its resolved level, Bidi_Class and face key (see ``line_runs``); the tuples are empty on
    the fast path (everything at level 0, one face). Computed once: wrapping measures hundreds
    of candidate lines of the same paragraph."""

    text: str
    level: int
    levels: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    keys: tuple[str | None, ...] = ()

    @property
    def rtl(self) -> bool:
        return self.level == RTL


@dataclass(frozen=True)
class Run:
    """``text[start:end]`` of a paragraph, shaped in one direction (odd ``level``: RTL)."""

    start: int
    end: int
    level: int
    script: str | None


def paragraph(text: str, level: int | None = None) -> Paragraph:
    """``text`` (one paragraph, no line breaks) with its direction: ``level``, else that of
    its first strong character (UAX #9 P2-P3), else left-to-right."""
    base = level if level is not None else paragraph_level(text)
    base = LTR if base is None else base
    classes = tuple(bidi_class(char) for char in text)
    if base == LTR and _NEEDS_BIDI.isdisjoint(classes):
        return Paragraph(text, LTR)
    keys = tuple("" if char.isspace() else rtl_script(char) for char in text)
    return Paragraph(text, base, tuple(resolve_levels(text, base)), classes, keys)


def line_runs(par: Paragraph, start: int, end: int) -> list[Run]:
    """The runs of the line ``par.text[start:end]`` in visual order, left to right.

    A run has one level and one face: Arabic-script characters (letters, Arabic-Indic digits,
    Arabic punctuation) are set in Noto Sans Arabic, which lacks Latin punctuation, so "(" or
    "%" next to them makes a run of its own in DejaVu; spaces join any run; Hebrew and common
    characters share DejaVu. Joining is not affected: Arabic letters never join across those.
    """
    if start >= end:
        return []
    if not par.levels:
        return [Run(start, end, LTR, None)]
    levels = line_levels(par.classes[start:end], par.levels[start:end], par.level)
    logical: list[Run] = []
    run_start = 0
    key: str | None = ""  # "" nothing yet, None common characters, else a script
    for index, char_key in enumerate(par.keys[start:end]):
        clash = "" not in (key, char_key) and char_key != key and "Arab" in (key, char_key)
        if index > run_start and (levels[index] != levels[run_start] or clash):
            logical.append(Run(start + run_start, start + index, levels[run_start], key or None))
            run_start, key = index, ""
        if char_key != "" and not key:
            key = char_key
    logical.append(Run(start + run_start, end, levels[run_start], key or None))
    ordered = reorder([(i, i + 1, run.level) for i, run in enumerate(logical)])
    return [logical[i] for i, _, _ in ordered]


def run_face(face: Face, run: Run) -> Face:
    """The variant of ``face`` that shapes ``run``."""
    if run.level % 2 == 0:
        return face if run.script is None else font(face.points, face.weight, script=run.script)
    return font(face.points, face.weight, direction="rtl", script=run.script)


def runs_width(par: Paragraph, runs: Sequence[Run], face: Face) -> int:
    return sum(_width(run_face(face, run), par.text[run.start : run.end]) for run in runs)


@functools.lru_cache(maxsize=4096)
def _width(face: Face, text: str) -> int:
    """Shaping is the costly part of wrapping (tens of microseconds a call) and a candidate
    line repeats the runs of the one before it with one more word."""
    return face.size(text)[0]


def line_width(par: Paragraph, start: int, end: int, face: Face) -> int:
    """The width of ``par.text[start:end]`` drawn as one line."""
    if not par.levels:
        return _width(face, par.text[start:end]) if end > start else 0
    return runs_width(par, line_runs(par, start, end), face)


def render_runs(
    par: Paragraph, runs: Sequence[Run], face: Face, colour: pygame.Color
) -> pygame.Surface:
    """``runs`` (in visual order) side by side on one transparent surface.

    SDL_ttf puts the baseline at the font's ascent from the top of every rendering, so a run
    in another face (Noto Sans Arabic: a taller ascent and descent, for stacked marks) is moved
    by the difference of ascents. The line keeps ``face``'s height, so wrapped lines stay
    ``get_linesize()`` apart; only marks reaching beyond DejaVu's own ascent or descent are
    cut."""
    faces = [run_face(face, run) for run in runs]
    rendered = [
        shaper.render(par.text[run.start : run.end], True, colour)
        for shaper, run in zip(faces, runs, strict=True)
    ]
    if len(runs) == 1 and faces[0].get_ascent() == face.get_ascent():
        return rendered[0]  # already on the line's baseline: no copy (a ticker's long pieces)
    width = sum(surface.get_width() for surface in rendered)
    line = pygame.Surface((max(1, width), face.get_height()), pygame.SRCALPHA)
    x = 0
    for shaper, surface in zip(faces, rendered, strict=True):
        line.blit(surface, (x, face.get_ascent() - shaper.get_ascent()))
        x += surface.get_width()
    return line


def render_line(
    par: Paragraph, start: int, end: int, face: Face, colour: pygame.Color
) -> pygame.Surface:
    """``par.text[start:end]`` as one line, shaped and in visual order."""
    if not par.levels:
        return face.render(par.text[start:end], True, colour)
    return render_runs(par, line_runs(par, start, end), face, colour)


def text_size(text: str, face: Face) -> tuple[int, int]:
    """Width and height of one line of ``text`` as ``render_text`` draws it."""
    par = paragraph(text)
    if not par.levels:
        return face.size(text)
    return line_width(par, 0, len(text), face), face.get_height()


def render_text(text: str, face: Face, colour: pygame.Color) -> pygame.Surface:
    """One line of ``text`` in any direction (its own, from the first strong character)."""
    par = paragraph(text)
    return render_line(par, 0, len(text), face, colour)
