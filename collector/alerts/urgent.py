"""The urgent alert's words: what a collector whose database refuses writes (a full disk, a
server that takes no writes) tells IT without recording it (`unrecorded`), and what it tells
once writes go through again.

Chinese first, then English, as a digest is (`render`): a heading with the time in the
company's time zone, the collector by its host (each collector on a shared database sends its
own), the problem and the fix as `refused_writes` words them, and why it may come more than
once. The sentences are the catalogs' (`said`, msgctxt "cli"): a translator edits the Chinese
in the `.po`, not here. Nothing a device reported, no path, no address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from devposture.collector.alerts import local_time
from devposture.collector.alerts.digest import REMINDER, RESOLVED
from devposture.collector.refused_writes import Refusal
from devposture.policy.catalogs import Lang
from devposture.policy.cli_messages import Said, said
from devposture.policy.time_zone import DEFAULT_TIME_ZONE

KIND = "writes_refused"
LANGS: tuple[Lang, Lang] = ("zh", "en")
MOMENTS = {"zh": local_time.in_chinese, "en": local_time.in_english}


@dataclass(frozen=True)
class Urgent:
    """One urgent alert: `status` NEW, REMINDER or RESOLVED; `since` when this collector first
    met `refusal`; `at` when the alert was made (for RESOLVED: when writes went through).
    `notice_id` is the same at each retry of one alert, so a receiver can drop a repeat."""

    notice_id: str
    status: str
    collector: str
    refusal: Refusal
    since: dt.datetime
    at: dt.datetime


def _title(status: str) -> Said:
    if status == RESOLVED:
        return said("devposture urgent alert resolved")
    if status == REMINDER:
        return said("devposture urgent alert, still open")
    return said("devposture urgent alert")


def _body(n: Urgent, lang: Lang, zone: str) -> list[Said]:
    since = MOMENTS[lang](n.since, n.at, zone)
    problem, fix = n.refusal.problem, n.refusal.fix
    if n.status == RESOLVED:
        return [
            said("Collector {collector} writes to its database again (refused since {since}:"
                 " {problem}).", collector=n.collector, since=since, problem=problem),
            said("Reports and alerts are recorded again; agents deliver the reports they kept."),
        ]  # fmt: skip
    return [
        said("Collector {collector} cannot write to its database since {since}: {problem}.",
             collector=n.collector, since=since, problem=problem),
        said("What to do: {fix}; the collector resumes by itself, without a restart. Until"
             " then agents keep their reports and no alert digest can be recorded.", fix=fix),
        said("Sent without a record in the database: each collector on that database sends"
             " its own, named by its host."),
    ]  # fmt: skip


def text(n: Urgent, lang: Lang, *, bold: bool, zone: str = DEFAULT_TIME_ZONE) -> str:
    """The alert in one language, its heading bold for WeCom's markdown."""
    when = MOMENTS[lang](n.at, n.at, zone)
    words = local_time.zone_words(zone)[LANGS.index(lang)]
    title = _title(n.status).worded(lang)
    title = f"**{title}**" if bold else title
    # As a digest's heading: "标题（北京时间 12月5日 16:38）", "title (5 Dec 16:38 Beijing time)".
    heading = f"{title}（{words} {when}）" if lang == "zh" else f"{title} ({when} {words})"
    return "\n".join([heading, *(line.worded(lang) for line in _body(n, lang, zone))])


def texts(n: Urgent, *, bold: bool, zone: str = DEFAULT_TIME_ZONE) -> tuple[str, str]:
    """(Chinese, English)."""
    zh, en = (text(n, lang, bold=bold, zone=zone) for lang in LANGS)
    return zh, en


def subject(n: Urgent) -> str:
    """An email's subject, Chinese then English."""
    if n.status == RESOLVED:
        line = said("Resolved: collector {collector} writes to its database again",
                    collector=n.collector)  # fmt: skip
    else:
        line = said("Urgent: collector {collector} cannot write to its database",
                    collector=n.collector)  # fmt: skip
    return f"[devposture] {line.worded('zh')} / {line.worded('en')}"

