"""macOS: a Notification Center notice for whoever is at the screen (the console's owner)."""

from __future__ import annotations

from devposture.agent.notify.commands import console_owner, macos_notify
from devposture.agent.notify.message import Message
from devposture.agent.notify.run import Run, checked, run_command

# Who owns the console while nobody is logged in (the login window, first-boot setup).
NOBODY = frozenset({"root", "_mbsetupuser", "loginwindow"})


def console_user(stat_output: str) -> tuple[int, str] | None:
    """`stat -f "%u %Su" /dev/console`: (uid, name) of a person, else None."""
    parts = stat_output.split(maxsplit=1)
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    uid, name = int(parts[0]), parts[1].strip()
    return None if uid == 0 or name in NOBODY else (uid, name)


class MacSender:
    def __init__(self, run: Run = run_command) -> None:
        self._run = run

    def send(self, message: Message) -> int:
        user = console_user(checked(self._run(console_owner(), None)).stdout)
        if user is None:
            return 0
        uid, name = user
        checked(
            self._run(macos_notify(uid, name, message.app, message.summary, message.body), None)
        )
        return 1
