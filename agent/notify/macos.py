"""macOS: a Notification Center notice for whoever is at the screen (the console's owner), in
that person's language: their AppleLanguages (System Settings > General > Language & Region),
else the Mac's, else Chinese. The launchd daemon's own locale is nobody's."""

from __future__ import annotations

from devposture.agent.employee.language import DEFAULT, Lang
from devposture.agent.notify.commands import (
    MACOS_SYSTEM_LANGUAGES,
    console_owner,
    macos_notify,
    macos_user_languages,
)
from devposture.agent.notify.message import Worded
from devposture.agent.notify.run import NotifyError, Run, checked, run_command
from devposture.policy.locale_env import language_of_tag

# Who owns the console while nobody is logged in (the login window, first-boot setup).
NOBODY = frozenset({"root", "_mbsetupuser", "loginwindow"})


def console_user(stat_output: str) -> tuple[int, str] | None:
    """`stat -f "%u %Su" /dev/console`: (uid, name) of a person, else None."""
    parts = stat_output.split(maxsplit=1)
    if len(parts) != 2 or not parts[0].isdigit():
        return None
    uid, name = int(parts[0]), parts[1].strip()
    return None if uid == 0 or name in NOBODY else (uid, name)


def apple_languages(output: str) -> list[str]:
    """`defaults read … AppleLanguages`: an old-style property list array, one language per
    line, quoted when it has a dash ("zh-Hans-CN") and bare when not (en); in preference
    order. Anything else: no languages."""
    text = output.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return []
    items = (item.strip().strip('"') for item in text[1:-1].replace("\n", ",").split(","))
    return [item for item in items if item]


def language_of_tags(tags: list[str]) -> Lang | None:
    """The first of `tags` that is Chinese or English, as macOS picks the first language an
    app has in the user's list (Japanese then English reads English)."""
    for tag in tags:
        lang = language_of_tag(tag)
        if lang is not None:
            return lang
    return None


class MacSender:
    def __init__(self, run: Run = run_command) -> None:
        self._run = run

    def language(self, uid: int, name: str) -> Lang:
        """The console user's language: theirs, else the Mac's, else Chinese. A `defaults`
        that fails (the key not set: exit 1) says nothing, it is not an error."""
        for argv in (macos_user_languages(uid, name), list(MACOS_SYSTEM_LANGUAGES)):
            try:
                done = self._run(argv, None)
            except NotifyError:
                continue
            lang = language_of_tags(apple_languages(done.stdout)) if done.returncode == 0 else None
            if lang is not None:
                return lang
        return DEFAULT

    def send(self, worded: Worded) -> int:
        user = console_user(checked(self._run(console_owner(), None)).stdout)
        if user is None:
            return 0
        uid, name = user
        message = worded[self.language(uid, name)]
        checked(
            self._run(macos_notify(uid, name, message.app, message.summary, message.body), None)
        )
        return 1
