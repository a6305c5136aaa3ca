"""What an employee in China reads, reviewed as they read it: a Chinese Windows, Mac and
UOS/Ubuntu desktop, every clause in every state (`status`, its notifications). Each test
here was a defect found by that reading; the notifiers' commands are captured where they
would start a process on another OS (Windows, macOS), as in test_notify_decisions."""

from __future__ import annotations

import base64
import datetime as dt
import html
import subprocess
from collections.abc import Mapping

from devposture.agent.employee.company_time import company_zone
from devposture.agent.notify.decide import Notice
from devposture.agent.notify.message import message_of
from devposture.agent.notify.windows import WindowsSender
from devposture.agent.status import View
from tests.agent.verdicts import policy_verdict

SHANGHAI = company_zone()
NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)  # 16:38 in Beijing
DEADLINE = NOW + dt.timedelta(days=1)


def _view(lang: str, os_name: str = "linux") -> View:
    return View("zh" if lang == "zh" else "en", os_name, SHANGHAI, NOW)  # type: ignore[arg-type]


def _decoded(argv: list[str]) -> str:
    return base64.b64decode(argv[argv.index("-EncodedCommand") + 1]).decode("utf-16-le")


def _toast_texts(argv: list[str]) -> list[str]:
    """The <text> elements of the toast the Windows command would show."""
    outer = _decoded(argv)
    inner = outer.split("-Argument '", 1)[1].split("'\n", 1)[0]
    toast = _decoded(inner.split())
    return [html.unescape(part.split("</text>", 1)[0]) for part in toast.split("<text>")[1:]]


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
    for lang, app in (("zh", "设备合规检查"), ("en", "Device compliance")):
        message = message_of(notice, _view(lang, "windows"))
        assert WindowsSender(run).send(message) == 1
        texts = _toast_texts(ran[-1])
        assert texts[0] == app
        assert texts[1] == message.summary
        assert texts[2:] == [message.body]
    assert _toast_texts(ran[0])[1] == "防火墙已开启：不合规，宽限期至 12月3日 16:38"
