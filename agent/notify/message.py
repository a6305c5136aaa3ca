"""A notice in the words `status` shows: the check's title and its state with the grace
deadline as the summary, what to do (the policy's remedy and this OS's steps) as the body.
Never the collector's reason: it can name a Wi-Fi network or a backup's folder, and a
notification shows on a screen others may see."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from devposture.agent.employee.language import Lang
from devposture.agent.notify.decide import Notice
from devposture.agent.status import View, remedies, state_text, title
from devposture.policy.catalogs import LANGS


@dataclass(frozen=True)
class Message:
    app: str
    summary: str
    body: str


def message_of(notice: Notice, view: View) -> Message:
    verdict = notice.verdict
    summary = view.words.labelled(title(verdict, view.lang), state_text(verdict, view))
    return Message(view.words.app_name, summary, "\n".join(remedies(verdict, view)))


# One notice in every language: each sender shows each person the one their desktop is in
# (the service's own locale says nothing about theirs).
Worded = Mapping[Lang, Message]


def worded(notice: Notice, view: View) -> dict[Lang, Message]:
    """`notice` in each language, read as `view` reads (its zone, OS and moment)."""
    return {lang: message_of(notice, replace(view, lang=lang)) for lang in LANGS}
