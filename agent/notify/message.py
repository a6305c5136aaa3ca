"""A notice in the words `status` shows: the check's title and its state with the grace
deadline as the summary, what to do (the policy's remedy and this OS's steps) as the body.
Never the collector's reason: it can name a Wi-Fi network or a backup's folder, and a
notification shows on a screen others may see."""

from __future__ import annotations

from dataclasses import dataclass

from devposture.agent.notify.decide import Notice
from devposture.agent.status import View, remedies, state_text, title


@dataclass(frozen=True)
class Message:
    app: str
    summary: str
    body: str


def message_of(notice: Notice, view: View) -> Message:
    verdict = notice.verdict
    summary = view.words.labelled(title(verdict, view.lang), state_text(verdict, view))
    return Message(view.words.app_name, summary, "\n".join(remedies(verdict, view)))
