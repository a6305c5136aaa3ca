"""Where an admin command's result goes, and in what shape: a table that fits the terminal, or
a file (CSV, JSON, XLSX) written to `--output FILE` or standard output.

The command itself (local or remote) only returns rows; everything that depends on where the
person is — the terminal's width, a file's name, how many rows they want to see — is decided
here, after it ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

from devposture.collector.admin.commands import CommandError, Result, Words, present
from devposture.collector.column_words import table_language
from devposture.collector.exports import FILE_FORMATS, FORMATS, export
from devposture.collector.render import fitting, headed
from devposture.policy.cli_messages import option_error, reader_language, said
from devposture.policy.os_errors import os_error


def format_options(parser: argparse.ArgumentParser, *, listing: bool = True) -> None:
    """--format, --output and --wide; with `listing`, --limit too."""
    parser.add_argument(
        "--format", choices=FORMATS, default="table",
        help="output format (default: %(default)s); csv opens in Excel, xlsx needs --output",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", type=Path, default=None, metavar="FILE",
        help="write to FILE instead of standard output (replaced if it exists)",
    )  # fmt: skip
    parser.add_argument(
        "--wide", action="store_true",
        help="show every cell whole, however wide (default on a terminal: cut to fit it)",
    )  # fmt: skip
    if listing:
        parser.add_argument(
            "--limit", type=_limit, default=None, metavar="N",
            help="show the first N rows only (says how many more there are)",
        )  # fmt: skip


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise option_error(
            "--limit takes a whole number of rows, 1 or more, not {value}", value=repr(text)
        )
    return value


def refuse_binary_on_terminal(args: argparse.Namespace) -> None:
    """XLSX is binary: printed on a terminal it is noise and can upset the terminal. Refused
    before the command runs, so nothing is done (or audited) for nothing."""
    if getattr(args, "format", None) != "xlsx" or getattr(args, "output", None) is not None:
        return
    if sys.stdout.isatty():
        raise CommandError(
            "--format xlsx writes a binary Excel file, which a terminal cannot show: add"
            " --output FILE.xlsx (or redirect it: > FILE.xlsx)."
        )


def table_width(args: argparse.Namespace) -> int | None:
    """How wide a table may be on a terminal: its width ($COLUMNS when set, as
    `shutil.get_terminal_size` reads it). No limit with --wide or --output, or when standard
    output is not a terminal: a script, a pipe or a file gets every cell whole."""
    if getattr(args, "wide", False) or getattr(args, "output", None) is not None:
        return None
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _limited(result: Result, limit: int | None, lang: str | None) -> tuple[Result, str]:
    """The first `limit` rows, and a line saying how many more there are."""
    if limit is None or len(result.rows) <= limit:
        return result, ""
    more, total = len(result.rows) - limit, len(result.rows)
    note = said(
        "… {more} more row(s) not shown ({total} in all): give a larger --limit, or leave it"
        " out to see every row.",
        more=f"{more:,}", total=f"{total:,}",
    ).worded(reader_language(lang))
    return dataclasses.replace(result, rows=result.rows[:limit]), note + "\n"


def emit(words: Words, result: Result, args: argparse.Namespace) -> int:
    """Print (or write) a command's result; its exit status."""
    fmt = getattr(args, "format", "table")
    output: Path | None = getattr(args, "output", None)
    result, more = _limited(result, getattr(args, "limit", None), getattr(args, "lang", None))
    lang = reader_language(getattr(args, "lang", None))
    if fmt in FILE_FORMATS and result.columns:
        data = export(result.rows, result.columns, fmt, title=" ".join(words))
        message = result.shown_message(lang)
        err = message + "\n" if message else ""
    else:
        with fitting(table_width(args)), headed(table_language(getattr(args, "lang", None))):
            out, err = present(words, result, fmt, lang)
        data = out.encode("utf-8")
    if output is not None:
        _write(output, data)
        err += said("wrote {path} ({count} row(s), {format})", path=output,
                    count=f"{len(result.rows):,}", format=fmt).worded(lang) + "\n"
    else:
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (`head`, a pager) has had enough: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.stderr.write(err + more)
    return 1 if result.failed else 0


def _write(path: Path, data: bytes) -> None:
    """`data` into `path` whole: a half-written file is never left under its name."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CommandError(
            "cannot write {path}: {problem}; give --output a file in a folder you can write to.",
            path=path, problem=os_error(exc, exc.strerror),
        ) from None
