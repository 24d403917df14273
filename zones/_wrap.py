"""Wrapping and auto-sizing text for a zone, in any direction.

Lines are broken in logical (reading) order and each is reordered on its own (UAX #9), so the
first words of a right-to-left paragraph are at the right of its first line.

Shaping is what costs (HarfBuzz through SDL_ttf: tens of microseconds a word, more for Arabic
in Noto Sans Arabic at a size whose glyphs are not loaded yet), so: a word is shaped once and a
candidate line is estimated as the line so far plus " word"; each finished line is then measured
whole and wrapped again in the rare case the estimate was short. Auto-size bisects the font size
on widths scaled from one reference size, then confirms the answer with two or three exact
probes around it instead of bisecting every size exactly (165 characters of Arabic on a
1920x400 zone: 60 ms before, see ``fit_font_size``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from zones._api import Size
from zones._fonts import Face, Weight, font
from zones._shaping import Paragraph, line_width, paragraph, text_size

MIN_SIZE = 6
_REFERENCE_POINTS = 64

Measure = Callable[[Paragraph, int, int], float]
Line = tuple[Paragraph, int, int]


def wrap(text: str, face: Face, width: int) -> list[str]:
    """Lines no wider than ``width`` (a word longer than the line is cut by characters)."""
    return [par.text[start:end] for par, start, end in wrap_lines(text, face, width)]


def wrap_lines(text: str, face: Face, width: int) -> list[Line]:
    """``wrap`` as slices of paragraphs, each with its own direction (first strong character)."""
    return _wrap(text, _exact(face), width, verify=True)


def fit_font_size(text: str, size: Size, *, bold: bool = False) -> int:
    """The largest font size at which ``text`` wrapped to the zone's width fits its height."""
    weight: Weight = "bold" if bold else "regular"
    high = max(MIN_SIZE, size[1])
    reference = font(_REFERENCE_POINTS, weight)
    reference_width = _exact(reference)

    def fits_scaled(points: int) -> bool:
        scale = points / reference.points

        def measure(par: Paragraph, start: int, end: int) -> float:
            return reference_width(par, start, end) * scale

        lines = _wrap(text, measure, size[0], verify=False)
        return len(lines) * reference.get_linesize() * scale <= size[1]

    def fits(points: int) -> bool:
        face = font(points, weight)
        lines = _wrap(text, _exact(face), size[0], verify=True)
        return len(lines) * face.get_linesize() <= size[1] and all(
            line_width(par, start, end, face) <= size[0] for par, start, end in lines
        )

    guess = _largest(fits_scaled, MIN_SIZE, high, start=None)
    return _largest(fits, MIN_SIZE, high, start=guess)


def fit_line_size(text: str, size: Size, *, bold: bool = False) -> int:
    """The largest font size at which ``text`` on one line fits ``size``."""
    weight: Weight = "bold" if bold else "regular"

    def fits(points: int) -> bool:
        width, height = text_size(text, font(points, weight))
        return width <= size[0] and height <= size[1]

    return _largest(fits, MIN_SIZE, max(MIN_SIZE, size[1]), start=None)


def _largest(fits: Callable[[int], bool], low: int, high: int, start: int | None) -> int:
    """The largest size in ``low..high`` that fits (``low`` counts as fitting), for a ``fits``
    that holds up to some size and not above. With ``start`` (an estimate) the probes gallop
    away from it before bisecting: a right estimate costs two probes."""
    if start is not None:
        start = min(max(start, low), high)
        step = 1
        if fits(start):
            low = start
            while low < high:
                probe = min(high, low + step)
                if not fits(probe):
                    high = probe - 1
                    break
                low, step = probe, step * 2
        else:
            high = start - 1
            while high > low:
                probe = max(low, high - step + 1)
                if fits(probe):
                    low = probe
                    break
                high, step = probe - 1, step * 2
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _exact(face: Face) -> Measure:
    def measure(par: Paragraph, start: int, end: int) -> float:
        return line_width(par, start, end, face)

    return measure


@functools.lru_cache(maxsize=32)
def _paragraphs(text: str) -> tuple[Paragraph, ...]:
    """The paragraphs of ``text`` with their levels, resolved once for every size tried."""
    return tuple(paragraph(line) for line in text.splitlines() or [""])


def _wrap(text: str, measure: Measure, width: int, *, verify: bool) -> list[Line]:
    lines: list[Line] = []
    for par in _paragraphs(text):
        for start, end in _greedy(par, measure, width, 0, len(par.text), estimate=True):
            if not verify or end - start <= 1 or measure(par, start, end) <= width:
                lines.append((par, start, end))
            else:
                again = _greedy(par, measure, width, start, end, estimate=False)
                lines.extend((par, a, b) for a, b in again)
    return lines


def _greedy(
    par: Paragraph, measure: Measure, width: int, begin: int, stop: int, *, estimate: bool
) -> list[tuple[int, int]]:
    """Greedy line breaking of ``par.text[begin:stop]`` at spaces; with ``estimate`` a
    candidate's width is the line's plus that of " word"."""
    lines: list[tuple[int, int]] = []
    line, line_px = (begin, begin), 0.0
    position = begin
    for word in par.text[begin:stop].split(" "):
        start, end = position, position + len(word)
        position = end + 1
        if line[1] > line[0]:
            candidate = (line[0], end)
            wide = line_px + measure(par, line[1], end) if estimate else measure(par, *candidate)
        else:
            candidate, wide = (start, end), measure(par, start, end)
        if wide <= width:
            line, line_px = candidate, wide
            continue
        if line[1] > line[0]:
            lines.append(line)
        while end - start > 1 and measure(par, start, end) > width:
            cut = _longest_prefix(par, start, end, measure, width)
            lines.append((start, start + cut))
            start += cut
        line, line_px = (start, end), measure(par, start, end)
    lines.append(line)
    return lines


def _longest_prefix(par: Paragraph, start: int, end: int, measure: Measure, width: int) -> int:
    for cut in range(end - start, 1, -1):
        if measure(par, start, start + cut) <= width:
            return cut
    return 1
