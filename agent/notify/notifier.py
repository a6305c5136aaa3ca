"""After each delivery, tell the employee what is newly failing or about to leave its grace
period, on their desktop; remember what was told (decide.py, memory.py).

A notice that could not be shown (nobody logged in, a tool missing) is not remembered, so it
is tried again at the next round. Nothing here may stop the service from reporting: the
service logs a failure and goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Protocol

from devposture.agent.notify import memory
from devposture.agent.notify.decide import Notice, due, remember
from devposture.agent.notify.message import Worded, worded
from devposture.agent.notify.run import NotifyError
from devposture.agent.state import AgentState
from devposture.agent.status import View

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, worded: Worded) -> int:
        """Show the notice, to each person in their language; how many sessions showed it
        (0: nobody to show it to)."""
        ...


def live_sender(platform: str = sys.platform) -> Sender:
    if platform == "win32":
        from devposture.agent.notify.windows import WindowsSender  # noqa: PLC0415

        return WindowsSender()
    if platform == "darwin":
        from devposture.agent.notify.macos import MacSender  # noqa: PLC0415

        return MacSender()
    from devposture.agent.notify.linux import LinuxSender  # noqa: PLC0415

    return LinuxSender()


class Notifier:
    def __init__(
        self, state: AgentState, sender: Sender,
        view: Callable[[dt.datetime], View] | None = None,
    ) -> None:  # fmt: skip
        """`view`: how the employee reads at a moment (default: the company's time zone, as
        the collector last said it); the sender picks each person's language."""
        self._state = state
        self._sender = sender
        self._view = view

    def run(self, now: dt.datetime) -> list[Notice]:
        """Show what is due by the last verdicts the collector gave; the notices shown."""
        ack = self._state.load_verdicts()
        if ack is None:
            return []
        told = memory.load(self._state.notified_path)
        view = (
            self._view(now)
            if self._view is not None
            else View.here(now, self._state.company_time_zone())
        )
        shown = []
        for notice in due(ack.verdicts, told, now):
            try:
                if self._sender.send(worded(notice, view)):
                    shown.append(notice)
            except NotifyError as exc:  # the next would fail alike: the next round retries
                log.info("notice about %s not shown: %s", notice.verdict.check_id, exc)
                break
        kept = remember(told, ack.verdicts, shown, now)
        if kept != told:
            memory.save(self._state.notified_path, kept)
        return shown
