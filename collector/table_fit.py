"""Fit a text table into a terminal's width: the widest columns are cut first, each cut cell
ends in `…`.

A terminal wraps an over-long line onto the next, and a table whose rows wrap cannot be read
(a fleet's `report failing` was 516 characters wide). Widths are display widths: a Chinese
character takes two terminal columns, so cutting by characters would leave Chinese cells
twice too wide.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from devposture.policy.reasons import DIRECTION_CONTROLS

ELLIPSIS = "…"
GAP = 2  # spaces between columns
# No column is cut narrower than this: below it a cell says nothing (a device id prefix of 7
# characters is still typed back: `report history 3f2a9c1`).
NARROWEST = 8


def escaped_controls(text: str) -> str:
    """`text` as a terminal shows it and does not obey: each control character but a line's
    end, and each bidirectional embedding, override and isolate (which reorder the text after
    them), written as its escape (ESC as "\\x1b", U+202E as "\\u202e").

    A device names itself (its host name, its products, the networks it saw) and IT reads
    those names on a terminal: printed raw, ESC sequences in a host name moved the cursor up
    and erased the line above (a failing device's row gone from `report failing`), set the
    window's title or wrote the clipboard (OSC 52)."""
    if text.isprintable():  # nearly always: no control, no space but U+0020
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if ch != "\n" and (unicodedata.category(ch) == "Cc" or ch in DIRECTION_CONTROLS)
        else ch
        for ch in text
    )


def display_width(text: str) -> int:
    """Display width: Chinese characters (wide and full-width) take two terminal columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cut(text: str, width: int) -> str:
    """`text` within `width` display columns, ending in `…` when something was cut."""
    if display_width(text) <= width:
        return text
    kept, used = [], display_width(ELLIPSIS)
    for ch in text:
        used += display_width(ch)
        if used > width:
            break
        kept.append(ch)
    return "".join(kept) + ELLIPSIS


def column_widths(natural: Sequence[int], room: int) -> list[int]:
    """Each column's width so that the row fits in `room` display columns: the widest are
    narrowed to one common limit, as little as needed, and never below `NARROWEST` (then
    the row stays wider than the room: a table of many columns on a tiny terminal)."""
    widths = list(natural)
    gaps = GAP * max(0, len(widths) - 1)
    if sum(widths) + gaps <= room:
        return widths
    # The largest limit that fits: every column at min(natural, limit).
    low, high = NARROWEST, max(widths)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(min(w, middle) for w in widths) + gaps <= room:
            low = middle
        else:
            high = middle - 1
    return [min(w, low) for w in widths]
