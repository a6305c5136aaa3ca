"""What an employee in China reads, reviewed as they read it: a Chinese Windows, Mac and
UOS/Ubuntu desktop, every clause in every state (`status`, its notifications). Each test
here was a defect found by that reading; the notifiers' commands are captured where they
would start a process on another OS (Windows, macOS), as in test_notify_decisions."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from devposture.agent.employee.company_time import company_zone
from devposture.agent.employee.language import Lang
from devposture.agent.employee.remediation import STEPS
from devposture.agent.notify.decide import Notice
from devposture.agent.notify.message import worded
from devposture.agent.notify.windows import WindowsSender
from devposture.agent.state import AGENT_FILE, AgentState, ensure_private_dir
from devposture.agent.status import EXIT_FAILING, View, collector_heading, render_delivery
from devposture.policy.reasons import encode, item
from devposture.v1 import devposture_pb2 as pb
from tests.agent.test_notify_language import toast_variants
from tests.agent.verdicts import policy_verdict

SHANGHAI = company_zone()
NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)  # 16:38 in Beijing
DEADLINE = NOW + dt.timedelta(days=1)


def _view(lang: str, os_name: str = "linux") -> View:
    return View("zh" if lang == "zh" else "en", os_name, SHANGHAI, NOW)  # type: ignore[arg-type]


def _decoded(argv: list[str]) -> str:
    return base64.b64decode(argv[argv.index("-EncodedCommand") + 1]).decode("utf-16-le")


def _toast_texts(argv: list[str], lang: str) -> list[str]:
    """The <text> elements of the toast the Windows command would show a user whose display
    language is `lang` (the script holds both: $chinese, $english)."""
    toast = toast_variants(argv)["chinese" if lang == "zh" else "english"]
    return [html.unescape(part.split("</text>", 1)[0]) for part in toast.split("<text>")[1:]]


LANG_APPS: tuple[tuple[Lang, str], ...] = (("zh", "设备合规检查"), ("en", "Device compliance"))


def test_a_chinese_windows_toast_names_the_app_as_its_title_not_before_an_english_colon() -> None:
    """The toast's first line read "设备合规检查: 防火墙已开启：不合规，…": an English colon
    and space inside a Chinese line, beside the Chinese colon of the same line. Like the
    Linux and macOS notices, the app's name is the title and the check's state the line
    under it."""
    ran: list[list[str]] = []

    def run(argv: list[str], env: Mapping[str, str] | None) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    notice = Notice("failing", policy_verdict("firewall", "FAIL", DEADLINE))
    messages = worded(notice, _view("zh", "windows"))
    assert WindowsSender(run).send(messages) == 1
    for lang, app in LANG_APPS:
        texts = _toast_texts(ran[-1], lang)
        assert texts[0] == app
        assert texts[1] == messages[lang].summary
        assert texts[2:] == [messages[lang].body]
    assert _toast_texts(ran[0], "zh")[1] == "防火墙已开启：不合规，宽限期至 12月3日 16:38"


def _ack(stored_at: dt.datetime) -> pb.ReportAck:
    ack = pb.ReportAck(report_id="r")
    ack.stored_at.FromDatetime(stored_at)
    return ack


def test_the_heading_s_time_zone_is_in_the_reader_s_brackets() -> None:
    """The heading read "本机合规状态（公司服务器于 12月2日 16:33 判定） (UTC+08:00)": a space
    and English brackets after a Chinese full-width one. The zone is in the brackets of the
    reader's language, the reasons' own (msgctxt "wrap")."""
    ack = _ack(NOW - dt.timedelta(minutes=5))
    zh = collector_heading(ack, _view("zh"))
    assert zh == "本机合规状态（公司服务器于 12月2日 16:33 判定）（UTC+08:00）"
    en = collector_heading(ack, _view("en"))
    assert en == (
        "Compliance of this computer, as the company's collector judged it at 2 Dec 16:33"
        " (UTC+08:00)"
    )


def test_reports_waiting_with_no_believable_time_say_no_question_mark() -> None:
    """Reports whose times were all before the outbox's plausible floor (a clock reset at
    boot) have no oldest time: the line said "（最早 ?）", a raw placeholder. It says how many
    wait, without a time."""
    stats = pb.DeliveryStats(pending_reports=2)
    for lang in ("zh", "en"):
        text = render_delivery(stats, _view(lang))
        assert "?" not in text and "2" in text, text
    assert "2 reports waiting to be sent;" in render_delivery(stats, _view("en"))
    dated = pb.DeliveryStats(pending_reports=1)
    dated.oldest_pending_at.FromDatetime(NOW)
    assert "（最早 12月2日 16:38）" in render_delivery(dated, _view("zh"))


def test_a_mac_on_macos_11_or_12_is_told_where_its_settings_are_too() -> None:
    """The package installs on macOS 11 and later (docs/rollout-macos.md), but the steps named
    only macOS 13's System Settings: a Mac on Big Sur or Monterey has System Preferences,
    with the firewall and FileVault under Security & Privacy, and found none of the paths."""
    firewall = STEPS[("firewall", "macos")].en
    assert "System Settings > Network > Firewall" in firewall
    assert "System Preferences > Security & Privacy > Firewall" in firewall
    updates = STEPS[("os-updates", "macos")].en
    assert "System Settings > General > Software Update" in updates
    assert "System Preferences > Software Update" in updates
    backup = STEPS[("chat-backup", "macos")].en
    assert "System Preferences > Security & Privacy > FileVault" in backup


def test_a_windows_10_pc_is_told_where_its_settings_are_too() -> None:
    """Windows Update and Device encryption are under Update & Security on Windows 10; the
    steps named Windows 11's Settings pages only."""
    assert "Settings > Update & Security > Windows Update" in STEPS[("os-updates", "windows")].en
    backup = STEPS[("chat-backup", "windows")].en
    assert "Settings > Update & Security > Device encryption" in backup


