"""What a device, a hotspot's owner or anyone reaching the dashboard's port may send, and the
dashboard answering each without a crash, as the page, the download or the refusal it owes.
Found by probing the dashboard from outside (2026-12-05)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, VIEWER, new_credential
from devposture.collector.store import Store
from devposture.collector.web import downloads
from devposture.collector.web.server import start_dashboard
from tests.conftest import enroll_agent, make_report, running_collector
from tests.e2e.fleet import closed_session
from tests.web.conftest import Fleet, fetch, login

# A hotspot named with a right-to-left override: what follows it read backwards.
SPOOFED_SSID = "星巴克免费WiFi\u202e"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("hostile")
    now = utcnow()
    with running_collector(root / "collector") as collector:
        silent = enroll_agent(collector, root / "silent", "never-reported")  # no report yet
        loud = enroll_agent(collector, root / "loud", "\u202eexe.gpj\u202c-PC")
        report = make_report(loud.enrollment.device_id)
        report.host.hostname = "\u202eexe.gpj\u202c-PC"
        report.wifi.has_wifi_interface = True
        report.wifi.sessions.append(closed_session(
            SPOOFED_SSID, now - dt.timedelta(hours=3), now - dt.timedelta(hours=2)))
        with open_channel(loud.state, loud.enrollment) as channel:
            send_report(channel, report)
        credential = new_credential()
        store: Store = collector.store()
        try:
            store.admin.add_credential(credential, "Li Wei (IT)", VIEWER, utcnow())
        finally:
            store.close()
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            yield Fleet(collector, dashboard, str(credential), silent.enrollment.device_id,
                        loud.enrollment.device_id, "", [])  # fmt: skip
        finally:
            dashboard.stop()


def test_the_page_of_a_device_that_has_not_reported_yet(hostile: Fleet) -> None:
    # It answered 500 (an empty history zipped strictly with one more item).
    page = fetch(hostile, "GET", f"/devices/{hostile.failing_device}", cookie=login(hostile))
    assert page.status == 200 and "never-reported" in page.text


def test_direction_controls_a_device_or_a_hotspot_chose_are_shown_not_obeyed(
    hostile: Fleet,
) -> None:
    cookie = login(hostile)
    for path in (f"/devices/{hostile.passing_device}", "/devices", "/failing"):
        page = fetch(hostile, "GET", path, cookie=cookie)
        assert page.status == 200, path
        assert "\u202e" not in page.text and "\u202c" not in page.text, path
    device = fetch(hostile, "GET", f"/devices/{hostile.passing_device}", cookie=cookie).text
    assert "星巴克免费WiFi[U+202E]" in device and "[U+202E]exe.gpj[U+202C]-PC" in device


def test_a_form_with_more_fields_than_any_of_the_dashboards_is_no_crash(hostile: Fleet) -> None:
    form = {f"f{n}": "1" for n in range(25)}  # parse_qs raised past 20 fields: a 500
    for path in ("/login", "/logout"):
        answer = fetch(hostile, "POST", path, form=form)
        assert answer.status < 500, (path, answer.status)


def test_an_audit_page_past_any_log_is_its_last_page(hostile: Fleet) -> None:
    cookie = login(hostile, hostile.credential(ADMIN, "Admin"))
    page = fetch(hostile, "GET", "/audit?page=9223372036854775807", cookie=cookie)
    assert page.status == 200  # the offset overflowed the database's integer: 500


def test_a_download_is_named_for_the_company_s_day(hostile: Fleet) -> None:
    answer = fetch(hostile, "GET", "/download/devices?format=csv", cookie=login(hostile))
    beijing = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    assert f"devposture-devices-{beijing:%Y-%m-%d}.csv" in answer.headers["content-disposition"]
    # At any moment UTC+14 and UTC-12 are on different days, so at least one of them is not
    # on UTC's: each file is named for its own zone's day (it was UTC's, all day).
    names = {
        downloads.response("devices", "csv", ("device",), [], zone).headers[
            "content-disposition"
        ]
        for zone in (dt.timezone(dt.timedelta(hours=14)), dt.timezone(dt.timedelta(hours=-12)))
    }
    assert len(names) == 2


def test_a_login_in_a_browser_already_signed_in_ends_that_session(hostile: Fleet) -> None:
    first = login(hostile)
    admin = hostile.credential(ADMIN, "Admin Two")
    again = fetch(hostile, "POST", "/login", form={"credential": admin}, cookie=first)
    assert again.status == 303
    left = fetch(hostile, "GET", "/", cookie=first)  # the viewer's session: ended, not idle
    assert left.status == 303 and left.location.startswith("/login")
