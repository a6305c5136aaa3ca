"""Every program the agent runs to reach the logged-in user's desktop, in one place a
reviewer can read (CONTRIBUTING.md, "changing an installer": the agent's own commands are
declared, never built elsewhere). Each function returns an argv; nothing here runs it.

Linux: logind (`loginctl`) names the active local graphical sessions and their users; the
notification goes over that user's session bus (/run/user/UID/bus) with `gdbus`, as that
user: the session bus refuses every other user, root too. The service has no right to change
users (its unit keeps no CAP_SETUID), so it asks systemd to start `gdbus` as the user
(`systemd-run --uid`), outside the service's sandbox and within systemd's own rules.

macOS: the console's owner (`stat /dev/console`), then `launchctl asuser` puts `osascript`
in that user's bootstrap namespace, where Notification Center is; `sudo -u` makes it run as
the user, not as root in their namespace. The user's languages (`defaults read -g
AppleLanguages`) are read the same way, as the user: root's `defaults` reads root's
preferences. Where the user has none, the system's (`/Library/Preferences`), as Homebrew does.

Windows: the service (LocalSystem, session 0) has no desktop. It registers a one-time
scheduled task for the Users group (S-1-5-32-545, interactive token: it runs in each
logged-on user's own session, as that user), starts it and deletes it; the task shows a
toast through Windows' ToastNotificationManager, in the Chinese or the English words as that
user's display language is (the service's own is SYSTEM's, not theirs). Programs are named by
full path under %SystemRoot%, texts travel base64-encoded (-EncodedCommand), so no quoting can
break them.
"""

from __future__ import annotations

import base64
import os
from pathlib import PureWindowsPath

NOTIFICATIONS = "org.freedesktop.Notifications"
# PowerShell's own app id: a toast needs a registered app, and this one is on every Windows.
POWERSHELL_APP_ID = r"{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\WindowsPowerShell\v1.0\powershell.exe"
TASK_NAME = "devposture-notify"
USERS_GROUP = "S-1-5-32-545"


def list_sessions() -> list[str]:
    return ["loginctl", "list-sessions", "--no-legend"]


def show_session(session_id: str) -> list[str]:
    properties = ("Name", "User", "Type", "Class", "Active", "Remote")
    return ["loginctl", "show-session", session_id, *(f"--property={p}" for p in properties)]


