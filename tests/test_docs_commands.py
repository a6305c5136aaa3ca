"""The commands the README and the Chinese guide tell people to type are commands the programs
take, and every command people need is told somewhere.

IT copies these lines as they are (the guide is IT's first reading, in Chinese); a renamed
option or subcommand leaves a line that fails with "unrecognized arguments" on the day it is
needed, and nothing else notices. So each command quoted in a shell block, or inline as a
whole command line, is parsed here by the program's real argparse parser (options, choices,
subcommands and required arguments: nothing runs). And each subcommand of both programs
must be named in the documentation (README, docs/, installers/README.md), so that a new
command does not stay unknown to the people who would use it."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devposture.agent import cli as agent_cli
from devposture.collector import cli as collector_cli

ROOT = Path(__file__).resolve().parents[1]
# What IT, employees and auditors are told to type.
QUOTING = (ROOT / "README.md", ROOT / "docs" / "guide-zh.md")
# Where a command may be told (the rollout guides and references beside the README).
TELLING = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
           ROOT / "installers" / "README.md")  # fmt: skip
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "devposture-collector": collector_cli.build_parser,
    "devposture-agent": agent_cli.build_parser,
}
# Commands nobody types: Windows' service manager starts `service` (`sc start devposture-agent`,
# docs/rollout-windows.md).
NOT_TYPED = {"devposture-agent service"}
# A shell block's opening fence, and an inline span that is a whole command line.
FENCE = re.compile(r"^\s*```(\w*)\s*$")
INLINE = re.compile(r"`((?:devposture-collector|devposture-agent) [^`]+)`")
# An inline span that names a command without its program: `serve --workers N`.
SPAN = re.compile(r"`([a-z][a-z-]* (?:--?[a-z]|[a-z])[^`]*)`")


def _shell_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command) of each line of a ```sh block, continued lines joined."""
    in_shell, pending, first = False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            in_shell = not in_shell and fence.group(1) in ("sh", "bash", "shell", "console")
            continue
        if not in_shell:
            continue
        if not pending:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending = ""


def _argv(command: str) -> list[str] | None:
    """The words a shell passes to the program, or None for a line that runs neither
    program. An optional part the docs bracket (`[--all]`, `[--report ID]`) is typed, and
    the first of the values they offer (`--format table|json|csv`); a command substitution
    stands for one word; a redirection or a pipe ends the command."""
    command = re.sub(r"\$\([^)]*\)", "WORD", command)
    command = re.sub(r"\[(--[^\]]*)\]", r"\1", command)
    words = shlex.split(command, comments=True)
    if not words or words[0] not in PARSERS:
        return None
    argv = []
    for word in words:
        if word in ("|", "&&", ";") or word.startswith((">", "<", "2>")):
            break
        argv.append(word.split("|")[0] if "|" in word else word)
    return argv


def _quoted() -> list[tuple[str, list[str], bool]]:
    """(where, argv, whole) of every command the quoting documents show: `whole` for a line
    of a shell block, to be typed as it is; an inline span may name a command in a sentence
    (`devposture-collector backup`) and leave out what it requires."""
    found = []
    for path in QUOTING:
        text = path.read_text(encoding="utf-8")
        for number, line in _shell_lines(text):
            argv = _argv(line)
            if argv is not None:
                found.append((f"{path.relative_to(ROOT)}:{number}", argv, True))
        for number, line in enumerate(text.splitlines(), start=1):
            spans = INLINE.findall(line) + [
                f"{_program_of(span)} {span}" for span in SPAN.findall(line) if _program_of(span)
            ]
            for span in spans:
                argv = _argv(span)
                if argv is not None:
                    found.append((f"{path.relative_to(ROOT)}:{number}", argv, False))
    return found


def _program_of(span: str) -> str:
    """The program whose command a span names without the program (`init --join`,
    `token create --group NAME`): the one that has its first word as a command (the two
    programs' commands differ), when its second word is one of that command's own
    commands or an option; "" for any other span."""
    first, second = span.split(" ", 2)[:2]
    for program, build in PARSERS.items():
        commands = _choices(build())
        if first in commands:
            below = _choices(commands[first])
            return program if second.startswith("-") or second.split("|")[0] in below else ""
    return ""


def _choices(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's commands by name ({} for a command that has none)."""
    return {name: sub for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}  # fmt: skip


QUOTED = _quoted()


def test_the_documents_quote_commands_of_both_programs() -> None:
    """The extraction finds what it should (a broken fence rule would find nothing and pass)."""
    programs = {argv[0] for _, argv, _ in QUOTED}
    assert programs == set(PARSERS)
    assert len(QUOTED) >= 80, len(QUOTED)


@pytest.mark.parametrize(("where", "argv", "whole"), QUOTED, ids=[w for w, _, _ in QUOTED])
def test_a_quoted_command_parses(where: str, argv: list[str], whole: bool) -> None:
    """A shell block's line is parsed whole: its values too, and what the command requires.
    An inline span may name a command in a sentence with an option and no value
    (`serve --metrics-port`, `--as-of DATE`): its commands and options must exist."""
    parser = PARSERS[argv[0]]()
    if not whole:
        unknown = _unknown_names(parser, argv[1:])
        assert unknown == [], f"{where}: {shlex.join(argv)}: no {', '.join(unknown)}"
        return
    refusal = io.StringIO()
    with contextlib.redirect_stderr(refusal), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv[1:])
        except SystemExit as exc:
            assert exc.code == 0, f"{where}: {shlex.join(argv)}\n{refusal.getvalue()}"


def _unknown_names(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The commands and options among `words` that `parser` does not have: the commands are
    the leading words, the options those that start with "--"."""
    rest = list(words)
    while rest and _choices(parser):
        if rest[0] not in _choices(parser):
            return [f"command {rest[0]!r}"]
        parser = _choices(parser)[rest.pop(0)]
    options = {o for action in parser._actions for o in action.option_strings}
    return [f"option {word}" for word in rest
            if word.startswith("--") and word.split("=")[0] not in options]  # fmt: skip


def _commands(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every command the parser takes, as its words (`ca rollover stage`), leaves only."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield words
    for action in subparsers:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*words, name))


def test_every_command_is_told_somewhere() -> None:
    """Named in full (`devposture-collector policy default`) or in code without the program's
    name (`policy default`): `ca rollover stage|activate|finish` names the three."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in TELLING)
    spans = re.findall(r"`([^`]+)`", text)
    untold = []
    for program, build in PARSERS.items():
        for words in _commands(build(), ()):
            typed = " ".join(words)
            *head, last = words
            told = f"{program} {typed}" in text or any(
                span == typed or span.startswith(f"{typed} ")
                or (span.startswith(" ".join(head) + " ") and last in
                    re.split(r"[|/ ]", span[len(" ".join(head)) + 1:].split(" ")[0]))
                for span in spans
            )  # fmt: skip
            if not told and f"{program} {typed}" not in NOT_TYPED:
                untold.append(f"{program} {typed}")
    assert untold == []
