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
the schema (each side's sections and keys) differs. Each problem is an English template with its
parameters (`devposture.policy.cli_messages`), so that the command line words it, line by line,
in the reader's language while `str(error)` stays English for the logs.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from devposture.policy.cli_messages import Said, Worded, enumeration, lines, said
from devposture.policy.toml_lines import Path_, line_of

# `list` stands for a list of texts (`folders = ["/srv/a", "~/b"]`), held as a tuple.
Value = str | int | float | bool | tuple[str, ...]


class ConfigError(Worded):
    """A configuration cannot be used; the message says how to fix it (worded in the
    reader's language, `Worded`)."""


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
    str: said("a text in quotes"),
    int: said("a whole number"),
    float: said("a number"),
    bool: said("true or false"),
    list: said("a list of texts in quotes, in brackets"),
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
        self.problems: list[tuple[int | None, Said]] = []
        if table is not None:
            self.source, self.table = "", table
            self._unknown()
            return
        try:
            self.source = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("{path} is not UTF-8 text ({problem}): save it as UTF-8",
                              path=path, problem=exc) from exc  # fmt: skip
        try:
            self.table = tomllib.loads(self.source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                "{path}: not valid TOML ({problem}): fix that line (texts in quotes, true or"
                " false, numbers without units)",
                path=path, problem=exc,
            ) from exc
        self._unknown()

    def problem(self, where: Path_, message: Said) -> None:
        """Record a problem at `where` (its line is found in the file): a `said(...)`."""
        self.problems.append((line_of(self.source, where), message))

    def _unknown(self) -> None:
        """Sections and keys the program does not know, and values where a section goes."""
        sections = sorted(self.schema)
        listed = enumeration(f"[{s}]" for s in sections)
        remove = said("remove it")
        for name, value in self.table.items():
            if name in self.schema and isinstance(value, dict):
                self._unknown_keys(name, value)
            elif name in self.schema:
                self.problem((name,), said("{name} must be the section [{name}], not a value",
                                           name=name))  # fmt: skip
            elif isinstance(value, dict):
                near = _close(name, sections)
                fix = said("did you mean [{near}]?", near=near) if near else remove
                self.problem((name,), said(
                    "[{name}] is not a section of {file}: {fix} (the sections are {listed})",
                    name=name, file=self.name, fix=fix, listed=listed,
                ))  # fmt: skip
            else:
                homes = [s for s in sections if name in self.schema[s]]
                fix = said("move it under [{home}]", home=homes[0]) if len(homes) == 1 else remove
                self.problem((name,), said("{name} is outside any section: {fix}", name=name,
                                           fix=fix))  # fmt: skip

    def _unknown_keys(self, section: str, table: dict[str, object]) -> None:
        known = sorted(self.schema[section])
        for key in table:
            if key in self.schema[section]:
                continue
            homes = [s for s in sorted(self.schema) if key in self.schema[s]]
            near = _close(key, known)
            if homes:
                fix = said("it belongs under [{home}]; move it there", home=homes[0])
            elif near:
                fix = said("did you mean {near}?", near=near)
            else:
                fix = said("remove it")
            self.problem((section, key), said(
                "[{section}] {key} is not a setting of [{section}]: {fix} ([{section}] takes"
                " {keys})",
                section=section, key=key, fix=fix, keys=enumeration(known),
            ))  # fmt: skip

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
                self.problem((section, key), said(
                    "[{section}] {key} is missing: add `{example}` under [{section}]",
                    section=section, key=key, example=example(key, setting),
                ))  # fmt: skip
            return setting.default
        value = table[key]
        if not _fits(value, kind):
            self.problem((section, key), said(
                "[{section}] {key} must be {kind}, not {value}: write e.g. `{example}`",
                section=section, key=key, kind=_KIND_WORDS[kind], value=_shown(value),
                example=example(key, setting),
            ))  # fmt: skip
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
            self.problem((section, key), said(
                "[{section}] {key} must be between 0 and 65535, not {value}",
                section=section, key=key, value=value,
            ))  # fmt: skip
        return value

    def at_least(self, section: str, key: str, value: float, minimum: float) -> None:
        if value < minimum:
            self.problem((section, key), said(
                "[{section}] {key} must be at least {minimum}, not {value}",
                section=section, key=key, minimum=f"{minimum:g}", value=f"{value:g}",
            ))  # fmt: skip

    def check(self) -> None:
        """Raise every problem found, each with its line; nothing when there is none."""
        if not self.problems:
            return
        found = [
            said("{path}:{line}: {problem}", path=self.path, line=line, problem=message)
            if line else said("{path}: {problem}", path=self.path, problem=message)
            for line, message in sorted(self.problems, key=lambda p: p[0] or 0)
        ]  # fmt: skip
        if len(found) > 1:
            found.append(said("{path}: {count} problems; fix each, then run again",
                              path=self.path, count=len(found)))  # fmt: skip
        raise ConfigError(lines(*found))
