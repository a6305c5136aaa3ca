"""What the command lines say to a person (an error, a warning, a line of outcome), kept as its
English template and parameters and worded in the reader's language only when shown.

An error is raised as `CommandError("no device {device_id}: see …", device_id=…)`: its English
with a `{name}` per parameter is the catalogs' msgid (msgctxt "cli"), so that a translator
edits the Chinese in the `.po` like every other word, and `str(exc)` stays the English text
that logs, the audit log, scripts and older tests read. The command line's top-level handler
prints `exc.worded(lang)`. A parameter may itself be worded (an error inside another's
sentence) and is then worded in the same language; any other value is its text. The
English keeps "(s)" after a count for the translator ("{count} device(s)") and reads "1
device", "3 devices" (`devposture.policy.plurals`); the Chinese has no plural to settle.

An error travels from the collector's admin service to a remote command line as `wire()`
(JSON: the template and the parameters), so that the remote reader gets it in their own
language; `from_wire` reads it back.

The messages are found where they are written, as xgettext finds them: `extract` reads the
command lines' modules' syntax trees for calls of a worded error class, `said`, `say` or
`option_error`, whose first argument must be a literal (an f-string cannot be translated,
and is reported as a mistake, as is a computed text that is not passed through `as_is`).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from devposture.policy.catalogs import Lang, closed_up, translate
from devposture.policy.locale_env import language_of_environ
from devposture.policy.plurals import settled
from devposture.policy.reason_codes import WRAPS

CONTEXT = "cli"
# The gRPC trailing metadata that carries a refusal worded (`Worded.wire`), on the admin port
# and the enrollment port alike; the status's details stay the English (or, from an older
# collector, all there is). Here, not beside the gRPC code, for commands that load no gRPC.
ERROR_METADATA = "devposture-error"


def reader_language(chosen: str | None = None) -> Lang:
    """`--lang` when the command has it and it was given, else the locale's (as gettext reads
    it), else English."""
    if chosen in ("zh", "en"):
        return "zh" if chosen == "zh" else "en"
    return language_of_environ(os.environ, "en")


def _value(value: object) -> str | Said:
    if isinstance(value, Told):
        return value.said
    if isinstance(value, Said):
        return value
    if isinstance(value, Worded):
        return value.said
    if isinstance(value, OSError):  # the system's words for it, in the reader's language
        from devposture.policy.os_errors import os_error  # noqa: PLC0415

        return os_error(value)
    return str(value)


@dataclass(frozen=True)
class Said:
    """One sentence: its English template (None for a text shown as it is, in every
    language: another module's message, a program's output) and its parameters."""

    english: str
    params: Mapping[str, str | Said] = field(default_factory=dict)
    as_is: bool = False
    # The English as another party said it, shown to an English reader instead of the
    # template (the system's text of an OSError, `os_errors`): str(exc) stays what it was.
    plain: str | None = None

    def worded(self, lang: Lang) -> str:
        if self.as_is or (lang == "en" and self.plain is not None):
            return self.plain if self.plain is not None else self.english
        values = {k: _worded(v, lang) for k, v in self.params.items()}
        # English settles "(s)" by its count ("1 device", "3 devices"); the msgid keeps it.
        english = settled(self.english, self.params) if lang == "en" else self.english
        template = english if lang == "en" else closed_up(
            translate(lang, CONTEXT, self.english), values
        )
        try:
            return template.format_map(values) if values else template
        except (KeyError, ValueError, IndexError):  # a broken translation: the English, whole
            english = settled(self.english, self.params)
            return english.format_map(values) if values else english

    def __str__(self) -> str:
        return self.worded("en")

    def swapping(self, swap: Callable[[str | Said], str | Said | None]) -> Said:
        """This sentence with its values, at any depth, given by `swap` where it gives one
        (None: the value stays, a sentence walked in turn). A text as it is and a list of
        names (a subclass) have no values of a sentence: returned as they are. For a value
        one reader must not see as another does (the collector's own file, a device id)."""
        if self.as_is or type(self) is not Said:
            return self
        params: dict[str, str | Said] = {}
        for name, value in self.params.items():
            swapped = swap(value)
            params[name] = (
                swapped if swapped is not None
                else value.swapping(swap) if isinstance(value, Said)
                else value
            )  # fmt: skip
        return Said(self.english, params, plain=self.plain)

    def data(self) -> dict[str, Any]:
        """As JSON-ready data (`wire`)."""
        params = {k: _data(v) for k, v in self.params.items()}
        if self.as_is:
            return {"text": self.english}
        plain = {} if self.plain is None else {"plain": self.plain}
        return {"en": self.english, "params": params} | plain

    @classmethod
    def of_data(cls, data: object) -> Said | None:
        """Read back `data()`; None for anything else (from a newer or a foreign sender)."""
        if not isinstance(data, dict):
            return None
        pair = data.get("bracketed")  # before "text", which it carries for older readers
        if isinstance(pair, list) and [type(m) for m in pair] == [str, str]:
            return Bracketed.of(*pair)
        if isinstance(data.get("text"), str):
            return cls(data["text"], as_is=True)
        if isinstance(data.get("list"), list):
            items = [v if isinstance(v, str) else cls.of_data(v) for v in data["list"]]
            if any(item is None for item in items):
                return None
            return Listed.of(item for item in items if item is not None)
        english, raw = data.get("en"), data.get("params", {})
        if not isinstance(english, str) or not isinstance(raw, dict):
            return None
        params: dict[str, str | Said] = {}
        for name, value in raw.items():
            part = value if isinstance(value, str) else cls.of_data(value)
            if part is None:
                return None
            params[str(name)] = part
        plain = data.get("plain")
        return cls(english, params, plain=plain if isinstance(plain, str) else None)


@dataclass(frozen=True)
class Listed(Said):
    """Names one after another inside a sentence (checks, groups, sections, a certificate's
    names): "antivirus, firewall" in English, "antivirus、firewall" in Chinese, with the
    enumeration comma the catalog's lists use (msgctxt "join", as a reason's lists). Its
    `str` is the English as it always was: logs, scripts and the audit log keep it."""

    items: tuple[str | Said, ...] = ()

    @classmethod
    def of(cls, items: Iterable[str | Said]) -> Listed:
        kept = tuple(items)
        return cls(", ".join(str(item) for item in kept), items=kept)

    def worded(self, lang: Lang) -> str:
        comma = translate(lang, "join", ", ")
        return comma.join(i.worded(lang) if isinstance(i, Said) else i for i in self.items)

    def data(self) -> dict[str, Any]:
        return {"list": [i.data() if isinstance(i, Said) else i for i in self.items]}


@dataclass(frozen=True)
class Bracketed(Said):
    """A text with another in brackets after it, inside a sentence: a time and its offset,
    "2026-12-05 09:00 (UTC+08:00)" in English and "2026-12-05 09:00（UTC+08:00）" in Chinese,
    whose typography puts full-width brackets inside a Chinese sentence; a device id and its
    host, "3f2a… (laptop-li)" and "3f2a…（laptop-li）". The brackets are the catalog's
    (`bracketed`), chosen here for every such pair a sentence names, never by its callers.
    Its `str` is the English: logs, scripts and the audit log keep it. Sent as the English
    text too (`data`), which an older reader shows as it is."""

    before: str = ""  # "2026-12-05 09:00"
    inside: str = ""  # "UTC+08:00"

    @classmethod
    def of(cls, before: str, inside: str) -> Bracketed:
        return cls(before + bracketed(inside, "en"), before=before, inside=inside)

    def worded(self, lang: Lang) -> str:
        return self.before + bracketed(self.inside, lang)

    def data(self) -> dict[str, Any]:
        return {"text": self.english, "bracketed": [self.before, self.inside]}


def bracketed(text: str, lang: Lang) -> str:
    """`text` in brackets after a word, as `lang` writes them: " (UTC+08:00)" in English,
    "（UTC+08:00）" in Chinese (msgctxt "wrap", the reasons' brackets): for a text worded
    now, in a known language (a progress line); a sentence's value is a `Bracketed`."""
    return translate(lang, "wrap", WRAPS["paren"]).format(text)


def enumeration(items: Iterable[object]) -> str | Said:
    """`items` as a list inside a sentence (`Listed`): '' for none, so that
    `enumeration(found) or said("none")` still reads, and the one item itself for one."""
    values = [_value(item) for item in items]
    if not values:
        return ""
    return values[0] if len(values) == 1 else Listed.of(values)


def said(english: str, /, **params: object) -> Said:
    """A sentence that is not an error (a warning, an outcome), worded when shown."""
    return Said(english, {k: _value(v) for k, v in params.items()})


class Told(str):
    """A text that other code compares, counts and logs as its English (a verifier's finding,
    a summary line: `str` itself, byte for byte what it was), carrying its template and
    parameters so that a person's copy is worded in their language when printed."""

    said: Said

    def __new__(cls, english: str | Said, /, **params: object) -> Told:
        sentence = english if isinstance(english, Said) else said(english, **params)
        self = super().__new__(cls, str(sentence))
        self.said = sentence
        return self

    def worded(self, lang: Lang) -> str:
        return self.said.worded(lang)

    @classmethod
    def keeping(cls, text: str, sentence: Said) -> Told:
        """`text` as programs keep it (`str`: what JSON and CSV carry, byte for byte), worded
        for a person as `sentence` in either language: a stored English whose words for
        people changed since (a time it names, now shown in the company's time zone)."""
        self = str.__new__(cls, text)
        self.said = sentence
        return self


def _worded(value: str | Said, lang: Lang) -> str:
    """A sentence's value in `lang`: a sentence's words, a `Told`'s (a time put into the
    parameters as it is, `company_time.shown`), another text as it is."""
    return value.worded(lang) if isinstance(value, Said | Told) else value


def _data(value: str | Said) -> object:
    """A sentence's value as JSON-ready data (`Said.data`), a `Told`'s as its sentence."""
    if isinstance(value, Told):
        return value.said.data()
    return value.data() if isinstance(value, Said) else value


def told(english: str, /, **params: object) -> Told:
    """A `Told`: found by the catalogs like `said`."""
    return Told(english, **params)


def told_in(text: str, lang: Lang) -> str:
    """Any text in `lang`: a `Told`'s words, another's text as it is."""
    return text.worded(lang) if isinstance(text, Told) else text


def say(english: str, /, *, stream: IO[str] | None = None, lang: str | None = None,
        **params: object) -> None:
    """Print a line of outcome (what a command did, where it went) in the reader's language
    (`lang`: `--lang` when the command has it). A line a script reads (a fingerprint alone,
    JSON, CSV) is printed as it is instead, never through here."""
    print(said(english, **params).worded(reader_language(lang)), file=stream or sys.stdout)


class Worded(Exception):
    """An error a person reads: `str()` is its English, `worded(lang)` its words in `lang`."""

    def __init__(self, english: str | Said, /, **params: object) -> None:
        self.said = english if isinstance(english, Said) else said(english, **params)
        super().__init__(str(self.said))

    @classmethod
    def as_is(cls, text: object) -> Self:
        """An error whose text comes from elsewhere (another module's error, the system's):
        its words, when that module worded it (`Worded`, or raised it with a `Told`), else its
        text as it is in every language."""
        if isinstance(text, Worded):
            return cls(text.said)
        if isinstance(text, BaseException) and len(text.args) == 1:
            text = text.args[0]  # an exception raised with a `Told` (the verifier's)
        if isinstance(text, Told):
            return cls(text.said)
        return cls(Said(str(text), as_is=True))

    def worded(self, lang: Lang) -> str:
        return self.said.worded(lang)

    def wire(self) -> str:
        """The error as it travels to a remote command line (ASCII JSON)."""
        return json.dumps(self.said.data(), sort_keys=True)

    @classmethod
    def from_wire(cls, text: str) -> Self | None:
        try:
            found = Said.of_data(json.loads(text))
        except ValueError:
            return None
        return None if found is None else cls(found)


class BadValue(Worded, ValueError):
    """A value a person gave (an option, an environment variable, a line of a file) that
    cannot be used: a `ValueError` to the code that checks it, worded for the person."""


def lines(first: Said, *more: Said | str, indent: str = "") -> Said:
    """Sentences one to a line (a file's problems, each address tried), as one sentence
    worded line by line in the reader's language."""
    whole = first
    for line in more:
        whole = said("{above}\n{indent}{line}", above=whole, indent=indent, line=line)
    return whole


def worded(error: BaseException, lang: Lang) -> str:
    """Any error's words in `lang`: a worded one's translation, another's text."""
    return error.worded(lang) if isinstance(error, Worded) else str(error)


def error_line(prog: str, error: BaseException | Said, lang: Lang) -> str:
    """`prog: error: …` in `lang` (argparse's frame, from the same catalog entry)."""
    from devposture.policy.cli_help import ARGPARSE_CONTEXT, ERROR_FRAME  # noqa: PLC0415

    text = error.worded(lang) if isinstance(error, Said) else worded(error, lang)
    frame = translate(lang, ARGPARSE_CONTEXT, ERROR_FRAME)
    return frame % {"prog": prog, "message": text}


def option_error(english: str, /, **params: object) -> argparse.ArgumentTypeError:
    """A bad option value, for argparse (which shows the error's text as it is): worded now,
    in the reader's language."""
    return argparse.ArgumentTypeError(said(english, **params).worded(reader_language()))


# --- finding the messages in the source ------------------------------------------------------


def _callee(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _computed_text(node: ast.expr | None) -> bool:
    """An English put together at run time (an f-string, a `+`, `str(…)`, `.format(…)`),
    which no catalog can hold; a `said(…)` or a variable holding one is not."""
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    return isinstance(node, ast.Call) and _callee(node) in ("str", "format", "join")


def extract(paths: Iterable[Path], names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the English of every call of `names` in the files, in order; the calls whose English
    is put together at run time, as `file:line`). `names`: the worded classes."""
    wanted = set(names) | {"said", "say", "option_error", "told"}
    found: list[str] = []
    mistakes: list[str] = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or _callee(node) not in wanted:
                continue
            if isinstance(node.func, ast.Attribute) and node.func.attr == "as_is":
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append(first.value)
            elif _computed_text(first):
                mistakes.append(f"{path.name}:{node.lineno}")
    return list(dict.fromkeys(found)), mistakes


def _has_words(node: ast.expr) -> bool:
    """A literal text (or an f-string's literal parts) holding words, not only punctuation."""
    if isinstance(node, ast.JoinedStr):
        return any(_has_words(part) for part in node.values if isinstance(part, ast.Constant))
    if isinstance(node, ast.BinOp):  # "problem: " + text
        return _has_words(node.left) or _has_words(node.right)
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and any(
        ch.isalpha() for ch in node.value
    )


def raw_lines(paths: Iterable[Path]) -> list[str]:
    """The lines printed with their English written in place (`print("…")`, `.write(f"…")`)
    as `file:line`: the reader would get them in English whatever their language. A line of
    outcome goes through `say` (or `said(…).worded(…)`); one a script reads holds no words."""
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and _callee(node) in ("print", "write") and node.args
                    and _has_words(node.args[0])):  # fmt: skip
                found.append(f"{path.name}:{node.lineno}")
    return found


def worded_classes(*roots: type[Worded]) -> set[str]:
    """The names of `roots` and of every subclass of them."""
    names: set[str] = set()
    todo: list[type] = list(roots)
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names
