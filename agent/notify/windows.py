"""Windows: a toast in each logged-on user's session, through a one-time scheduled task
(commands.windows_notify), in that user's display language: the task carries both languages'
words and picks in the user's session. The service's own language would be SYSTEM's
(GetUserDefaultUILanguage answers for the calling account), not the person's. Windows runs
the task only for users who are logged on, so "shown" means handed to Windows."""

from __future__ import annotations

from devposture.agent.notify.commands import windows_notify
from devposture.agent.notify.message import Message, Worded
from devposture.agent.notify.run import Run, checked, run_command


class WindowsSender:
    def __init__(self, run: Run = run_command) -> None:
        self._run = run

    def send(self, worded: Worded) -> int:
        argv = windows_notify(_texts(worded["zh"]), _texts(worded["en"]))
        checked(self._run(argv, None))
        return 1


def _texts(message: Message) -> tuple[str, str, str]:
    return message.app, message.summary, message.body
