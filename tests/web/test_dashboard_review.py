"""An adversarial review of the dashboard (2026-12-05): what an attacker on the network, a
Chinese IT administrator and an auditor found, each against the real server (a collector
with real agents over mutual TLS, the dashboard on a loopback port)."""

from __future__ import annotations

import datetime as dt
import http.client
import re
from collections.abc import Iterator

import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, VIEWER
from devposture.collector.store import Store
from devposture.collector.web import auth, downloads
from devposture.collector.web.server import start_dashboard
from tests.conftest import enroll_agent, make_report, running_collector
from tests.e2e.fleet import closed_session
from tests.web.conftest import Fleet, fetch, login, session_cookie

ZH = {"Accept-Language": "zh-CN,zh;q=0.9"}
BEIJING = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def review(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One device, 张伟的笔记本💻, in the group "财务部 上海 分部", that used a public Wi-Fi
    network without a VPN."""
    root = tmp_path_factory.mktemp("review")
    now = utcnow()
    with running_collector(root / "collector") as collector:
        laptop = enroll_agent(collector, root / "laptop", "张伟的笔记本💻")
        report = make_report(laptop.enrollment.device_id)
        report.host.hostname = "张伟的笔记本💻"
        report.wifi.has_wifi_interface = True
        report.wifi.sessions.append(
            closed_session(
                "星巴克-免费WiFi 🍵", now - dt.timedelta(hours=3), now - dt.timedelta(hours=2)
            )
        )
        with open_channel(laptop.state, laptop.enrollment) as channel:
            send_report(channel, report)
        store: Store = collector.store()
        try:
            store.identity.set_device_group(laptop.enrollment.device_id, "财务部 上海 分部", now)
        finally:
            store.close()
        viewer = collector.credential("李伟 (IT)", VIEWER)
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            device = laptop.enrollment.device_id
            yield Fleet(collector, dashboard, viewer, device, device, "", [device])
        finally:
            dashboard.stop()


def login_zh(fleet: Fleet) -> str:
    """Log in from a browser whose first language is Chinese; the session cookie."""
    answer = fetch(fleet, "POST", "/login", form={"credential": fleet.viewer}, headers=ZH)
    assert answer.status == 303, answer.text
    return session_cookie(answer)


def fetch_bytes(fleet: Fleet, path: str, cookie: str) -> tuple[int, bytes]:
    """GET a download: its status and its bytes (an XLSX is no text)."""
    connection = http.client.HTTPConnection("127.0.0.1", fleet.dashboard.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Cookie": cookie})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- pages that do not exist ---------------------------------------------------------------


@pytest.mark.parametrize("signed_in", [False, True])
def test_a_path_with_no_page_is_answered_with_the_dashboard_s_page_in_chinese(
    review: Fleet, signed_in: bool
) -> None:
    """A mistyped or stale link (/device/ID for /devices/ID, a removed page) was answered
    "Not Found" in plain English text, with no menu back: the reader of Chinese got a page
    with neither."""
    cookie = login_zh(review) if signed_in else None
    for path in ("/device/" + review.failing_device, "/nope", "/static/missing.css"):
        answer = fetch(review, "GET", path, cookie=cookie, headers=ZH)
        assert answer.status == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert 'lang="zh-CN"' in answer.text and "未找到" in answer.text, path
        assert answer.headers["cache-control"] == "no-store"
        assert ('id="nav-devices"' in answer.text) is signed_in, path


def test_logout_opened_as_a_link_is_answered_with_a_page_not_plain_text(review: Fleet) -> None:
    """GET /logout (typed, or a bookmark) was "Method Not Allowed" in English text."""
    cookie = login_zh(review)
    answer = fetch(review, "GET", "/logout", cookie=cookie, headers=ZH)
    assert answer.status == 405 and "POST" in answer.headers["allow"]
    assert "请求被拒绝" in answer.text and 'id="logout"' in answer.text
    assert fetch(review, "GET", "/", cookie=cookie).status == 200  # still signed in


# --- the trend's weeks ---------------------------------------------------------------------


def _sundays(at: dt.datetime) -> list[dt.date]:
    """The last days of the trend's past weeks at `at`, in Beijing: the Sundays before."""
    today = at.astimezone(BEIJING).date()
    last_sunday = today - dt.timedelta(days=today.weekday() + 1)
    return [last_sunday - dt.timedelta(weeks=k) for k in range(6, -1, -1)]


def test_each_week_of_the_trend_is_labelled_with_its_last_day(review: Fleet) -> None:
    """A week's point is the fleet at its end, Monday 00:00 in Beijing; it was labelled with
    that Monday ("Week ending 11-30", "截至 11-30" for the week of 11-23 to 11-29), on the
    chart, in its values' table and as the download's column."""
    cookie = login_zh(review)
    before = _sundays(utcnow())
    page = fetch(review, "GET", "/", cookie=cookie).text
    download = fetch(review, "GET", "/download/trend?format=csv", cookie=cookie).text
    after = _sundays(utcnow())
    table = page[page.index('id="trend-values"') :]
    heads = re.findall(r'<th class="n">([^<]*)</th>', table[: table.index("</thead>")])
    columns = download.lstrip("\ufeff").splitlines()[0].split(",")[4:]
    chart = re.findall(r"<title>截至 (\d\d-\d\d)", page)
    for sundays in {tuple(before), tuple(after)}:  # a Monday's midnight may fall in between
        if heads[:-1] == [f"{d:%m-%d}" for d in sundays]:
            assert heads[-1] == "当前" and chart[:-1] == heads[:-1]
            assert columns[:-1] == [d.isoformat() for d in sundays]
            assert all(d.weekday() == 6 for d in sundays)
            return
    raise AssertionError((heads, columns, before))


# --- a fleet of none -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A collector no device has enrolled with yet (the first day of a rollout)."""
    with running_collector(tmp_path_factory.mktemp("empty") / "collector") as collector:
        viewer = collector.credential("李伟 (IT)", ADMIN)
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            yield Fleet(collector, dashboard, viewer, "", "", "", [])
        finally:
            dashboard.stop()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_and_download_of_an_empty_fleet(empty: Fleet, lang: str) -> None:
    cookie = login(empty)
    for path in ("/", "/devices", "/devices?state=COMPLIANT", "/failing", "/waivers", "/tokens",
                 "/audit", "/devices?sort=check:firewall&order=desc"):  # fmt: skip
        answer = fetch(empty, "GET", f"{path}{'&' if '?' in path else '?'}lang={lang}",
                       cookie=cookie)  # fmt: skip
        assert answer.status == 200, (path, answer.text[-500:])
    overview = fetch(empty, "GET", f"/?lang={lang}", cookie=cookie).text
    assert 'id="device-count">0<' in overview
    # Chinese takes its full-width marks after its words: "设备数：0", "（查看者）".
    colon, opening = ("：", "（") if lang == "zh" else (": ", " (")
    assert f'{colon}<span id="device-count">' in overview
    assert f"李伟 (IT){opening}{'管理员' if lang == 'zh' else 'admin'}" in overview
    for table in downloads.TABLES:
        for fmt in ("csv", "xlsx", "json"):
            status, body = fetch_bytes(empty, f"/download/{table}?format={fmt}&device=x", cookie)
            assert status == 200 and body, (table, fmt)


# --- sessions ------------------------------------------------------------------------------


def test_one_credential_s_logins_do_not_end_everyone_else_s_sessions(
    review: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond MAX_SESSIONS the least recently seen session ends, whoever's it is: one viewer
    credential logging in over and over (no throttle slows a valid login) signed every
    administrator out, again and again. A credential now keeps its latest
    SESSIONS_PER_CREDENTIAL sessions, so one holder cannot fill the table."""
    monkeypatch.setattr(auth, "MAX_SESSIONS", 6)
    monkeypatch.setattr(auth, "SESSIONS_PER_CREDENTIAL", 3, raising=False)
    admin = login(review, review.credential(ADMIN, "Admin"))
    mine = [login(review) for _ in range(8)]
    assert fetch(review, "GET", "/", cookie=admin).status == 200  # was 303: signed out
    assert fetch(review, "GET", "/", cookie=mine[-1]).status == 200
    assert fetch(review, "GET", "/", cookie=mine[0]).status == 303  # its own oldest ended


def test_a_credential_keeps_its_latest_sessions_in_memory_too() -> None:
    now = [1000.0]
    sessions = auth.Sessions(clock=lambda: now[0])
    other = sessions.create("other", "Admin", ADMIN)
    made = []
    for _ in range(auth.SESSIONS_PER_CREDENTIAL + 5):
        now[0] += 1
        made.append(sessions.create("mine", "Viewer", VIEWER))
    assert len(sessions) == auth.SESSIONS_PER_CREDENTIAL + 1
    assert sessions.get(other.session_id) is not None
    assert sessions.get(made[4].session_id) is None and sessions.get(made[5].session_id)
