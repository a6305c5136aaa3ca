"""Desktop notifications on Linux, received by a real notification server: dunst on a real
D-Bus session bus, drawing on a real X server (Xvfb). What dunst received is read back with
`dunstctl history`. Times are given as data; waits poll for the event with a deadline.

The session is given to the sender (this test's bus, this test's user): logind does not run
here, so which session is in front is the one part not exercised live
(`test_notify_decisions.py` holds its parsing to logind's output)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devposture.agent.employee.company_time import company_zone
from devposture.agent.employee.language import DEFAULT, Lang
from devposture.agent.notify.linux import LinuxSender, Session
from devposture.agent.notify.notifier import Notifier
from devposture.agent.notify.session_language import user_language
from devposture.agent.state import AgentState
from devposture.agent.status import View
from devposture.v1 import devposture_pb2 as pb
from tests.agent.verdicts import policy_verdict

NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)  # 16:38 in Beijing
DEADLINE = NOW + dt.timedelta(days=3)  # 2026-12-05 16:38 Beijing
WAIT_SECONDS = 30.0


@dataclass
class Desktop:
    """A session bus with a notification server on it."""

    env: dict[str, str]
    address: str

    def dunstctl(self, *args: str) -> str:
        done = subprocess.run(
            ["dunstctl", *args], env=self.env, capture_output=True, text=True, timeout=10,
            check=True,
        )  # fmt: skip
        return done.stdout

    def received(self, count: int) -> list[dict[str, str]]:
        """The notifications dunst got, oldest first, once there are `count` of them: shown
        ones are closed into the history, which is read until they are all there."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            self.dunstctl("close-all")
            history = json.loads(self.dunstctl("history"))["data"][0]
            got = [{k: v["data"] for k, v in item.items()} for item in history]
            if len(got) >= count or time.monotonic() > deadline:
                return sorted(got, key=lambda n: n["id"])
            time.sleep(0.2)


