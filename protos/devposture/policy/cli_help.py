"""The command lines' help and argparse's own words (usage, errors), in the reader's language.

A parser is built once, in English, as the code writes it; `localize` then walks it and puts
each text a person reads (a description, an epilog, an option's or a command's help, a group's
title) into the reader's language from the catalogs (msgctxt "cli.help"), filling `{name}`
placeholders with values known only at run time (a default folder that depends on the
environment), which a msgid must not hold. `help_messages` walks the same parser for the
catalogs, so that a help text without its Chinese fails the catalog test.

argparse words its own errors in English before it hands them to `error`: the parser class
here matches them against argparse's templates (`ARGPARSE`, msgctxt "argparse") and words them
again in the reader's language, so that `--limit 0` is refused in Chinese, usage line and all.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from typing import NoReturn

from devposture.policy.catalogs import Lang, translate

CONTEXT = "cli.help"
ARGPARSE_CONTEXT = "argparse"
# The templates of argparse's words a person meets (Python 3.11 to 3.13); each is in
# argparse's source (a test checks), and in the catalogs.
ERROR_FRAME = "%(prog)s: error: %(message)s\n"
ARGUMENT = "argument %(argument_name)s: %(message)s"
ARGPARSE_ERRORS: tuple[str, ...] = (
    "invalid choice: %(value)r (choose from %(choices)s)",
    "invalid %(type)s value: %(value)r",
    "the following arguments are required: %s",
    "unrecognized arguments: %s",
    "expected one argument",
    "expected at least one argument",
    "expected at most one argument",
    "ambiguous option: %(option)s could match %(matches)s",
    "not allowed with argument %s",
    "one of the arguments %s is required",
    "ignored explicit argument %r",
)
# The groups' titles ("options") are help texts like any other (msgctxt "cli.help").
ARGPARSE_WORDS: tuple[str, ...] = ("usage: ", ERROR_FRAME, ARGUMENT, *ARGPARSE_ERRORS)
# A group's heading, its title and a colon (argparse's own template from Python 3.13; 3.11
# and 3.12 write the same without one): Chinese puts a full-width colon after a title.
HEADING = "%(heading)s:"
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sr]|%[sr]")
# What argparse fills in a help text: %(default)s, %(default)g, %(prog)s ...
_PRINTF = re.compile(r"%\(\w+\)[a-z]|%[a-z%]")


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every sub-command's parser under it, each once."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def _texts(parser: argparse.ArgumentParser) -> Iterator[tuple[object, str]]:
    """(holder, attribute) of each text a person reads in `parser`'s help."""
    yield parser, "description"
    yield parser, "epilog"
    for group in parser._action_groups:
        yield group, "title"
        yield group, "description"
    for action in parser._actions:
        yield action, "help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield choice, "help"


def _readable(text: object) -> str | None:
    return text if isinstance(text, str) and text and text != argparse.SUPPRESS else None


def help_messages(parser: argparse.ArgumentParser) -> list[str]:
    """The English of every help text of `parser` (built, not yet localized), in order."""
    found = [
        text
        for each in _parsers(parser)
        for holder, name in _texts(each)
        if (text := _readable(getattr(holder, name, None))) is not None
    ]
    return list(dict.fromkeys(found))


def localize(
    parser: argparse.ArgumentParser, lang: Lang, values: Mapping[str, object] | None = None
) -> None:
    """Put every help text of `parser` into `lang`, its `{name}` placeholders filled from
    `values`, and make each parser word argparse's messages in `lang` too."""
    filled = {k: str(v) for k, v in (values or {}).items()}
    done: set[int] = set()  # a parent's options are shared by its children's parsers
    for each in _parsers(parser):
        each.__class__ = _localized(type(each), lang)
        each.formatter_class = _formatter(each.formatter_class, lang)  # type: ignore[arg-type]
        for holder, name in _texts(each):
            text = _readable(getattr(holder, name, None))
            if text is None or id(holder) in done:
                continue
            worded = translate(lang, CONTEXT, text)
            setattr(holder, name, _filled(worded, text, filled))
        done |= {id(action) for action in each._actions}


def _filled(worded: str, english: str, values: Mapping[str, str]) -> str:
    """`worded` with its placeholders filled (the English, when a translation names one the
    English does not: the catalog test catches that first)."""
    if "{" not in worded:
        return worded
    try:
        return worded.format_map(values)
    except (KeyError, ValueError, IndexError):
        return english.format_map(values)


