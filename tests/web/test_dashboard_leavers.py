"""The page of a device that left the fleet (IT retired or revoked it), in the real headless
Chromium of the dashboard's browser tests: it said STALE on every check, beside its status
"retired", as if a member of the fleet had gone quiet, and asked for each check's remedy. It
now says the device left, when and why, and shows its last verdicts as history.

A data folder of its own (on the test's engine): `old-laptop` failed its firewall, reported
last four days ago and was retired three days ago; `quiet-desk`, still in use, reported last
four days ago too, and is STALE as any silent member of the fleet is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from devposture.collector.clock import utcnow
from devposture.collector.company_time import shown, zone_of
from devposture.collector.credentials import VIEWER, new_credential
from devposture.collector.datadir import initialize
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.tokens import new_token
from devposture.collector.web.server import DashboardServer, start_dashboard
from devposture.policy import default_policy
from tests.databases import collector_database
from tests.web.test_dashboard_browser import ARTIFACTS, _log_in, browser, page  # noqa: F401

OLD, QUIET = "0e" * 16, "0f" * 16
REPLACED = "replaced by a new laptop"


@dataclass(frozen=True)
class Leavers:
    dashboard: DashboardServer
    viewer: str
    left_at: dt.datetime
    last_fail_since: dt.datetime

    @property
    def base(self) -> str:
        return self.dashboard.url


def _enroll(store: Store, device_id: str, hostname: str, at: dt.datetime) -> None:
    token = new_token()
    store.identity.add_token(token, at, at + dt.timedelta(hours=1), uses=1)
    expires = at + dt.timedelta(days=90)
    store.identity.enroll(token, at, DeviceRecord(device_id, device_id[:4], expires,
                                                  hostname=hostname))  # fmt: skip


def _report(store: Store, device_id: str, hostname: str, at: dt.datetime, firewall: str) -> None:
    record = ReportRecord(f"{device_id}-{at.timestamp()}", device_id, at, at, "1", b"",
                          hostname, "linux", "Debian", "12")  # fmt: skip
    results = [CheckResult(c.check_id, firewall if c.check_id == "firewall" else "PASS",
                           "firewall off" if c.check_id == "firewall" and firewall == "FAIL"
                           else "ok")
               for c in default_policy().checks]  # fmt: skip
    store.reports.store_report(record, results)


@pytest.fixture(scope="module")
def leavers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Leavers]:
    root: Path = tmp_path_factory.mktemp("leavers")
    config, _ = initialize(root / "collector", "127.0.0.1", database=collector_database())
    now = utcnow()
    left_at = now - dt.timedelta(days=3)
    fail_since = now - dt.timedelta(days=6)
    store = Store.open(config.database)
    try:
        for device_id, hostname in ((OLD, "old-laptop"), (QUIET, "quiet-desk")):
            _enroll(store, device_id, hostname, now - dt.timedelta(days=10))
            _report(store, device_id, hostname, now - dt.timedelta(days=9), "PASS")
        _report(store, OLD, "old-laptop", fail_since, "FAIL")
        _report(store, OLD, "old-laptop", now - dt.timedelta(days=4), "FAIL")
        _report(store, QUIET, "quiet-desk", now - dt.timedelta(days=4), "PASS")
        assert store.identity.set_device_status(OLD, "retired", left_at, REPLACED)
        viewer = new_credential()
        store.admin.add_credential(viewer, "Zhou (helpdesk)", VIEWER, now)
    finally:
        store.close()
    dashboard = start_dashboard(config, "127.0.0.1", 0)
    try:
        yield Leavers(dashboard, str(viewer), left_at, fail_since)
    finally:
        dashboard.stop()


def test_the_page_of_a_retired_device_says_it_left_and_keeps_its_last_verdicts(
    page: Page,  # noqa: F811
    leavers: Leavers,
) -> None:
    _log_in(page, leavers, leavers.viewer)  # type: ignore[arg-type]
    page.goto(f"{leavers.base}/devices/{OLD}?lang=en")
    when = shown(leavers.left_at, zone_of(default_policy()))
    notice = page.locator("#left")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(f"retired on {when}")
    expect(notice).to_contain_text("has left the fleet")
    expect(page.locator("#left-reason")).to_have_text(REPLACED)
    # Its last verdicts, as history: no check STALE, nothing asked of it.
    expect(page.locator(".badge.state-STALE")).to_have_count(0)
    expect(page.locator("#checks thead")).to_contain_text("Last verdict")
    firewall = page.locator("#checks tr", has=page.locator('a[data-check="firewall"]'))
    expect(firewall.locator(".badge")).to_have_text("FAIL")
    expect(firewall).to_contain_text(shown(leavers.last_fail_since, zone_of(default_policy())))
    expect(page.locator("dd.remediation")).to_have_count(0)
    # The firewall's timeline ends when the device left, not now.
    newest = page.locator("#check-firewall table.timeline tbody tr").first
    expect(newest.locator("td").nth(2)).to_have_text(when)
    expect(newest.locator("td").nth(3)).to_have_text(
        str(round((leavers.left_at - leavers.last_fail_since).total_seconds() / 3600, 1)))
    # In Chinese the time's full-width bracket closes up to the words after it, as in every
    # Chinese sentence (catalogs.closed_up): "于 …（UTC+08:00）被设为", not "（UTC+08:00） 被设为".
    page.goto(f"{leavers.base}/devices/{OLD}?lang=zh")
    chinese = page.locator("#left").inner_text()
    assert when.worded("zh") in chinese and f"{when.worded('zh')} " not in chinese, chinese
    ARTIFACTS.mkdir(exist_ok=True)
    for lang in ("en", "zh"):
        page.goto(f"{leavers.base}/devices/{OLD}?lang={lang}")
        expect(page.locator("#left")).to_be_visible()
        shot = ARTIFACTS / f"dashboard-device-left-{lang}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


def test_a_silent_device_still_in_use_is_still_stale(
    page: Page,  # noqa: F811
    leavers: Leavers,
) -> None:
    """The fleet's rule is unchanged for a member: silent past the window, STALE, with what
    to do."""
    _log_in(page, leavers, leavers.viewer)  # type: ignore[arg-type]
    page.goto(f"{leavers.base}/devices/{QUIET}?lang=en")
    expect(page.locator("#left")).to_have_count(0)
    expect(page.locator("#checks .badge.state-STALE")).to_have_count(len(default_policy().checks))
    expect(page.locator("#checks thead")).to_contain_text("State")
    expect(page.locator("dd.remediation").first).to_be_visible()
