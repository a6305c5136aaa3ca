"""When a notice is due and what is remembered (time given as data), logind's outputs read
for the desktop sessions (real recorded outputs), and the exact commands each OS's notifier
runs."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

from devposture.agent.notify import commands, memory
from devposture.agent.notify.decide import Notice, Told, due, remember
from devposture.agent.notify.linux import is_local_desktop, properties, session_ids
from devposture.v1 import devposture_pb2 as pb

LOGINCTL = Path(__file__).parent.parent / "fixtures" / "linux" / "loginctl"
NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _verdict(state: str, grace_until: dt.datetime | None = None) -> pb.CheckVerdict:
    verdict = pb.CheckVerdict(check_id="firewall", state=state)
    if grace_until is not None:
        verdict.grace_until.FromDatetime(grace_until)
    return verdict


def test_a_failure_is_due_once_and_its_reminder_in_the_last_day() -> None:
    deadline = NOW + 72 * HOUR
    failing = [_verdict("FAIL", deadline)]
    first = due(failing, {}, NOW)
    assert [n.kind for n in first] == ["failing"]
    told = remember({}, failing, first, NOW)
    assert told == {"firewall": Told(deadline, NOW)}
    assert due(failing, told, NOW + 47 * HOUR) == []  # more than a day left
    assert [n.kind for n in due(failing, told, NOW + 49 * HOUR)] == ["reminder"]
    assert due(failing, told, deadline) == []  # past: nothing more to remind of
    reminded = remember(told, failing, due(failing, told, NOW + 49 * HOUR), NOW + 49 * HOUR)
    assert reminded["firewall"].reminded
    assert due(failing, reminded, NOW + 50 * HOUR) == []


def test_a_short_grace_is_told_once_not_reminded_at_once() -> None:
    deadline = NOW + 4 * HOUR  # the firewall's grace: first told within its last day
    failing = [_verdict("FAIL", deadline)]
    told = remember({}, failing, due(failing, {}, NOW), NOW)
    assert due(failing, told, NOW + HOUR) == []


def test_a_fixed_check_is_forgotten_and_a_new_deadline_is_a_new_failure() -> None:
    failing = [_verdict("FAIL", NOW + 72 * HOUR)]
    told = remember({}, failing, due(failing, {}, NOW), NOW)
    assert remember(told, [_verdict("PASS")], [], NOW + HOUR) == {}
    again = [_verdict("FAIL", NOW + 80 * HOUR)]
    assert [n.kind for n in due(again, told, NOW + 8 * HOUR)] == ["failing"]
    # Neither UNKNOWN nor a pass is told.
    assert due([_verdict("UNKNOWN"), _verdict("PASS")], {}, NOW) == []


def test_nothing_shown_is_nothing_remembered() -> None:
    failing = [_verdict("FAIL")]
    assert remember({}, failing, [], NOW) == {}
    told = remember({}, failing, [Notice("failing", failing[0])], NOW)
    assert told == {"firewall": Told(None, NOW)}


def test_memory_is_written_whole_and_a_damaged_file_reads_as_nothing_told(tmp_path: Path) -> None:
    path = tmp_path / "notified.json"
    told = {"firewall": Told(NOW + HOUR, NOW, reminded=True), "antivirus": Told(None, NOW)}
    memory.save(path, told)
    assert memory.load(path) == told
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["notified.json"]
    path.write_text('{"version": 1, "checks": {"firewall": {"told_at": 3}}}')
    assert memory.load(path) == {}
    path.write_bytes(b"\x00\xff")
    assert memory.load(path) == {}


def test_logind_listings_give_every_session_id() -> None:
    assert session_ids((LOGINCTL / "list-sessions-gdm-ssh.txt").read_text()) == [
        "3", "35", "39", "c1"
    ]  # fmt: skip
    assert session_ids((LOGINCTL / "list-sessions-c2.txt").read_text()) == ["c2"]


def test_a_local_active_wayland_session_is_a_desktop_and_others_are_not() -> None:
    props = properties((LOGINCTL / "show-session-ubuntu-24.04-gnome-wayland.txt").read_text())
    assert props["Type"] == "wayland" and is_local_desktop(props)
    assert "User" not in props  # this quote names nobody: desktop_sessions skips it
    assert not is_local_desktop({**props, "Remote": "yes"})
    assert not is_local_desktop({**props, "Active": "no"})
    assert not is_local_desktop({**props, "Class": "greeter"})  # the login screen
    assert not is_local_desktop({**props, "Type": "tty"})


def test_the_linux_commands() -> None:
    assert commands.list_sessions() == ["loginctl", "list-sessions", "--no-legend"]
    assert commands.show_session("c2") == [
        "loginctl", "show-session", "c2", "--property=Name", "--property=User",
        "--property=Type", "--property=Class", "--property=Active", "--property=Remote",
    ]  # fmt: skip
    notify = commands.freedesktop_notify(
        "/usr/bin/gdbus", "设备合规检查", "防火墙: 不合规", "a & b\nit's <x>"
    )
    assert notify == [
        "/usr/bin/gdbus", "call", "--session", "--dest", "org.freedesktop.Notifications",
        "--object-path", "/org/freedesktop/Notifications",
        "--method", "org.freedesktop.Notifications.Notify", "--timeout", "10", "--",
        "'设备合规检查'", "0", "''", "'防火墙: 不合规'", "'a &amp; b\\nit\\'s &lt;x&gt;'",
        "[]", "{}", "-1",
    ]  # fmt: skip
    assert commands.as_user(1000, ["/usr/bin/gdbus", "call"]) == [
        "systemd-run", "--uid=1000", "--quiet", "--collect", "--wait", "--service-type=exec",
        "--setenv=DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
        "--property=RuntimeMaxSec=60", "--", "/usr/bin/gdbus", "call",
    ]  # fmt: skip


def test_the_macos_commands() -> None:
    assert commands.console_owner() == ["/usr/bin/stat", "-f", "%u %Su", "/dev/console"]
    assert commands.macos_notify(501, "li.wei", "设备合规检查", '防火墙 "on"', "a\\b") == [
        "/bin/launchctl", "asuser", "501", "/usr/bin/sudo", "-u", "li.wei",
        "/usr/bin/osascript", "-e",
        'display notification "a\\\\b" with title "设备合规检查" subtitle "防火墙 \\"on\\""',
    ]  # fmt: skip


def _decoded(argv: list[str]) -> str:
    return base64.b64decode(argv[argv.index("-EncodedCommand") + 1]).decode("utf-16-le")


def test_the_windows_commands() -> None:
    argv = commands.windows_notify(
        ("", "防火墙: 不合规", "Tom's <PC> & co"), ("", "Firewall", "off"),
        {"SystemRoot": r"D:\Win"},
    )
    powershell = r"D:\Win\System32\WindowsPowerShell\v1.0\powershell.exe"
    assert argv[:6] == [
        powershell, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
        "-EncodedCommand",
    ]  # fmt: skip
    assert len(argv) == 7
    outer = _decoded(argv)
    assert f"New-ScheduledTaskAction -Execute '{powershell}'" in outer
    assert "New-ScheduledTaskPrincipal -GroupId 'S-1-5-32-545' -RunLevel Limited" in outer
    assert (
        outer.index("Register-ScheduledTask -TaskName 'devposture-notify'")
        < outer.index("Start-ScheduledTask -TaskName 'devposture-notify'")
        < outer.index("Unregister-ScheduledTask -TaskName 'devposture-notify' -Confirm:$false")
    )
    inner_arguments = outer.split("-Argument '", 1)[1].split("'\n", 1)[0]
    assert inner_arguments.startswith("-NoProfile -NonInteractive -WindowStyle Hidden")
    toast = _decoded(inner_arguments.split())
    assert "<text>防火墙: 不合规</text><text>Tom''s &lt;PC&gt; &amp; co</text>" in toast
    assert "CreateToastNotifier('" + commands.POWERSHELL_APP_ID + "').Show($toast)" in toast
