"""The Unicode bidirectional algorithm (UAX #9) for one paragraph of signage text.

SDL_ttf shapes a run with HarfBuzz in one direction but does not reorder mixed text: an Arabic
sentence rendered right-to-left as a whole turns "2024" into "4202". This module resolves each
character's embedding level (rules P2-P3, W1-W7, N1-N2, I1-I2, L1-L2) so the text zone can shape
every run of one direction on its own and place the runs in visual order.

Not implemented: explicit embeddings, overrides and isolates (LRE, RLE, LRO, RLO, PDF, LRI,
RLI, FSI, PDI) are treated as invisible neutrals (X9 for the first five), so their content
follows the surrounding text; the marks LRM, RLM and ALM (strong characters) work. Paragraph
breaks are the caller's job (one call per paragraph).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

LTR, RTL = 0, 1  # paragraph embedding levels

_STRONG = {"L": LTR, "R": RTL, "AL": RTL}
_ISOLATE_OPEN = {"LRI", "RLI", "FSI"}
_REMOVED = {"LRE", "RLE", "LRO", "RLO", "PDF", "BN"}  # X9: ignored by every later rule
_NEUTRAL = {"B", "S", "WS", "ON", "LRI", "RLI", "FSI", "PDI"}
_LINE_END_RESET = {"WS", "LRI", "RLI", "FSI", "PDI", "LRE", "RLE", "LRO", "RLO", "PDF", "BN"}

# Right-to-left scripts HarfBuzz must be told about (ISO 15924): without a script SDL_ttf does
# not apply the joining forms. Ranges from the Unicode Blocks file.
_RTL_SCRIPTS = (
    (0x0590, 0x05FF, "Hebr"),
    (0x0600, 0x06FF, "Arab"),
    (0x0700, 0x074F, "Syrc"),
    (0x0750, 0x077F, "Arab"),
    (0x0780, 0x07BF, "Thaa"),
    (0x07C0, 0x07FF, "Nkoo"),
    (0x0860, 0x086F, "Syrc"),
    (0x0870, 0x08FF, "Arab"),
    (0xFB1D, 0xFB4F, "Hebr"),
    (0xFB50, 0xFDFF, "Arab"),
    (0xFE70, 0xFEFF, "Arab"),
)


def bidi_class(char: str) -> str:
    """The Bidi_Class of ``char``; unassigned code points count as left-to-right."""
    return unicodedata.bidirectional(char) or "L"


def rtl_script(char: str) -> str | None:
    """The ISO 15924 code of a right-to-left script ``char`` belongs to, else None."""
    code = ord(char)
    for low, high, script in _RTL_SCRIPTS:
        if low <= code <= high:
            return script
    return None


def paragraph_level(text: str) -> int | None:
    """P2-P3: LTR or RTL from the first strong character outside isolates; None without one."""
    depth = 0
    for char in text:
        kind = bidi_class(char)
        if kind in _ISOLATE_OPEN:
            depth += 1
        elif kind == "PDI":
            depth = max(0, depth - 1)
        elif depth == 0 and kind in _STRONG:
            return _STRONG[kind]
    return None


def resolve_levels(text: str, base: int) -> list[int]:
    """The embedding level of every character of a paragraph whose level is ``base`` (0/1)."""
    kept = [i for i, char in enumerate(text) if bidi_class(char) not in _REMOVED]
    edge = "R" if base % 2 else "L"
    types = _neutral_types(_weak_types([bidi_class(text[i]) for i in kept], edge), edge)
    levels = [base] * len(text)
    for index, kind in zip(kept, types, strict=True):
        levels[index] = _implicit_level(kind, base)
    previous = base
    kept_set = set(kept)
    for index in range(len(text)):  # removed characters take their neighbour's level
        if index in kept_set:
            previous = levels[index]
        else:
            levels[index] = previous
    return levels


def line_levels(classes: Sequence[str], levels: Sequence[int], base: int) -> list[int]:
    """L1 for one line, given the Bidi_Class of its characters and their slice of the
    paragraph's levels: separators and the whitespace before them or at the end of the line
    go back to the paragraph level."""
    out = list(levels)
    reset = True  # the end of the line acts like a separator
    for index in range(len(classes) - 1, -1, -1):
        kind = classes[index]
        if kind in ("S", "B"):
            out[index] = base
            reset = True
        elif reset and kind in _LINE_END_RESET:
            out[index] = base
        else:
            reset = False
    return out


def visual_runs(levels: Sequence[int]) -> list[tuple[int, int, int]]:
    """L2: ``(start, end, level)`` runs of equal level, in visual order from left to right.

    Runs at an odd level are drawn right-to-left inside (the shaper does that)."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for index in range(1, len(levels) + 1):
        if index == len(levels) or levels[index] != levels[start]:
            runs.append((start, index, levels[start]))
            start = index
    return reorder(runs)


