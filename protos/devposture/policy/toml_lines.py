"""Where a value is written in a TOML file, so that a mistake can be shown with its line.

`tomllib` gives values without positions; both files a person edits (`policy.toml` and
`collector.toml`) are checked after parsing, and every problem names its line. This finds
the line again from the value's path in the parsed document, by reading the text: the table
headers (`[web]`, `[[checks]]`, `[checks.parameters]`) and the `key =` lines under them. It is
a reader of the usual layout, not a TOML parser: a value it cannot place gets the line of its
table, or no line at all, never a wrong key's line in another table.
"""

from __future__ import annotations

import re

# A value's path in the parsed document: ("web", "port"), ("checks", 2, "severity").
Path_ = tuple[str | int, ...]


def _joined(table: str, part: str) -> str:
    return f"{table}.{part}" if table else part


def _next_array(lines: list[str], start: int, end: int, name: str) -> int:
    """Where the array element starting at `start` ends: the next top-level table header."""
    for n in range(start + 1, end):
        stripped = lines[n].strip()
        if stripped.startswith("[") and not stripped.startswith(f"[{name}."):
            return n
    return end


def _key_line(lines: list[str], start: int, end: int, key: str, top: bool) -> int | None:
    """The line of `key = …` in the table whose header is at `start` (`top`: the keys before
    any header), stopping at the next table header: a key of the same name further down
    belongs to another table."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for n in range(start, end):
        if (n > start or top) and lines[n].lstrip().startswith("["):
            return None
        if pattern.match(lines[n]):
            return n
    return None


def _table_line(lines: list[str], start: int, end: int, name: str) -> int | None:
    header = re.compile(rf"^\s*\[\s*{re.escape(name)}\s*\]")
    return next((n for n in range(start, end) if header.match(lines[n])), None)


def line_of(text: str, path: Path_) -> int | None:
    """The 1-based line where the value at `path` is written; for a value that is not
    written (a missing key) the line of its table's header; None when not even that is."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    table = ""
    i = 0
    while i < len(path):
        part = path[i]
        nxt = path[i + 1] if i + 1 < len(path) else None
        if isinstance(nxt, int):  # an array of tables: [[part]] number nxt
            name = _joined(table, str(part))
            header = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
            found = [n for n in range(start, end) if header.match(lines[n])]
            if nxt >= len(found):
                return None
            start = found[nxt]
            end = found[nxt + 1] if nxt + 1 < len(found) else _next_array(lines, start, end, name)
            table = name
            i += 2
            continue
        if nxt is None:
            at = _key_line(lines, start, end, str(part), top=not table)
            if at is None:  # not a key: a table of that name, else its parent's header
                at = _table_line(lines, start, end, _joined(table, str(part)))
            if at is None:
                return start + 1 if start or table else None
            return at + 1
        at = _table_line(lines, start, end, _joined(table, str(part)))
        if at is None:
            return start + 1 if start or table else None
        start, table = at, _joined(table, str(part))
        i += 1
    return start + 1
