"""Reading a configuration file a person edits (`collector.toml`, the agent's `agent.toml`) as
strictly as `policy.toml`: every section and key it may hold, what kind of value each takes, and
every mistake named with its line and its fix.

A misspelt key (`drain_second = 5`) must not be silently ignored: the program would run on the
default while the operator believes the file, which is worse than refusing to start. So an
unknown section or key, a value of the wrong kind and a missing required key are each a
problem, all of them found in one pass (a person fixes the file in one go), and the file is
refused while any is left. Keys added after the first release are optional, so an older file
keeps working with their defaults.

Shared by the collector and the agent (neither imports the other): the reading is the same, only
the schema (each side's sections and keys) differs.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devposture.policy.toml_lines import Path_, line_of

# `list` stands for a list of texts (`folders = ["/srv/a", "~/b"]`), held as a tuple.
Value = str | int | float | bool | tuple[str, ...]


class ConfigError(Exception):
    """A configuration cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class Setting:
    """One key: its kind, the value `init` writes (shown as the example of a fix), and
    whether the file must hold it (older files lack the keys added later). `sample` is the
    example to show instead of the default, when the default (an empty list, an empty text)
    would not show what to write."""

    kind: type  # str, int, float, bool or list (of texts)
    default: Value
    required: bool = False
    sample: Value | None = None


_KIND_WORDS = {
    str: "a text in quotes",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list of texts in quotes, in brackets",
}


def _spelled(value: Value) -> str:
    """A value as a TOML file spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_spelled(v) for v in value) + "]"
    return str(value)


def example(key: str, setting: Setting) -> str:
    """The line to write, as `init` writes it: `port = 7446`, `host = "127.0.0.1"`."""
    return f"{key} = {_spelled(setting.default if setting.sample is None else setting.sample)}"


def _shown(value: object) -> str:
    """A value as the file spells it (true, not Python's True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _fits(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind)


def _close(name: str, names: list[str]) -> str | None:
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return found[0] if found else None


class ConfigFile:
    """One parsed configuration file and the problems found in it so far. `name` is how the
    messages call the file (`collector.toml`, `agent.toml`); its path names it by default."""

    def __init__(
        self, path: Path, schema: dict[str, dict[str, Setting]], name: str | None = None,
        table: dict[str, object] | None = None,
    ) -> None:  # fmt: skip
        """Reads and parses `path`; or, given `table`, checks that already-parsed document (a
        macOS managed preferences plist: same sections and keys, no lines to name)."""
        self.path = path
        self.schema = schema
        self.name = name or path.name
        self.problems: list[tuple[int | None, str]] = []
        if table is not None:
            self.source, self.table = "", table
            self._unknown()
            return
        try:
            self.source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text ({exc}): save it as UTF-8") from exc
        try:
            self.table = tomllib.loads(self.source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path}: not valid TOML ({exc}): fix that line (texts in quotes, true or"
                " false, numbers without units)"
            ) from exc
        self._unknown()

    def problem(self, where: Path_, message: str) -> None:
        self.problems.append((line_of(self.source, where), message))

    def _unknown(self) -> None:
        """Sections and keys the program does not know, and values where a section goes."""
        sections = sorted(self.schema)
        listed = ", ".join(f"[{s}]" for s in sections)
        for name, value in self.table.items():
            if name in self.schema and isinstance(value, dict):
                self._unknown_keys(name, value)
            elif name in self.schema:
                self.problem((name,), f"{name} must be the section [{name}], not a value")
            elif isinstance(value, dict):
                near = _close(name, sections)
                fix = f"did you mean [{near}]?" if near else "remove it"
                self.problem(
                    (name,),
                    f"[{name}] is not a section of {self.name}: {fix} (the sections are"
                    f" {listed})",
                )
            else:
                homes = [s for s in sections if name in self.schema[s]]
                fix = f"move it under [{homes[0]}]" if len(homes) == 1 else "remove it"
                self.problem((name,), f"{name} is outside any section: {fix}")

    def _unknown_keys(self, section: str, table: dict[str, object]) -> None:
        known = sorted(self.schema[section])
        for key in table:
            if key in self.schema[section]:
                continue
            homes = [s for s in sorted(self.schema) if key in self.schema[s]]
            near = _close(key, known)
            if homes:
                fix = f"it belongs under [{homes[0]}]; move it there"
            elif near:
                fix = f"did you mean {near}?"
            else:
                fix = "remove it"
            self.problem(
                (section, key),
                f"[{section}] {key} is not a setting of [{section}]: {fix}"
                f" ([{section}] takes {', '.join(known)})",
            )

    def given(self, section: str, key: str) -> bool:
        """Whether the file writes this key (so that it overrides a default)."""
        table = self.table.get(section, {})
        return isinstance(table, dict) and key in table

    def _value(self, section: str, key: str, kind: type) -> Value:
        """The checked value of a key (its default after a problem, which is recorded)."""
        setting = self.schema[section][key]
        assert setting.kind is kind, f"[{section}] {key} is a {setting.kind.__name__}"
        table = self.table.get(section, {})
        if not isinstance(table, dict) or key not in table:
            if setting.required:
                self.problem(
                    (section, key),
                    f"[{section}] {key} is missing: add `{example(key, setting)}` under"
                    f" [{section}]",
                )
            return setting.default
        value = table[key]
        if not _fits(value, kind):
            self.problem(
                (section, key),
                f"[{section}] {key} must be {_KIND_WORDS[kind]}, not {_shown(value)}: write e.g."
                f" `{example(key, setting)}`",
            )
            return setting.default
        if kind is list:
            return tuple(value)
        return float(value) if kind is float else value

    def text(self, section: str, key: str) -> str:
        value = self._value(section, key, str)
        assert isinstance(value, str)
        return value

    def texts(self, section: str, key: str) -> tuple[str, ...]:
        value = self._value(section, key, list)
        assert isinstance(value, tuple)
        return value

    def whole(self, section: str, key: str) -> int:
        value = self._value(section, key, int)
        assert isinstance(value, int)
        return value

    def number(self, section: str, key: str) -> float:
        value = self._value(section, key, float)
        assert isinstance(value, float)
        return value

    def flag(self, section: str, key: str) -> bool:
        value = self._value(section, key, bool)
        assert isinstance(value, bool)
        return value

    def port(self, section: str, key: str) -> int:
        value = self.whole(section, key)
        if not 0 <= value <= 65535:
            self.problem(
                (section, key), f"[{section}] {key} must be between 0 and 65535, not {value}"
            )
        return value

    def at_least(self, section: str, key: str, value: float, minimum: float) -> None:
        if value < minimum:
            self.problem(
                (section, key), f"[{section}] {key} must be at least {minimum:g}, not {value:g}"
            )

    def check(self) -> None:
        """Raise every problem found, each with its line; nothing when there is none."""
        if not self.problems:
            return
        lines = [
            f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}"
            for line, message in sorted(self.problems, key=lambda p: p[0] or 0)
        ]
        if len(lines) > 1:
            lines.append(f"{self.path}: {len(lines)} problems; fix each, then run again")
        raise ConfigError("\n".join(lines))
