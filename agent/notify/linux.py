"""Linux: a freedesktop notification on each active local desktop session's bus.

logind knows which sessions are graphical (x11, wayland), local and in front (Active); their
users' session buses are /run/user/UID/bus (systemd's user bus, where the desktop's
notification server is). Sent with `gdbus`, as the user: directly when the agent already runs
as that user, else through `systemd-run --uid` (see commands.py for why). Each user reads it
in their own desktop's language (`session_language.py`), whatever the service's locale.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devposture.agent.employee.language import DEFAULT, Lang
from devposture.agent.notify.commands import (
    as_user,
    freedesktop_notify,
    list_sessions,
    session_bus,
    show_session,
)
from devposture.agent.notify.message import Worded
from devposture.agent.notify.run import NotifyError, Run, checked, run_command
from devposture.agent.notify.session_language import user_language

DESKTOP_TYPES = frozenset({"x11", "wayland", "mir"})


@dataclass(frozen=True)
class Session:
    uid: int
    bus: str  # the D-Bus address of the user's session bus
    lang: Lang  # the language the user's desktop is in


def language_of_user(uid: int) -> Lang:
    """The language user `uid` set for their desktop (`session_language`); Chinese when
    nothing says (or the account is unknown)."""
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        return DEFAULT
    return user_language(account.pw_name, Path(account.pw_dir)) or DEFAULT


def session_ids(listing: str) -> list[str]:
    """`loginctl list-sessions --no-legend`: the first column of each line (ids such as
    `3` or `c2`); a header and the "N sessions listed." footer, should a version print them
    anyway, are left out."""
    ids = []
    for line in listing.splitlines():
        words = line.split()
        if words and words[0] != "SESSION" and not line.rstrip().endswith("listed."):
            ids.append(words[0])
    return ids


def properties(text: str) -> dict[str, str]:
    """`loginctl show-session --property=…`: KEY=VALUE lines."""
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key: value for key, _, value in pairs}


def is_local_desktop(props: dict[str, str]) -> bool:
    return (
        props.get("Active") == "yes" and props.get("Remote") == "no"
        and props.get("Class", "user") in ("user", "user-early")
        and props.get("Type") in DESKTOP_TYPES
    )  # fmt: skip


def desktop_sessions(
    run: Run = run_command, language: Callable[[int], Lang] = language_of_user
) -> list[Session]:
    """The active local desktop sessions, one per user, each with its user's language."""
    listed = checked(run(list_sessions(), None))
    found: dict[int, Session] = {}
    for session_id in session_ids(listed.stdout):
        props = properties(checked(run(show_session(session_id), None)).stdout)
        if is_local_desktop(props) and props.get("User", "").isdigit():
            uid = int(props["User"])
            if uid not in found:
                found[uid] = Session(uid, session_bus(uid), language(uid))
    return list(found.values())


class LinuxSender:
    def __init__(
        self, run: Run = run_command, sessions: Callable[[], list[Session]] | None = None,
        euid: int | None = None,
    ) -> None:  # fmt: skip
        self._run = run
        self._sessions = sessions or (lambda: desktop_sessions(run))
        self._euid = os.geteuid() if euid is None else euid

    def send(self, worded: Worded) -> int:
        """Show the notice on every active desktop, in its user's language; how many showed
        it (0: nobody there)."""
        gdbus = shutil.which("gdbus")
        if gdbus is None:
            raise NotifyError("gdbus is not installed (Debian and Ubuntu: libglib2.0-bin)")
        shown, failures = 0, []
        for session in self._sessions():
            message = worded[session.lang]
            argv = freedesktop_notify(gdbus, message.app, message.summary, message.body)
            if session.uid == self._euid:
                done = self._run(argv, {**os.environ, "DBUS_SESSION_BUS_ADDRESS": session.bus})
            else:
                done = self._run(as_user(session.uid, argv), None)
            try:
                checked(done)
                shown += 1
            except NotifyError as exc:
                failures.append(str(exc))
        if failures and not shown:
            raise NotifyError("; ".join(failures))
        return shown
