"""The dashboard's language, through the real server: the reader's switch, else the language
remembered, else the browser's Accept-Language read as RFC 9110 says (q-values, `*`, `q=0`
refuses), else the site's own language (`[web] language` in collector.toml, Chinese unless
IT wrote otherwise): the company reads Chinese first.

A browser sending no Accept-Language (a script, a locked-down kiosk), one listing French
before Chinese, one sending `*`, and the login page itself were all answered in English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devposture.collector.config import CONFIG_NAME, load
from devposture.collector.credentials import VIEWER
from devposture.collector.web.server import start_dashboard
from tests.conftest import running_collector
from tests.web.conftest import Fleet, fetch, session_cookie

CHINESE_TITLE = "登录设备合规看板"
ENGLISH_TITLE = "Log in to the compliance dashboard"


@dataclass
class Site:
    """One collector's dashboard served twice: as `init` wrote collector.toml, and with
    `[web] language = "en"` written into it."""

    chinese_first: Fleet
    english_first: Fleet
    viewer: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_collector(tmp_path_factory.mktemp("language") / "collector") as collector:
        viewer = collector.credential("李伟 (IT)", VIEWER)
        path = collector.config.data_dir / CONFIG_NAME
        text = path.read_text(encoding="utf-8")
        assert 'language = "zh"' in text  # what init writes: said, not implied
        path.write_text(text.replace('language = "zh"', 'language = "en"'), encoding="utf-8")
        english_config = load(collector.config.data_dir)
        assert english_config.web_language == "en"
        chinese = start_dashboard(collector.config, "127.0.0.1", 0)
        english = start_dashboard(english_config, "127.0.0.1", 0)
        try:
            yield Site(Fleet(collector, chinese, viewer, "", "", ""),
                       Fleet(collector, english, viewer, "", "", ""), viewer)  # fmt: skip
        finally:
            english.stop()
            chinese.stop()


def _language(fleet: Fleet, accept: str | None, path: str = "/login") -> str:
    """The language a page was answered in: its `<html lang>`, checked against its words."""
    headers = {} if accept is None else {"Accept-Language": accept}
    answer = fetch(fleet, "GET", path, headers=headers)
    assert answer.status == 200, answer.text
    found = re.search(r'<html lang="([^"]+)">', answer.text)
    assert found is not None
    lang = {"zh-CN": "zh", "en": "en"}[found.group(1)]
    assert (CHINESE_TITLE if lang == "zh" else ENGLISH_TITLE) in answer.text
    return lang


@pytest.mark.parametrize("accept", [None, "", "*", "fr-FR", "fr;q=0.9, de;q=0.8", "en;q=0"])
def test_a_browser_that_does_not_decide_gets_the_site_s_language_chinese_by_default(
    site: Site, accept: str | None
) -> None:
    """No Accept-Language, an empty one, `*` (any), only languages the dashboard does not
    have, or English refused: the login page was in English; it is in the site's language,
    Chinese unless collector.toml says otherwise."""
    assert _language(site.chinese_first, accept) == "zh"
    expected = "zh" if accept == "en;q=0" else "en"  # English refused: not English
    assert _language(site.english_first, accept) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # Chrome and Edge in English, with Chinese as a second language: English first.
        ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
        # A French browser that also reads Chinese: Chinese, not the fallback English.
        ("fr-FR,fr;q=0.9,zh-CN;q=0.8,en;q=0.7", "zh"),
        # The q-values decide, not the order.
        ("zh-CN;q=0.5, en;q=0.9", "en"),
        ("en;q=0.4, zh-TW;q=0.6", "zh"),
        # Any Chinese is read as the Chinese we have (Simplified): Taiwan, Hong Kong, Hans.
        ("zh-Hans", "zh"),
        ("zh-TW,zh;q=0.9,en-US;q=0.8", "zh"),
        ("zh-HK", "zh"),
        ("ZH-cn", "zh"),
        ("en-GB", "en"),
        # `*` stands for every language not named: behind a named one of higher q.
        ("*;q=0.5, en", "en"),
        ("*, en;q=0.5", "zh"),
        # q=0 refuses: Chinese refused is English even where the site reads Chinese first.
        ("zh;q=0, *", "en"),
        ("zh-CN;q=0", "en"),
        # A range with a q that is not one (RFC 9110: 0 to 1, three decimals) is ignored.
        ("en;q=2, zh;q=0.1", "zh"),
        ("en;q=abc, zh;q=0.1", "zh"),
        # Equal q: the first named.
        ("en, zh", "en"),
        ("zh, en", "zh"),
    ],
)
def test_accept_language_is_read_by_its_q_values(site: Site, accept: str, expected: str) -> None:
    """Only the first entry was read, and only for starting with "zh": a list naming Chinese
    second under French got English, and one naming Chinese first at q=0.5 got Chinese."""
    assert _language(site.chinese_first, accept) == expected
    assert _language(site.english_first, accept) == expected


def test_the_switch_and_the_remembered_choice_still_come_first(site: Site) -> None:
    chinese = {"Accept-Language": "zh-CN,zh;q=0.9"}
    answer = fetch(site.chinese_first, "GET", "/login?lang=en", headers=chinese)
    assert ENGLISH_TITLE in answer.text
    remembered = next(c for c in answer.cookies() if c.startswith("devposture_lang="))
    again = fetch(site.chinese_first, "GET", "/login", headers=chinese,
                  cookie=remembered.split(";")[0])  # fmt: skip
    assert ENGLISH_TITLE in again.text


def test_a_login_from_a_browser_that_names_no_language_is_signed_in_in_chinese(
    site: Site,
) -> None:
    """The session keeps the language the login page was in: Chinese, on every page after."""
    answer = fetch(site.chinese_first, "POST", "/login", form={"credential": site.viewer})
    assert answer.status == 303, answer.text
    cookie = session_cookie(answer)
    overview = fetch(site.chinese_first, "GET", "/", cookie=cookie)
    assert overview.status == 200 and 'lang="zh-CN"' in overview.text and "总览" in overview.text
