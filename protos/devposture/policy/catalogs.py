"""The message catalogs: every word a person reads, in Chinese and English, from gettext.

The `.po` files under `locale/<language>/LC_MESSAGES/devposture.po` are the source (a
translator edits them); the `.mo` files beside them are what is read, compiled from them by
`make catalogs` (`scripts/catalogs.py`, with Babel) and committed, so that neither the agent
nor the collector needs Babel at run time: the standard library's `gettext` reads `.mo`.
`tests/policy/test_catalogs.py` fails when a `.mo` differs from its `.po`, when a catalog
lacks a word, or when a translation's placeholders differ from the English.

Each message has a context (`msgctxt`): a reason's code, or "term", "wrap", "state", "join"
(`devposture.policy.reasons.every_message`), so two codes with the same English stay apart.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DOMAIN = "devposture"
LOCALE_DIR = Path(__file__).parent / "locale"
# The catalog's folder per language (gettext's locale names).
LOCALES: dict[Lang, str] = {"zh": "zh_CN", "en": "en"}


@functools.cache
def catalog(lang: Lang) -> gettext.NullTranslations:
    """The compiled catalog of `lang`. A missing file reads as English (the msgids): a
    broken package shows English, never an error, and the tests catch it first."""
    return gettext.translation(
        DOMAIN, LOCALE_DIR, languages=[LOCALES.get(lang, "en")], fallback=True
    )


def translate(lang: Lang, context: str, english: str) -> str:
    """`english` (a msgid) in `lang`, in its `context`. English is the msgid itself: its
    catalog maps every message to its own msgid (`tests/policy/test_catalogs.py` holds it
    so), and is not loaded, which spares every process that words anything in English the
    1.1 MB of resident memory its 1,561 messages took as a table."""
    if lang == "en":
        return english
    return catalog(lang).pgettext(context, english)


# Full-width marks that close a phrase: Chinese typography leaves no space after them.
_CLOSERS = ("）", "」", "』", "】", "》", "，", "。", "：", "；")


def closed_up(template: str, values: Mapping[str, str]) -> str:
    """A translated `template` without the space its translator left after a value that now
    ends in a full-width mark: "{time} 过期" was written when a time ended in digits ("09:00
    过期"); worded in Chinese it ends in "（UTC+08:00）", after which Chinese typography puts no
    space ("（UTC+08:00）过期", not "（UTC+08:00） 过期"). Only the template's own space goes;
    what a value holds (a network's name) is never touched."""
    for name, value in values.items():
        if value.endswith(_CLOSERS):
            template = template.replace(f"{{{name}}} ", f"{{{name}}}")
    return template
