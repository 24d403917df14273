"""The Unicode bidirectional algorithm (UAX #9) for one paragraph of signage text.

SDL_ttf shapes a run with HarfBuzz in one direction but does not reorder mixed text: an Arabic
sentence rendered right-to-left as a whole turns "2024" into "4202". This module resolves each
character's embedding level (rules P2-P3, W1-W7, N0-N2, I1-I2, L1-L2) so the text zone can shape
every run of one direction on its own and place the runs in visual order.

The levels are ours to compute: python-bidi (the Rust unicode-bidi crate, used by the tests as
the reference) returns only the reordered string, and a run needs its level to be shaped in its
direction and script.

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


# Bidi_Paired_Bracket (BidiBrackets.txt, Unicode 14 as shipped with Python 3.11): opening and
# closing bracket side by side. Every character with General_Category Ps or Pe and
# Bidi_Mirrored=Yes, paired with its mirror glyph; unicodedata has neither property.
BRACKET_PAIRS = (
    "()[]{}\u0f3a\u0f3b\u0f3c\u0f3d\u169b\u169c\u2045\u2046\u207d\u207e\u208d\u208e"
    "\u2308\u2309\u230a\u230b\u2329\u232a\u2768\u2769\u276a\u276b\u276c\u276d\u276e\u276f"
    "\u2770\u2771\u2772\u2773\u2774\u2775\u27c5\u27c6\u27e6\u27e7\u27e8\u27e9\u27ea\u27eb"
    "\u27ec\u27ed\u27ee\u27ef\u2983\u2984\u2985\u2986\u2987\u2988\u2989\u298a\u298b\u298c"
    "\u298d\u2990\u298f\u298e\u2991\u2992\u2993\u2994\u2995\u2996\u2997\u2998\u29d8\u29d9"
    "\u29da\u29db\u29fc\u29fd\u2e22\u2e23\u2e24\u2e25\u2e26\u2e27\u2e28\u2e29\u2e55\u2e56"
    "\u2e57\u2e58\u2e59\u2e5a\u2e5b\u2e5c\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f"
    "\u3010\u3011\u3014\u3015\u3016\u3017\u3018\u3019\u301a\u301b\ufe59\ufe5a\ufe5b\ufe5c"
    "\ufe5d\ufe5e\uff08\uff09\uff3b\uff3d\uff5b\uff5d\uff5f\uff60\uff62\uff63"
)
_MAX_BRACKET_DEPTH = 63  # BD16: deeper nesting ends the pairing for the rest of the paragraph


# BD16 matches a bracket's canonical equivalent too: U+2329 pairs with U+3009.
_EQUIVALENT = {
    char: unicodedata.normalize("NFD", char)
    for char in BRACKET_PAIRS
    if unicodedata.normalize("NFD", char) != char
}
OPENING_BRACKETS = {
    _EQUIVALENT.get(opening, opening): _EQUIVALENT.get(closing, closing)
    for opening, closing in zip(BRACKET_PAIRS[::2], BRACKET_PAIRS[1::2], strict=True)
}
CLOSING_BRACKETS = frozenset(OPENING_BRACKETS.values())


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
    classes = [bidi_class(text[i]) for i in kept]
    weak = _weak_types(classes, edge)
    types = _neutral_types(_paired_brackets([text[i] for i in kept], classes, weak, edge), edge)
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


def bracket_pairs(chars: Sequence[str], types: Sequence[str]) -> list[tuple[int, int]]:
    """BD16: the positions of the paired brackets among ``chars`` (whose current types are
    ``types``: only a bracket still ON pairs), sorted by the opening bracket's position."""
    stack: list[tuple[str, int]] = []  # (the closing bracket wanted, where its opener is)
    pairs: list[tuple[int, int]] = []
    for index, char in enumerate(chars):
        if types[index] != "ON":
            continue
        char = _EQUIVALENT.get(char, char)
        if char in OPENING_BRACKETS:
            if len(stack) == _MAX_BRACKET_DEPTH:
                break
            stack.append((OPENING_BRACKETS[char], index))
        elif char in CLOSING_BRACKETS:
            for depth in range(len(stack) - 1, -1, -1):
                if stack[depth][0] == char:
                    pairs.append((stack[depth][1], index))
                    del stack[depth:]
                    break
    return sorted(pairs)


def _paired_brackets(
    chars: Sequence[str], classes: Sequence[str], types: list[str], edge: str
) -> list[str]:
    """N0: a bracket pair takes the paragraph's direction when its content has a strong type
    of that direction; else the other direction when its content and the text before it have
    that one (in the right-to-left "שלום book(s)" both brackets of "(s)" are left-to-right, so
    "book(s)" reads whole); else it is left to N1-N2. Numbers count as right-to-left."""
    out = list(types)
    for opening, closing in bracket_pairs(chars, types):
        inside = {_strong_direction(kind) for kind in out[opening + 1 : closing]}
        if edge in inside:
            direction = edge
        elif inside - {None}:
            direction = _strong_before(out, opening, edge)  # the other direction, or edge
        else:
            continue
        for bracket in (opening, closing):
            index = bracket
            while index == bracket or (index < len(out) and classes[index] == "NSM"):
                out[index] = direction  # the bracket, then the marks on it
                index += 1
    return out


def _strong_before(types: Sequence[str], index: int, edge: str) -> str:
    """The direction of the last strong type before ``index``, else the paragraph's."""
    for position in range(index - 1, -1, -1):
        direction = _strong_direction(types[position])
        if direction:
            return direction
    return edge


def _strong_direction(kind: str) -> str | None:
    """The direction N0 sees in a resolved type: numbers are right-to-left, neutrals none."""
    if kind == "L":
        return "L"
    return "R" if kind in ("R", "EN", "AN") else None


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
