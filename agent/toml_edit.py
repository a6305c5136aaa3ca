"""Setting a few keys of agent.toml in place, keeping everything else IT wrote.

An installer (the MSI's COLLECTOR property, a Jamf script calling `devposture-agent setup`)
sets the collector's address in a file IT may also have edited by hand: its comments, its
other keys and their order stay. Each key is replaced where it is written (a value spread
over several lines included), added under its table's header when the table has no such key,
or added with a new table at the end. The result is parsed again and must hold exactly the
values asked for and every other value unchanged; a layout this cannot edit safely (the table
written inline, a dotted key) is refused rather than guessed at.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping

from devposture.policy.cli_messages import Worded, enumeration

Value = str | tuple[str, ...]
Key = tuple[str, str]  # (table, key)


class TomlEditError(Worded):
    """The file cannot be edited safely; the message says what to do instead, in the reader's
    language (`setup` shows it inside its own sentence)."""


def render(value: Value) -> str:
    """A TOML value: a basic string (JSON's escapes are TOML's), or an array of them."""
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(item, ensure_ascii=False) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _header(line: str) -> str | None:
    """The table a `[table]` header line opens (None for any other line)."""
    match = re.match(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]\s*(#.*)?$", line)
    return match.group(1) if match else None


def _is_header(line: str) -> bool:
    return line.lstrip().startswith("[")


def _value_end(lines: list[str], start: int, end: int) -> int:
    """The line after the value whose key is at `start` (an array may span lines)."""
    for stop in range(start + 1, end + 1):
        try:
            tomllib.loads("".join(lines[start:stop]))
        except tomllib.TOMLDecodeError:
            continue
        return stop
    return start + 1


def _set_one(lines: list[str], table: str, key: str, value: Value) -> list[str]:
    new_line = f"{key} = {render(value)}\n"
    starts = [n for n, line in enumerate(lines) if _header(line) == table]
    if not starts:
        ending = [] if not lines or lines[-1].endswith("\n") else ["\n"]
        gap = ["\n"] if lines else []
        return [*lines, *ending, *gap, f"[{table}]\n", new_line]
    start = starts[0]
    end = next((n for n in range(start + 1, len(lines)) if _is_header(lines[n])), len(lines))
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for n in range(start + 1, end):
        if pattern.match(lines[n]):
            stop = _value_end(lines, n, end)
            return [*lines[:n], new_line, *lines[stop:]]
    return [*lines[: start + 1], new_line, *lines[start + 1 :]]


def set_values(text: str, values: Mapping[Key, Value]) -> str:
    """`text` with each (table, key) set to its value; TomlEditError when that cannot be done
    without changing anything else."""
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlEditError("it is not valid TOML ({problem}): fix it or delete it",
                            problem=str(exc)) from exc
    lines = text.splitlines(keepends=True)
    for (table, key), value in values.items():
        lines = _set_one(lines, table, key, value)
    result = "".join(lines)
    expected: dict[str, object] = {name: dict(t) if isinstance(t, dict) else t
                                   for name, t in before.items()}  # fmt: skip
    for (table, key), value in values.items():
        section = expected.setdefault(table, {})
        if not isinstance(section, dict):
            raise TomlEditError("{table} is a value, not a table: make it the table [{table}]",
                                table=table)
        section[key] = list(value) if isinstance(value, tuple) else value
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    if after != expected:
        raise TomlEditError(
            "its layout (an inline table or a dotted key?) cannot be edited safely to set"
            " {names}: write each table as a [table] header with `key = value` lines",
            names=enumeration(f"[{table}] {key}" for table, key in values),
        )
    return result
