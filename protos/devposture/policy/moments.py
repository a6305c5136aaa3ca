"""A moment as a person reads it inside a sentence: local time in the company's zone with
its offset, "2026-12-05 09:00 (UTC+08:00)" in English and "2026-12-05 09:00（UTC+08:00）" in
Chinese.

One place for the collector's sentences and pages (`collector.company_time.shown`, the
dashboard), the reasons (`reasons.render`), the audit verifier and the agent's command line,
so that the brackets follow the language the sentence is worded in (`Bracketed`) and no
caller picks them: Chinese typography puts full-width brackets inside Chinese text, and an ASCII
" (UTC+08:00)" after Chinese words was the one half-width mark left in it.
"""

from __future__ import annotations

import datetime as dt
import re

from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Bracketed, Told

__all__ = ["moment", "offset_label", "read_back", "words"]
# A moment's English, as `moment` writes it.
_ENGLISH = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d) \((UTC[+-]\d\d:\d\d)\)")


def offset_label(at: dt.datetime, zone: dt.tzinfo) -> str:
    """ "UTC+08:00": the zone's offset at that moment (a DST zone's changes with the date)."""
    offset = at.astimezone(zone).utcoffset() or dt.timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def moment(at: dt.datetime, zone: dt.tzinfo) -> Told:
    """`at` in `zone`, to the minute: the English text (what logs, scripts and comparisons
    read), worded in its sentence's language when the sentence is (`Told`)."""
    local = Bracketed.of(f"{at.astimezone(zone):%Y-%m-%d %H:%M}", offset_label(at, zone))
    return Told.keeping(local.english, local)


def words(at: dt.datetime, zone: dt.tzinfo, lang: Lang) -> str:
    """`moment` worded in `lang` now: for a text that is no sentence (a page's cell)."""
    return moment(at, zone).worded(lang)


def read_back(text: str) -> Bracketed | None:
    """A moment's English kept as text (an audit log entry's message) as the moment again,
    to be worded in a reader's language; None for any other text."""
    found = _ENGLISH.fullmatch(text)
    return None if found is None else Bracketed.of(found[1], found[2])
