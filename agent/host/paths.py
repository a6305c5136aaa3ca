"""Showing paths without naming the person: a home folder becomes "~".

Used for report locations and for every error or log message that mentions a path, so a
username (often a real name) does not leave the device or land in a log file.
"""

from __future__ import annotations

from collections.abc import Iterable


def _normalise(path: str) -> str:
    return path.replace("\\", "/").rstrip("/")


def display_path(path: str, homes: Iterable[str]) -> str:
    """`path` with the longest matching home folder replaced by "~" (case-insensitive match
    for Windows-style paths, whose case does not matter)."""
    norm = _normalise(path)
    best = ""
    for home in homes:
        h = _normalise(home)
        if not h:
            continue
        windows = ":" in h[:3]
        a, b = (norm.lower(), h.lower()) if windows else (norm, h)
        if (a == b or a.startswith(b + "/")) and len(h) > len(best):
            best = h
    if not best:
        return path
    rest = norm[len(best) :]
    return "~" + rest if rest else "~"