def reorder(runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """L2 on runs given in logical order: from the highest level down to the lowest odd one,
    reverse every sequence of runs at that level or above."""
    if not runs:
        return runs
    levels = [run[2] for run in runs]
    lowest_odd = min((level for level in levels if level % 2), default=max(levels) + 1)
    for level in range(max(levels), lowest_odd - 1, -1):
        index = 0
        while index < len(runs):
            if runs[index][2] < level:
                index += 1
                continue
            end = index
            while end < len(runs) and runs[end][2] >= level:
                end += 1
            runs[index:end] = runs[index:end][::-1]
            index = end
    return runs


def _weak_types(types: list[str], edge: str) -> list[str]:
    """W1-W7 over the paragraph (one isolating run sequence; sos = eos = ``edge``)."""
    out = list(types)
    previous = edge
    for i, kind in enumerate(out):  # W1: a mark takes the type of what it marks
        if kind == "NSM":
            out[i] = "ON" if previous in _ISOLATE_OPEN or previous == "PDI" else previous
        previous = out[i]
    strong = edge
    for i, kind in enumerate(out):  # W2: European digits after Arabic letters are Arabic
        if kind in _STRONG:
            strong = kind
        elif kind == "EN" and strong == "AL":
            out[i] = "AN"
    out = ["R" if kind == "AL" else kind for kind in out]  # W3
    for i in range(1, len(out) - 1):  # W4: 1,000 and 1.5 and 1+2 stay numbers
        left, right = out[i - 1], out[i + 1]
        if out[i] == "ES" and left == right == "EN":
            out[i] = "EN"
        elif out[i] == "CS" and left == right and left in ("EN", "AN"):
            out[i] = left
    _terminators_to_numbers(out)  # W5
    out = ["ON" if kind in ("ES", "ET", "CS") else kind for kind in out]  # W6
    strong = edge
    for i, kind in enumerate(out):  # W7: digits in left-to-right context are left-to-right
        if kind in ("L", "R"):
            strong = kind
        elif kind == "EN" and strong == "L":
            out[i] = "L"
    return out


def _terminators_to_numbers(types: list[str]) -> None:
    """W5: a run of terminators ($, %, #...) next to a European number joins it."""
    index = 0
    while index < len(types):
        if types[index] != "ET":
            index += 1
            continue
        end = index
        while end < len(types) and types[end] == "ET":
            end += 1
        before = index > 0 and types[index - 1] == "EN"
        after = end < len(types) and types[end] == "EN"
        if before or after:
            types[index:end] = ["EN"] * (end - index)
        index = end


def _neutral_types(types: list[str], edge: str) -> list[str]:
    """N1-N2: neutrals between two strong types of one direction take it (numbers count as
    right-to-left), the others take the paragraph's direction."""
    out = list(types)
    index = 0
    while index < len(out):
        if out[index] not in _NEUTRAL:
            index += 1
            continue
        end = index
        while end < len(out) and out[end] in _NEUTRAL:
            end += 1
        before = _as_strong(out[index - 1]) if index > 0 else edge
        after = _as_strong(out[end]) if end < len(out) else edge
        out[index:end] = [before if before == after else edge] * (end - index)
        index = end
    return out


def _as_strong(kind: str) -> str:
    return "L" if kind == "L" else "R"


def _implicit_level(kind: str, base: int) -> int:
    """I1-I2."""
    if base % 2 == 0:
        return base + {"R": 1, "AN": 2, "EN": 2}.get(kind, 0)
    return base + (1 if kind in ("L", "EN", "AN") else 0)