def _start(argv: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    for tool in ("Xvfb", "dbus-daemon", "dunst", "dunstctl", "gdbus"):
        assert shutil.which(tool), f"{tool} is missing: .ci/run installs it"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "DBUS_SESSION_BUS_ADDRESS")}
    started: list[subprocess.Popen[bytes]] = []
    try:
        # Xvfb picks a free display itself and writes its number: no fixed display.
        read_display, write_display = os.pipe()
        started.append(_start(
            ["Xvfb", "-displayfd", str(write_display), "-nolisten", "tcp"], env,
            pass_fds=(write_display,), stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        os.close(write_display)
        with os.fdopen(read_display) as display:
            env["DISPLAY"] = ":" + display.readline().strip()
        bus = _start(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1",
             f"--address=unix:path={tmp_path / 'bus'}"], env, stdout=subprocess.PIPE,
        )  # fmt: skip
        started.append(bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        config = tmp_path / "dunstrc"
        config.write_text("[global]\n")
        started.append(_start(["dunst", "-config", str(config)], env, stderr=subprocess.DEVNULL))
        up = Desktop(env, address)
        deadline = time.monotonic() + WAIT_SECONDS
        while subprocess.run(
            ["dunstctl", "count"], env=env, capture_output=True, timeout=10, check=False
        ).returncode:
            assert time.monotonic() < deadline, "dunst did not come up on the session bus"
            time.sleep(0.1)
        yield up
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=10)


def _failing(check_id: str, grace_until: dt.datetime | None) -> pb.CheckVerdict:
    # A reason naming a network and a folder: it must never reach the screen.
    return policy_verdict(check_id, "FAIL", grace_until, "'CMCC-WEB' at ~/Documents/backups")


def _state(tmp_path: Path, verdict: pb.CheckVerdict) -> AgentState:
    """A state folder holding `verdict` as the collector's latest judgment."""
    state = AgentState(tmp_path / "state")
    state.directory.mkdir()
    state.save_verdicts(pb.ReportAck(verdicts=[verdict]))
    return state


def _notifier(state: AgentState, desktop: Desktop, lang: Lang) -> Notifier:
    """A notifier for a user whose desktop is in `lang`."""
    sender = LinuxSender(sessions=lambda: [Session(os.geteuid(), desktop.address, lang)])
    return Notifier(state, sender, view=lambda now: View("zh", "linux", company_zone(), now))


def test_a_new_failure_is_shown_once_then_a_day_before_its_grace_ends(
    desktop: Desktop, tmp_path: Path
) -> None:
    state = _state(tmp_path, _failing("firewall", DEADLINE))
    notifier = _notifier(state, desktop, "zh")

    assert [n.kind for n in notifier.run(NOW)] == ["failing"]
    (first,) = desktop.received(1)
    assert first["appname"] == "设备合规检查"
    assert first["summary"] == "防火墙已开启：不合规，宽限期至 12月5日 16:38"
    assert "在这台电脑上：打开防火墙：sudo ufw enable" in first["body"]
    assert "CMCC" not in json.dumps(first) and "~/" not in json.dumps(first)

    # The next collections: the same failure is not told again.
    assert notifier.run(NOW + dt.timedelta(hours=1)) == []
    assert notifier.run(NOW + dt.timedelta(days=1)) == []
    # A day before the deadline: once more, then not again.
    last_day = DEADLINE - dt.timedelta(hours=23)
    assert [n.kind for n in notifier.run(last_day)] == ["reminder"]
    assert notifier.run(last_day + dt.timedelta(hours=1)) == []
    shown = desktop.received(2)
    assert len(shown) == 2 and shown[1]["summary"] == first["summary"]


def test_what_was_told_survives_a_restart_and_a_fixed_check_is_told_again_when_it_fails(
    desktop: Desktop, tmp_path: Path
) -> None:
    state = _state(tmp_path, _failing("antivirus", None))
    assert len(_notifier(state, desktop, "en").run(NOW)) == 1
    # A new agent process (restarted service) reads what was told from the state folder.
    assert _notifier(state, desktop, "en").run(NOW + dt.timedelta(hours=1)) == []
    (told,) = desktop.received(1)
    assert told["summary"] == "Antivirus installed, on, with fresh signatures: failing"
    assert "Defender" not in told["body"] and "ClamAV" in told["body"]

    passing = _failing("antivirus", None)
    passing.state = "PASS"
    state.save_verdicts(pb.ReportAck(verdicts=[passing]))
    assert _notifier(state, desktop, "en").run(NOW + dt.timedelta(hours=2)) == []
    state.save_verdicts(pb.ReportAck(verdicts=[_failing("antivirus", None)]))
    assert len(_notifier(state, desktop, "en").run(NOW + dt.timedelta(hours=3))) == 1
    assert len(desktop.received(2)) == 2


def test_nothing_is_remembered_when_no_session_could_show_it(tmp_path: Path) -> None:
    """No notification server on the bus (nobody logged in at a desktop): the notice is not
    counted as told, so the next round tries again."""
    state = _state(tmp_path, _failing("firewall", DEADLINE))
    nowhere = LinuxSender(
        sessions=lambda: [Session(os.geteuid(), f"unix:path={tmp_path}/none", "zh")]
    )
    notifier = Notifier(state, nowhere)
    assert notifier.run(NOW) == []
    assert not state.notified_path.exists()
    assert Notifier(state, LinuxSender(sessions=list)).run(NOW) == []


def test_the_service_tells_the_deadline_in_the_zone_the_collector_handed_out(
    desktop: Desktop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's own view: the company's time zone from the agent's configuration (the
    policy's time_zone), not Beijing time always."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    state = _state(tmp_path, _failing("firewall", DEADLINE))
    state.save_config(pb.AgentConfig(version=1, time_zone="Europe/Berlin"))
    sender = LinuxSender(sessions=lambda: [Session(os.geteuid(), desktop.address, "zh")])
    assert len(Notifier(state, sender).run(NOW)) == 1
    (told,) = desktop.received(1)
    assert told["summary"] == "防火墙已开启：不合规，宽限期至 12月5日 09:38"  # 08:38 UTC


def test_a_user_whose_desktop_is_in_english_is_told_in_english_by_a_chinese_service(
    desktop: Desktop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's locale is Chinese; the user chose English in GNOME's settings
    (AccountsService's file as accounts-daemon wrote it, tests/fixtures/linux/locale): the
    notification on their desktop is in English, and one for a user who chose nothing, on a
    system without a locale, in Chinese."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    locale = Path(__file__).parent.parent / "fixtures" / "linux" / "locale"
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    (accounts / "li").write_bytes((locale / "accountsservice-user-en-debian12").read_bytes())
    (accounts / "wang").write_bytes((locale / "accountsservice-user-unset-debian12").read_bytes())
    system = tmp_path / "default-locale"
    system.write_bytes((locale / "default-locale-unset-debian12").read_bytes())

    for n, name in enumerate(("li", "wang"), start=1):
        lang = user_language(name, None, accounts=accounts, system=(system,)) or DEFAULT
        sender = LinuxSender(sessions=[Session(os.geteuid(), desktop.address, lang)].copy)
        (tmp_path / name).mkdir()
        state = _state(tmp_path / name, _failing("firewall", DEADLINE))
        assert len(Notifier(state, sender).run(NOW)) == 1
        desktop.received(n)
    english, chinese = desktop.received(2)
    assert english["appname"] == "Device compliance"
    assert english["summary"] == "Firewall on: failing, grace until 5 Dec 16:38"
    assert chinese["summary"] == "防火墙已开启：不合规，宽限期至 12月5日 16:38"