def _gvariant_string(text: str) -> str:
    """`text` as GVariant text (what gdbus parses each argument as): single-quoted."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _markup(text: str) -> str:
    """The body may hold markup (the specification's body-markup): & and < are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def freedesktop_notify(gdbus: str, app: str, summary: str, body: str) -> list[str]:
    """org.freedesktop.Notifications.Notify(app_name, replaces_id, app_icon, summary, body,
    actions, hints, expire_timeout) on the session bus DBUS_SESSION_BUS_ADDRESS names;
    -1: the server's own timeout."""
    return [
        gdbus, "call", "--session", "--dest", NOTIFICATIONS,
        "--object-path", "/org/freedesktop/Notifications",
        "--method", f"{NOTIFICATIONS}.Notify", "--timeout", "10", "--",
        _gvariant_string(app), "0", "''", _gvariant_string(summary),
        _gvariant_string(_markup(body)), "[]", "{}", "-1",
    ]  # fmt: skip


def session_bus(uid: int) -> str:
    return f"unix:path=/run/user/{uid}/bus"


def as_user(uid: int, argv: list[str]) -> list[str]:
    """`argv` run by systemd as the user `uid` (its own group), with that user's session bus,
    waited for, its unit gone afterwards; cut off after a minute should it hang."""
    return [
        "systemd-run", f"--uid={uid}", "--quiet", "--collect", "--wait",
        "--service-type=exec", f"--setenv=DBUS_SESSION_BUS_ADDRESS={session_bus(uid)}",
        "--property=RuntimeMaxSec=60", "--", *argv,
    ]  # fmt: skip


def console_owner() -> list[str]:
    """macOS: uid and name of who is logged in at the screen ("501 li.wei"; root at the
    login window)."""
    return ["/usr/bin/stat", "-f", "%u %Su", "/dev/console"]


def macos_user_languages(uid: int, user: str) -> list[str]:
    """The console user's preferred languages, as that user: "(\n    "zh-Hans-CN",\n ...)"."""
    return [
        "/bin/launchctl", "asuser", str(uid), "/usr/bin/sudo", "-u", user,
        "/usr/bin/defaults", "read", "-g", "AppleLanguages",
    ]  # fmt: skip


# The languages chosen for the whole Mac (the login window's), where a user has none.
MACOS_SYSTEM_LANGUAGES = (
    "/usr/bin/defaults", "read", "/Library/Preferences/.GlobalPreferences", "AppleLanguages",
)  # fmt: skip


def _applescript_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_notify(uid: int, user: str, app: str, summary: str, body: str) -> list[str]:
    script = (
        f"display notification {_applescript_string(body)} with title"
        f" {_applescript_string(app)} subtitle {_applescript_string(summary)}"
    )
    return [
        "/bin/launchctl", "asuser", str(uid), "/usr/bin/sudo", "-u", user,
        "/usr/bin/osascript", "-e", script,
    ]  # fmt: skip


def _powershell_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _xml(text: str) -> str:
    return _markup(text).replace('"', "&quot;")


def _encoded(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


# A toast's texts: its title (the app's name), the summary line, the body.
ToastTexts = tuple[str, str, str]


def _toast_xml(texts: ToastTexts) -> str:
    lines = "".join(f"<text>{_xml(text)}</text>" for text in texts if text)
    return f'<toast><visual><binding template="ToastGeneric">{lines}</binding></visual></toast>'


def toast_script(chinese: ToastTexts, english: ToastTexts) -> str:
    """What the task runs in each user's session: show one toast, in Chinese when that
    user's display language is Chinese (CurrentUICulture: the user's, since the task runs as
    them), else in English. The app's name is its title (the first text, in bold), as the
    title of the Linux and macOS notices: joined to the summary by a colon it read
    "设备合规检查: 防火墙已开启：不合规", an English colon inside a Chinese line."""
    return "\n".join([
        "$ErrorActionPreference = 'Stop'",
        "[Windows.UI.Notifications.ToastNotificationManager, Windows.UI.Notifications,"
        " ContentType = WindowsRuntime] | Out-Null",
        "[Windows.Data.Xml.Dom.XmlDocument, Windows.Data.Xml.Dom.XmlDocument,"
        " ContentType = WindowsRuntime] | Out-Null",
        f"$chinese = {_powershell_quoted(_toast_xml(chinese))}",
        f"$english = {_powershell_quoted(_toast_xml(english))}",
        "$zh = [Globalization.CultureInfo]::CurrentUICulture.TwoLetterISOLanguageName -eq 'zh'",
        "$xml = New-Object Windows.Data.Xml.Dom.XmlDocument",
        "$xml.LoadXml($(if ($zh) { $chinese } else { $english }))",
        "$toast = [Windows.UI.Notifications.ToastNotification]::new($xml)",
        "[Windows.UI.Notifications.ToastNotificationManager]::CreateToastNotifier("
        f"{_powershell_quoted(POWERSHELL_APP_ID)}).Show($toast)",
    ])  # fmt: skip


def windows_notify(
    chinese: ToastTexts, english: ToastTexts, environ: dict[str, str] | None = None
) -> list[str]:
    """The service's command: a one-time task for the Users group that shows the toast in
    each logged-on user's session, in that user's language, started, then deleted."""
    env = os.environ if environ is None else environ
    powershell = str(
        PureWindowsPath(env.get("SystemRoot", r"C:\Windows"))
        / "System32" / "WindowsPowerShell" / "v1.0" / "powershell.exe"
    )  # fmt: skip
    toast = _encoded(toast_script(chinese, english))
    inner = f"-NoProfile -NonInteractive -WindowStyle Hidden -EncodedCommand {toast}"
    task = _powershell_quoted(TASK_NAME)
    outer = "\n".join([
        "$ErrorActionPreference = 'Stop'",
        f"$action = New-ScheduledTaskAction -Execute {_powershell_quoted(powershell)}"
        f" -Argument {_powershell_quoted(inner)}",
        f"$principal = New-ScheduledTaskPrincipal -GroupId {_powershell_quoted(USERS_GROUP)}"
        " -RunLevel Limited",
        f"Register-ScheduledTask -TaskName {task} -Action $action -Principal $principal"
        " -Force | Out-Null",
        f"Start-ScheduledTask -TaskName {task}",
        "Start-Sleep -Seconds 10",
        f"Unregister-ScheduledTask -TaskName {task} -Confirm:$false",
    ])  # fmt: skip
    return [
        powershell, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
        "-EncodedCommand", _encoded(outer),
    ]  # fmt: skip
