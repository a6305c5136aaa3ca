"""Sessions, the chart and the language choice, without a server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from devposture.collector.web import auth, i18n
from devposture.collector.web.charts import Series, trend_svg

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_and_after_their_absolute_lifetime() -> None:
    clock = Clock()
    sessions = auth.Sessions(idle_seconds=60, absolute_seconds=300, clock=clock)
    session = sessions.create("0123456789abcdef", "Li Wei", "viewer")
    assert session.session_id != session.csrf and len(session.session_id) >= 40
    clock.now += 59
    assert sessions.get(session.session_id) is session  # touched: idle time starts again
    clock.now += 59
    assert sessions.get(session.session_id) is session
    clock.now += 61
    assert sessions.get(session.session_id) is None  # idle too long
    kept = sessions.create("0123456789abcdef", "Li Wei", "viewer")
    for _ in range(5):
        clock.now += 50
        assert sessions.get(kept.session_id) is kept
    clock.now += 51
    assert sessions.get(kept.session_id) is None  # active, but past its absolute lifetime


def test_ending_a_credential_ends_only_its_sessions() -> None:
    sessions = auth.Sessions()
    mine = sessions.create("aaaaaaaaaaaaaaaa", "A", "viewer")
    other = sessions.create("bbbbbbbbbbbbbbbb", "B", "admin")
    sessions.end_credential("aaaaaaaaaaaaaaaa")
    assert sessions.get(mine.session_id) is None
    assert sessions.get(other.session_id) is other
    assert sessions.get(None) is None and sessions.get("") is None


def test_every_admin_role_may_view_and_nothing_else() -> None:
    assert auth.may_view("viewer") and auth.may_view("admin")
    assert not auth.may_view("") and not auth.may_view("guest")


def test_only_local_paths_are_followed_after_login() -> None:
    assert auth.safe_next("/devices?q=x") == "/devices?q=x"
    for bad in (None, "", "//evil", "https://evil", "/\\evil", "devices"):
        assert auth.safe_next(bad) == "/"


def test_the_chart_is_valid_svg_with_its_texts_escaped() -> None:
    svg = trend_svg(["W1", "<W2>"], [Series("a&b", [50.0, 75.0]), Series("<c>", [None, 10.0])])
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    groups = [g for g in root.iter() if g.get("data-series") is not None]
    assert [g.get("data-series") for g in groups] == ["a&b", "<c>"]
    line = groups[0].find("{http://www.w3.org/2000/svg}polyline")
    assert line is not None and len(line.get("points", "").split()) == 2
    # One point only: a dot, no line.
    assert groups[1].find("{http://www.w3.org/2000/svg}polyline") is None
    assert "<W2>" not in svg and "&lt;W2&gt;" in svg


def test_the_language_is_the_switch_then_the_cookie_then_the_browser_then_the_site() -> None:
    assert i18n.pick_lang("zh", "en", "en-US") == "zh"
    assert i18n.pick_lang(None, "zh", "en-US") == "zh"
    assert i18n.pick_lang("fr", None, "zh-CN,zh;q=0.9") == "zh"
    assert i18n.pick_lang(None, None, None) == "zh"  # the company reads Chinese first
    assert i18n.pick_lang(None, None, None, "en") == "en"  # [web] language = "en"
    zh, en = i18n.words("zh"), i18n.words("en")
    assert list(zh) == list(en)
    assert zh["overview"] == "总览" and en["overview"] == "Overview"
