"""Windows: a toast in each logged-on user's session, through a one-time scheduled task
(commands.windows_notify). Windows runs the task only for users who are logged on, so
"shown" means handed to Windows."""

from __future__ import annotations

from devposture.agent.notify.commands import windows_notify
from devposture.agent.notify.message import Message
from devposture.agent.notify.run import Run, checked, run_command


class WindowsSender:
    def __init__(self, run: Run = run_command) -> None:
        self._run = run

    def send(self, message: Message) -> int:
        checked(self._run(windows_notify(message.summary, message.body, app=message.app), None))
        return 1