def test_a_uos_or_deepin_desktop_is_told_its_own_updater_and_app_store() -> None:
    """On a Chinese UOS or Deepin desktop the updates are in Control Center (sudo is off
    until developer mode is turned on) and WeChat comes from the app store: the steps named
    only apt, dnf and linux.weixin.qq.com."""
    updates = STEPS[("os-updates", "linux")].en
    assert "UOS, Deepin: Control Center > Updates" in updates
    assert "Ubuntu: Software Updater" in updates
    assert "sudo apt update && sudo apt upgrade" in updates
    assert "app store (UOS, Deepin)" in STEPS[("chat-app-updates", "linux")].en


def _kept_verdicts(directory: Path) -> AgentState:
    """A state folder as the service leaves it after an acknowledgement (verdicts with a
    Chinese profile name and network name in their reasons), and marked enrolled."""
    state = AgentState(directory)
    ensure_private_dir(directory)
    ack = _ack(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    firewall = policy_verdict("firewall", "FAIL", dt.datetime.now(dt.UTC) + dt.timedelta(hours=3))
    firewall.reason_code = encode("fw.off_profiles", profiles=["公用", "专用"])
    wifi = policy_verdict("public-wifi", "FAIL")
    wifi.reason_code = encode("wifi.public", sessions=[item(
        "wifi.no_vpn", network="星巴克免费WiFi", why=["open network"], at=int(NOW.timestamp())
    )])  # fmt: skip
    ack.verdicts.extend([firewall, wifi])
    state.save_verdicts(ack)
    (directory / AGENT_FILE).write_text(json.dumps({
        "device_id": "d", "collector_host": "127.0.0.1", "enroll_port": 1, "report_port": 2,
        "ca_fingerprint": "00",
    }))  # fmt: skip
    return state


def test_status_on_a_terminal_that_cannot_show_chinese_is_shown_not_a_unicode_error(
    tmp_path: Path,
) -> None:
    """Under the C locale without Python's UTF-8 coercion (as a frozen program, or a shell
    with PYTHONUTF8=0, may run), standard output is ASCII: a reason naming the firewall
    profile "公用" or the hotspot "星巴克免费WiFi" made `status` print only "unexpected
    UnicodeEncodeError" and exit 1. It is shown, in English (the C locale's language), the
    characters the terminal cannot show written as escapes, with its exit status."""
    state = _kept_verdicts(tmp_path / "state")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHON"))}
    env |= {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-m", "devposture.agent", "status", "--state", str(state.directory)],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    out = done.stdout.decode("ascii")
    assert done.returncode == EXIT_FAILING, done.stderr
    assert "firewall off on active profiles: \\u516c\\u7528, \\u4e13\\u7528" in out
    assert "What to do: Turn the firewall on" in out
