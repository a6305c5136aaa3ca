""".NET custom date and time patterns ("M/d/yyyy", "dd-MM-yyyy", "yyyy/M/d H:mm:ss"), read back.

Windows PowerShell prints a DateTime with the current culture's ShortDatePattern and
LongTimePattern ("G"), so a date can be read exactly once the machine has said which patterns
it uses. This module turns such a pattern into a strict reader. It follows .NET's custom format
specifiers (learn.microsoft.com, "Custom date and time format strings"): "/" and ":" stand for
the culture's DateSeparator and TimeSeparator, text in quotes and after "\\" is literal, "%"
marks a lone specifier. What cannot be read without guessing is refused with a ParseError:
month names (the culture printout truncates them), a year without its century ("yy"), an era
("gg"), a 12-hour clock whose AM/PM designators are unknown or empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from devposture.agent.parsers.errors import ParseError

_SPECIFIERS = frozenset("dMyhHmsfFtgzK")
_SPACE = r"[\s\u00a0\u202f]*"


@dataclass(frozen=True)
class Designators:
    """AM and PM as the culture prints them; None when the printout did not show them."""

    am: str | None
    pm: str | None


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """("spec", "dd"), ("lit", "-"), ("datesep", "/"), ("timesep", ":"), ("space", " ")."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char in "'\"":
            end = pattern.find(char, i + 1)
            if end < 0:
                raise ParseError("date pattern: an unterminated quote")
            tokens.append(("lit", pattern[i + 1 : end]))
            i = end + 1
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise ParseError("date pattern: a trailing backslash")
            tokens.append(("lit", pattern[i + 1]))
            i += 2
        elif char == "%":
            i += 1
        elif char in _SPECIFIERS:
            end = i
            while end < len(pattern) and pattern[end] == char:
                end += 1
            tokens.append(("spec", pattern[i:end]))
            i = end
        elif char == "/":
            tokens.append(("datesep", char))
            i += 1
        elif char == ":":
            tokens.append(("timesep", char))
            i += 1
        elif char.isspace():
            tokens.append(("space", char))
            i += 1
        else:
            tokens.append(("lit", char))
            i += 1
    return tokens


def _designators(spec: str, marks: Designators) -> tuple[str, str]:
    """The AM and PM texts that `spec` ("t" or "tt") prints."""
    if marks.am is None or marks.pm is None:
        raise ParseError("date pattern: AM/PM designators not printed")
    if spec == "tt":
        return marks.am, marks.pm
    return marks.am[:1], marks.pm[:1]


def _designator_regex(am: str, pm: str) -> str:
    if am == pm:
        return f"(?P<ampm>{re.escape(am)})"
    return f"(?P<ampm>{re.escape(am)}|{re.escape(pm)})"


def _spec_regex(spec: str, marks: Designators) -> tuple[str, str]:
    """(group name, regex) for one specifier run."""
    kind, width = spec[0], len(spec)
    digits = r"\d{1,2}" if width == 1 else r"\d{2}"
    simple = {"d": "day", "M": "month", "h": "hour12", "H": "hour24", "m": "minute", "s": "second"}
    if kind == "d" and width >= 3:
        return "weekday", r"[^\W\d_]+\.?"  # a weekday name says nothing the date does not
    if kind == "M" and width >= 3:
        raise ParseError("date pattern: month names cannot be read back")
    if kind in simple and width <= 2:
        return simple[kind], digits
    if kind == "y":
        if width <= 2:
            raise ParseError("date pattern: a year without its century reads two ways")
        return "year", r"\d{3,5}"
    if kind in "fF":
        return "fraction", rf"\d{{{width}}}" if kind == "f" else rf"\d{{0,{width}}}"
    if kind == "t" and width <= 2:
        return "ampm", _designator_regex(*_designators(spec, marks))
    raise ParseError(f"date pattern: specifier {spec!r} is not read")


@dataclass(frozen=True)
class Reader:
    regex: re.Pattern[str]
    twelve_hour: bool
    # The AM and PM texts the pattern prints, when it prints one.
    designators: tuple[str, str] | None

    def _hour(self, found: dict[str, str | None]) -> int:
        if not self.twelve_hour:
            return int(found.get("hour24") or 0)
        hour = int(found["hour12"] or 0)
        if self.designators is None or self.designators[0] == self.designators[1]:
            raise ParseError("date: a 12-hour time without a telling AM/PM designator")
        if not 1 <= hour <= 12:
            raise ParseError("date: a 12-hour time out of range")
        return hour % 12 + (12 if found.get("ampm") == self.designators[1] else 0)

    def read(self, value: str) -> datetime:
        """The naive local date and time that `value` shows. Raises ParseError."""
        match = self.regex.fullmatch(value.strip())
        if match is None:
            raise ParseError("date: does not match the machine's date pattern")
        found = match.groupdict()
        hour = self._hour(found)
        try:
            return datetime(
                int(found["year"] or ""),
                int(found["month"] or ""),
                int(found["day"] or ""),
                hour,
                int(found.get("minute") or 0),
                int(found.get("second") or 0),
            )
        except ValueError as exc:
            raise ParseError("date: not a calendar date and time") from exc


def compile_pattern(
    pattern: str, marks: Designators, date_separator: str = "/", time_separator: str = ":"
) -> Reader:
    """A reader for values printed with `pattern`. Raises ParseError for what would need a
    guess (see the module docstring) and for a pattern without day, month and year."""
    parts: list[str] = []
    seen: set[str] = set()
    designators: tuple[str, str] | None = None
    for kind, text in _tokens(pattern):
        if kind == "spec":
            name, regex = _spec_regex(text, marks)
            if name == "ampm":
                designators = _designators(text, marks)
            if name in seen:
                raise ParseError(f"date pattern: {name} appears twice")
            seen.add(name)
            parts.append(regex if name == "ampm" else f"(?P<{name}>{regex})")
        elif kind == "datesep":
            parts.append(re.escape(date_separator))
        elif kind == "timesep":
            parts.append(re.escape(time_separator))
        elif kind == "space":
            parts.append(_SPACE)
        else:
            parts.append(re.escape(text))
    if not {"day", "month", "year"} <= seen:
        raise ParseError("date pattern: no day, month and year")
    if "hour12" in seen and "hour24" in seen:
        raise ParseError("date pattern: both a 12-hour and a 24-hour clock")
    return Reader(re.compile("".join(parts)), "hour12" in seen, designators)