def _formatter(base: type[argparse.HelpFormatter], lang: Lang) -> type[argparse.HelpFormatter]:
    prefix = translate(lang, ARGPARSE_CONTEXT, "usage: ")
    heading_words = translate(lang, ARGPARSE_CONTEXT, HEADING)
    raw = base._fill_text is not argparse.HelpFormatter._fill_text  # a Raw…HelpFormatter

    class Localized(base):  # type: ignore[valid-type,misc]
        headings: list[str] | None = None

        def start_section(self, heading: str | None) -> None:
            if heading:
                self.headings = [*(self.headings or []), heading]
            super().start_section(heading)

        def format_help(self) -> str:
            """argparse's text, each heading's colon as `lang` writes it."""
            text = str(super().format_help())
            if heading_words == HEADING:
                return text
            for heading in self.headings or []:
                worded = heading_words % {"heading": heading}
                pattern = re.compile(rf"^( *){re.escape(heading)}:$", re.MULTILINE)
                text = pattern.sub(lambda found: found.group(1) + worded, text)  # noqa: B023
            return text

        def add_usage(self, usage: object, actions: object, groups: object,
                      prefix: str | None = prefix) -> None:  # fmt: skip
            super().add_usage(usage, actions, groups, prefix)

        def _split_lines(self, text: str, width: int) -> list[str]:
            return wrapped(text, width) if lang == "zh" else super()._split_lines(text, width)

        def _fill_text(self, text: str, width: int, indent: str) -> str:
            if lang != "zh" or raw:
                return str(super()._fill_text(text, width, indent))
            return "\n".join(indent + line for line in wrapped(text, width - len(indent)))

    return Localized


# Punctuation a Chinese line does not start with: it stays at the end of the line before.
_NO_LINE_START = frozenset("，。；：、）」』》？！")
# Nor does one end with an opening bracket: it goes to the next line, with what it opens.
_NO_LINE_END = frozenset("（「『《【")


def _columns(text: str) -> int:
    """How many terminal columns `text` takes: a wide (Chinese) character two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrapped(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` columns, broken at a space or beside a wide
    character (Chinese has no spaces between words; argparse's textwrap counts characters
    and breaks only at spaces, so that its Chinese lines ran twice the terminal's width)."""
    units: list[str] = []
    for ch in " ".join(text.split()):
        if ch != " " and _columns(ch) == 1 and units and units[-1] != " " \
                and _columns(units[-1][-1]) == 1:  # fmt: skip
            units[-1] += ch  # a word of narrow characters stays whole
        else:
            units.append(ch)
    lines, line = [], ""
    for unit in units:
        if line.strip() and _columns(line + unit) > width and unit not in _NO_LINE_START:
            kept = line.rstrip()
            carried = ""
            while kept[-1] in _NO_LINE_END and kept[:-1].strip():
                kept, carried = kept[:-1].rstrip(), kept[-1] + carried
            lines.append(kept)
            line = carried + ("" if unit == " " else unit)
        else:
            line += unit
    return [*lines, line.rstrip()] if line.strip() else lines


def _localized(base: type[argparse.ArgumentParser], lang: Lang) -> type[argparse.ArgumentParser]:
    if getattr(base, "lang", None) is not None:
        base = base.__mro__[1]

    class Localized(base):  # type: ignore[misc,valid-type]
        def error(self, message: str) -> NoReturn:
            self.print_usage(sys.stderr)
            frame = translate(lang, ARGPARSE_CONTEXT, ERROR_FRAME)
            self.exit(2, frame % {"prog": self.prog, "message": reword(message, lang)})
            raise AssertionError("exit returns only by raising")  # pragma: no cover

    Localized.lang = lang
    return Localized


def _pattern(template: str) -> re.Pattern[str]:
    """A regular expression that matches what `template` words, capturing each value."""
    parts, at = [], 0
    for count, found in enumerate(_PLACEHOLDER.finditer(template)):
        parts.append(re.escape(template[at : found.start()]))
        name = found.group(1) or f"_{count}"
        parts.append(f"(?P<{name}>.*?)" if name != "message" else f"(?P<{name}>.*)")
        at = found.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def reword(message: str, lang: Lang) -> str:
    """argparse's English `message` in `lang` (unchanged when it matches no known template)."""
    if lang == "en":
        return message
    for template in (ARGUMENT, *ARGPARSE_ERRORS):
        found = _pattern(template).match(message)
        if found is None:
            continue
        values = found.groupdict()
        if "message" in values:
            values["message"] = reword(values["message"], lang)
        words = translate(lang, ARGPARSE_CONTEXT, template)
        positional = [values[k] for k in sorted(values) if k.startswith("_")]
        named = {k: v for k, v in values.items() if not k.startswith("_")}
        return _fill(words, named, positional)
    return message


def _fill(words: str, named: Mapping[str, str], positional: list[str]) -> str:
    """`words` with argparse's placeholders filled by the texts already worded (a `%r` keeps
    the quotes the English had)."""
    queue = list(positional)

    def value(found: re.Match[str]) -> str:
        return named[found.group(1)] if found.group(1) else queue.pop(0)

    return _PLACEHOLDER.sub(value, words)


def printf_placeholders(text: str) -> list[str]:
    """The %-placeholders of a text (a translation must keep them)."""
    return sorted(found.group(0) for found in _PRINTF.finditer(text))


def every_argparse_message() -> list[tuple[str, str]]:
    """(context, English) of argparse's words, for the catalogs."""
    return [(ARGPARSE_CONTEXT, text) for text in (*ARGPARSE_WORDS, HEADING)]
