"""Showing paths without naming the person: a home folder becomes "~".

Used for report locations and for every error or log message that mentions a path, so a
username (often a real name) does not leave the device or land in a log file.

A file name need not be valid text: Linux names are bytes (Python decodes the invalid ones
to lone surrogates, PEP 383) and Windows names may hold unpaired UTF-16 surrogates. Such a
string cannot go into a protobuf message or a UTF-8 log, so every shown path is made
printable first: an undecodable byte shows as "\\xNN", an unpaired surrogate as "\\uNNNN".
The file itself is still read under its real name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every lone surrogate written as an escape: always valid UTF-8."""
    return _SURROGATE.sub(_escape, text)


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
        return printable(path)
    rest = printable(norm[len(best) :])
    return "~" + rest if rest else "~"
