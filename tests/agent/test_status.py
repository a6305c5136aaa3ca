"""The employee's `status`: the computer's language, the grace deadline in the company's time
zone, the remedy for this OS, and an exit status that says how the computer stands."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from devposture.agent.employee.company_time import company_zone, moment_text
from devposture.agent.employee.language import language_of_environ, os_language
from devposture.agent.employee.remediation import STEPS, OsName
from devposture.agent.employee.words import WORDS, Words
from devposture.agent.status import (
    EXIT_COMPLIANT,
    EXIT_FAILING,
    EXIT_NOT_JUDGED,
    View,
    exit_code,
    render_status,
    state_text,
)
from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb
from tests.agent.verdicts import policy_verdict

FIXTURES = Path(__file__).parent.parent / "fixtures" / "windows" / "ui_language"
SHANGHAI = company_zone()
# 2026-12-02 08:38 UTC is 16:38 in Beijing; the deadline a day later.
NOW = dt.datetime(2026, 12, 2, 8, 38, tzinfo=dt.UTC)
DEADLINE = NOW + dt.timedelta(days=1)


def _verdict(check_id: str, state: str, grace_until: dt.datetime | None = None) -> pb.CheckVerdict:
    return policy_verdict(check_id, state, grace_until)


def _view(lang: str, os_name: OsName = "linux", now: dt.datetime = NOW) -> View:
    return View("zh" if lang == "zh" else "en", os_name, SHANGHAI, now)


@pytest.mark.parametrize(
    ("environ", "lang"),
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "en_GB.UTF-8", "LANGUAGE": "fr:zh_CN:en"}, "zh"),  # French first, not had
        ({"LC_ALL": "C.UTF-8", "LANGUAGE": "zh_CN"}, "en"),  # gettext ignores it under C
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({}, "zh"),  # a service without a locale: the company's language
    ],
)
def test_the_language_is_the_locales(environ: dict[str, str], lang: str) -> None:
    assert language_of_environ(environ) == lang
    assert os_language("linux", environ) == lang
    assert os_language("darwin", environ) == lang


@pytest.mark.parametrize(
    ("fixture", "lang"),
    [
        ("get-winsystemlocale-zh-cn-windows11-home-china.txt", "zh"),
        ("get-uiculture-en-us-configmgr-docs.txt", "en"),
    ],
)
def test_windows_reads_the_users_display_language_not_lang(fixture: str, lang: str) -> None:
    langid = int((FIXTURES / fixture).read_text().splitlines()[2].split()[0])
    # No LANG on Windows: the call's answer decides, replayed from a real machine's number.
    assert os_language("win32", {"LANG": "de_DE.UTF-8"}, windows_langid=lambda: langid) == lang


def test_a_deadline_reads_in_the_company_time_zone_in_each_language() -> None:
    assert moment_text(DEADLINE, "zh", SHANGHAI, NOW) == "12月3日 16:38"
    assert moment_text(DEADLINE, "en", SHANGHAI, NOW) == "3 Dec 16:38"
    # Past midnight in Beijing, still the day before in UTC: Beijing's date.
    late = dt.datetime(2026, 12, 31, 17, 5, tzinfo=dt.UTC)
    assert moment_text(late, "zh", SHANGHAI, NOW) == "2027年1月1日 01:05"
    assert moment_text(late, "en", SHANGHAI, NOW) == "1 Jan 2027 01:05"


def test_an_unknown_zone_falls_back_to_the_companys_not_utc() -> None:
    assert moment_text(DEADLINE, "en", company_zone("Nowhere/Nothing"), NOW) == "3 Dec 16:38"


@pytest.mark.parametrize(
    ("lang", "grace", "ended"),
    [
        ("zh", "不合规，宽限期至 12月3日 16:38", "不合规，宽限期已于 12月3日 16:38 结束"),
        ("en", "failing, grace until 3 Dec 16:38", "failing, grace ended 3 Dec 16:38"),
    ],
)
def test_a_failure_in_grace_says_until_when_and_a_passed_one_that_it_ended(
    lang: str, grace: str, ended: str
) -> None:
    verdict = _verdict("firewall", "FAIL", DEADLINE)
    assert state_text(verdict, _view(lang)) == grace
    after = DEADLINE + dt.timedelta(minutes=1)
    assert state_text(verdict, _view(lang, now=after)) == ended
    text = render_status([verdict], "heading", _view(lang))
    assert grace in text


def test_status_is_in_one_language() -> None:
    verdicts = [_verdict("firewall", "FAIL", DEADLINE), _verdict("antivirus", "PASS")]
    zh = render_status(verdicts, "标题", _view("zh"))
    en = render_status(verdicts, "heading", _view("en"))
    assert "防火墙已开启" in zh and "Firewall on" not in zh and "What to do" not in zh
    assert "Firewall on" in en and "防火墙" not in en and "怎么办" not in en
    # Chinese punctuation in Chinese: the labels take a full-width colon, never ASCII ": "
    assert "怎么办：" in zh and "在这台电脑上：" in zh and ": " not in zh
    assert "What to do: " in en and "On this computer: " in en


@pytest.mark.parametrize("os_name", ["linux", "windows", "macos"])
def test_each_os_is_told_its_own_remedy(os_name: OsName) -> None:
    verdicts = [_verdict(c.check_id, "FAIL") for c in default_policy().checks]
    for lang in ("zh", "en"):
        text = render_status(verdicts, "", _view(lang, os_name))
        others = {"linux": ("Windows", "macOS", "Mac "), "windows": ("macOS", "sudo", "FileVault"),
                  "macos": ("Windows", "sudo", "BitLocker")}[os_name]  # fmt: skip
        for word in others:
            assert word not in text, (os_name, lang, word)
        if os_name != "windows":
            assert "Defender" not in text


def test_every_check_has_steps_for_every_os_in_both_languages() -> None:
    for check in default_policy().checks:
        for os_name in ("linux", "windows", "macos"):
            steps = STEPS.get((check.check_id, os_name))
            if check.check_id == "public-wifi" and os_name != "macos":
                assert steps is None  # nothing OS-specific to add to the policy's remedy
                continue
            assert steps is not None and steps.zh and steps.en, (check.check_id, os_name)


def test_every_word_exists_in_both_languages() -> None:
    fields = Words.__dataclass_fields__
    for words in WORDS.values():
        for name in fields:
            value = getattr(words, name)
            assert value, name
        assert set(words.states) == {"PASS", "FAIL", "UNKNOWN", "EXEMPT", "STALE", "GRACE"}
    assert WORDS["zh"].states["FAIL"] != WORDS["en"].states["FAIL"]


@pytest.mark.parametrize(
    ("states", "judged", "code"),
    [
        (["PASS", "EXEMPT"], True, EXIT_COMPLIANT),
        (["PASS", "FAIL"], True, EXIT_FAILING),
        (["UNKNOWN", "FAIL"], True, EXIT_FAILING),
        (["PASS", "UNKNOWN"], True, EXIT_NOT_JUDGED),
        (["PASS", "STALE"], True, EXIT_NOT_JUDGED),
        (["PASS"], False, EXIT_NOT_JUDGED),  # a local check: not the collector's judgment
        (["FAIL"], False, EXIT_FAILING),
    ],
)
def test_the_exit_status_says_how_the_computer_stands(
    states: list[str], judged: bool, code: int
) -> None:
    verdicts = [_verdict("firewall", s) for s in states]
    assert exit_code(verdicts, judged) == code
    assert len({EXIT_COMPLIANT, EXIT_FAILING, EXIT_NOT_JUDGED, 1, 2}) == 5
