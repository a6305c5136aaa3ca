"""Bring the message catalogs up to date with the code, and compile them (`make catalogs`).

Babel is a development tool here (the `test` extra), never a run-time dependency: the agent
and the collector read the compiled `.mo` with the standard library's `gettext`.

1. The messages are taken from where they are declared (`devposture.policy.messages`: the
   reasons and the per-OS steps; the agent's frame words, `agent/employee/words.py`; the
   dashboard's, `collector/web/i18n.py`; the tables' headings, `collector/column_words.py`),
   not by scanning source text: a reason's English
   lives in one declaration with its code and parameters. The command lines' errors are the
   exception: their English is written where they are raised, and `agent/cli_words.py` and
   `collector/cli_words.py` find it there (in the syntax tree, as xgettext would), with the
   help texts of their parsers.
2. Each `.po` keeps its translations; a new message is added (the English catalog's msgstr is
   the English itself, as `msgen` would write it; the Chinese one's is empty, for a translator,
   and the tests fail until it is filled); a message no longer declared is dropped.
3. Each `.po` is compiled to its `.mo` beside it, which is committed.

Run `python scripts/catalogs.py --check` to only say whether anything would change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from devposture.agent import cli_words as agent_cli
from devposture.agent.employee import words
from devposture.collector import cli_words as collector_cli
from devposture.collector import column_words
from devposture.collector.web import i18n as dashboard
from devposture.policy.catalogs import DOMAIN, LANGS, LOCALE_DIR, LOCALES
from devposture.policy.messages import all_messages

# Fixed, so that the files change only when a message does.
_DATE = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def declared() -> list[tuple[str, str]]:
    """(context, English) of every message, each once, in a stable order."""
    every = (all_messages() + words.every_message() + dashboard.every_message()
             + column_words.every_message() + collector_cli.every_message()
             + agent_cli.every_message())  # fmt: skip
    return list(dict.fromkeys(every))


def po_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def updated(locale: str) -> tuple[bytes, bytes]:
    """(the .po, the .mo) of `locale` brought up to date."""
    path = po_path(locale)
    old = Catalog(locale=locale)
    if path.exists():
        with path.open("rb") as handle:
            old = read_po(handle, locale=locale)
    new = Catalog(
        locale=locale,
        domain=DOMAIN,
        project="devposture",
        version="",
        fuzzy=False,
        creation_date=_DATE,
        revision_date=_DATE,
    )
    for context, english in declared():
        kept = old.get(english, context=context)
        text = kept.string if kept is not None and kept.string else ""
        if not text and locale == "en":
            text = english
        new.add(english, text, context=context)
    po, mo = io.BytesIO(), io.BytesIO()
    write_po(po, new, width=100, omit_header=False, sort_output=False, no_location=True)
    write_mo(mo, new)
    return po.getvalue(), mo.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    stale = []
    for lang in LANGS:
        locale = LOCALES[lang]
        po, mo = updated(locale)
        path = po_path(locale)
        for target, data in ((path, po), (path.with_suffix(".mo"), mo)):
            if not target.exists() or target.read_bytes() != data:
                stale.append(target)
                if not args.check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
    for target in stale:
        print(f"{'stale' if args.check else 'wrote'}: {target}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
