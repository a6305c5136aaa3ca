"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright).

The acceptance path: a viewer logs in and reaches, in three clicks from the overview, the
evidence for why a device fails 6.3.2. Screenshots of every page in both languages are saved
as test artifacts (test-artifacts/dashboard-PAGE-LANG.png, on a wide screen, and the overview
and the device list on a laptop's too), for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, AUDITOR
from tests.web.conftest import FINANCE, PUBLIC_NETWORK, Fleet, Small

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ON_CI = bool(os.environ.get("CI"))

if not CHROMIUM.exists() and not ON_CI:
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium"
        " (apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def _log_in(page: Page, fleet: Fleet, credential: str) -> None:
    page.goto(f"{fleet.base}/")
    expect(page).to_have_url(f"{fleet.base}/login?next=%2F")
    page.fill("#credential", credential)
    page.click("#login")


def test_a_wrong_credential_is_refused_in_the_browser(page: Page, fleet: Fleet) -> None:
    _log_in(page, fleet, fleet.viewer[:-1] + ("A" if fleet.viewer[-1] != "A" else "B"))
    expect(page.locator("#login-error")).to_be_visible()
    expect(page).to_have_url(f"{fleet.base}/login?lang=en")
    page.goto(f"{fleet.base}/devices")
    expect(page).to_have_url(f"{fleet.base}/login?next=%2Fdevices")


def test_a_viewer_reaches_the_6_3_2_evidence_in_three_clicks(page: Page, fleet: Fleet) -> None:
    _log_in(page, fleet, fleet.viewer)
    expect(page).to_have_url(f"{fleet.base}/")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#device-count")).to_have_text(str(len(fleet.all_devices)))
    row = page.locator("#fleet-public-wifi")
    expect(row).to_contain_text("6.3.2")
    failing_count = row.locator('a.count[data-state="FAIL"]')
    expect(failing_count).to_have_text("1")
    expect(page.locator("#trend svg.chart")).to_be_visible()
    # The past weeks' records (conftest): a line per check, each its own colour.
    lines = page.locator("#trend svg.chart polyline")
    expect(lines).to_have_count(6)
    colours = {lines.nth(n).get_attribute("stroke") for n in range(6)}
    assert len(colours) == 6
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-overview.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    clicks = 0
    failing_count.click()  # 1: the devices failing public-wifi
    clicks += 1
    expect(page).to_have_url(f"{fleet.base}/devices?check=public-wifi&state=FAIL")
    links = page.locator("a.device-link")
    expect(links).to_have_count(1)
    expect(page.locator("#check")).to_have_value("public-wifi")
    expect(page.locator("#state")).to_have_value("FAIL")
    links.first.click()  # 2: that device
    clicks += 1
    expect(page).to_have_url(f"{fleet.base}/devices/{fleet.failing_device}")
    page.locator('a.check-link[data-check="public-wifi"]').click()  # 3: its 6.3.2 check
    clicks += 1
    assert clicks == 3
    expect(page).to_have_url(f"{fleet.base}/devices/{fleet.failing_device}#check-public-wifi")
    section = page.locator("#check-public-wifi")
    expect(section).to_be_in_viewport()
    expect(section.locator("h2")).to_contain_text("6.3.2")
    expect(section.locator("dd.reason")).to_contain_text(f"public Wi-Fi: {PUBLIC_NETWORK} at")
    expect(section.locator("dd.reason")).to_contain_text("without VPN")
    expect(section.locator("dd.evidence")).to_contain_text("report collected")
    expect(section.locator("tr.bad")).to_contain_text(PUBLIC_NETWORK)
    expect(section.locator("dd.remediation")).to_contain_text("turn on the company VPN")
    expect(section.locator("dd.remediation")).to_contain_text("先打开公司 VPN")


def test_switching_to_chinese_shows_the_policy_s_chinese_titles(page: Page, fleet: Fleet) -> None:
    _log_in(page, fleet, fleet.viewer)
    page.click("#lang-zh")
    expect(page.locator("h1")).to_have_text("总览")
    expect(page.locator("#fleet-public-wifi")).to_contain_text("六（三）2 安全防护：网络")
    expect(page.locator("#fleet-public-wifi")).to_contain_text("在公共无线网络上使用 VPN")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-overview-zh.png"  # what compliance officers read
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.click("#nav-failing")  # the choice is remembered on the next page
    expect(page.locator("h1")).to_have_text("失败最久")
    page.click("#lang-en")
    expect(page.locator("h1")).to_have_text("Failing longest")


def test_filters_and_logout_in_the_browser(page: Page, fleet: Fleet) -> None:
    _log_in(page, fleet, fleet.viewer)
    page.click("#nav-devices")
    expect(page.locator("a.device-link")).to_have_count(50)
    page.fill("#q", "cafe")
    page.click("#apply")
    expect(page.locator("a.device-link")).to_have_count(1)
    expect(page.locator("a.device-link")).to_have_text("cafe-laptop")
    page.fill("#q", "")
    page.select_option("#group", FINANCE)
    page.click("#apply")
    expect(page.locator("a.device-link")).to_have_count(2)  # cafe-laptop and win-laptop
    expect(page.locator("td.group").first).to_have_text(FINANCE)
    page.click("#logout")
    expect(page).to_have_url(f"{fleet.base}/login")
    page.goto(f"{fleet.base}/")
    expect(page).to_have_url(f"{fleet.base}/login?next=%2F")


def test_the_failing_table_downloads_as_xlsx_in_the_browser(
    page: Page, fleet: Fleet, tmp_path: Path
) -> None:
    from openpyxl import load_workbook  # noqa: PLC0415 (this test only)

    _log_in(page, fleet, fleet.viewer)
    page.click("#nav-failing")
    with page.expect_download() as started:
        page.click('#downloads-failing a[data-format="xlsx"]')
    download = started.value
    assert download.suggested_filename.startswith("devposture-failing-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    sheet = load_workbook(saved).worksheets[0]
    header = [c.value for c in sheet[1]]
    row = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert row["device"] == fleet.failing_device and row["check"] == "public-wifi"
    assert row["clause"] == "6.3.2" and row["clause_text_zh"]


WIDE: ViewportSize = {"width": 1920, "height": 1080}
LAPTOP: ViewportSize = {"width": 1366, "height": 768}


def _shots(fleet: Fleet, small: Small) -> list[tuple[str, Fleet, str]]:
    """Every page: the big fleet's (55 devices) where numbers matter, the small fleet's where
    its waivers, tokens and audit entries are."""
    return [
        ("overview", fleet, "/"), ("devices", fleet, "/devices"),
        ("devices-sorted", small.fleet, "/devices?sort=check:public-wifi"),
        ("device", fleet, f"/devices/{fleet.failing_device}"),
        ("failing", fleet, "/failing"),
        ("failing-filtered", fleet, "/failing?check=clause:6.3.2&min_days=0"),
        ("overview-small", small.fleet, "/"), ("waivers", small.fleet, "/waivers"),
        ("tokens", small.fleet, "/tokens"), ("audit", small.fleet, "/audit"),
    ]  # fmt: skip


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_screenshots_of_every_page(browser: Browser, fleet: Fleet, small: Small,
                                   lang: str) -> None:  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    contexts = {}
    for which in (fleet, small.fleet):
        context = browser.new_context(locale="zh-CN" if lang == "zh" else "en-US",
                                      viewport=WIDE)  # fmt: skip
        context.set_default_timeout(10_000)
        page = context.new_page()
        _log_in(page, which, which.credential(AUDITOR, "审计员 王芳"))
        contexts[id(which)] = (context, page)
    try:
        for name, which, path in _shots(fleet, small):
            page = contexts[id(which)][1]
            page.goto(f"{which.base}{path}{'&' if '?' in path else '?'}lang={lang}")
            expect(page.locator("h1")).to_be_visible()
            text = page.locator("body").inner_text()
            assert "object at 0x" not in text and "<built-in method" not in text
            shot = ARTIFACTS / f"dashboard-{name}-{lang}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        page = contexts[id(fleet)][1]
        page.set_viewport_size(LAPTOP)
        for name, path in (("overview", "/"), ("devices", "/devices")):
            page.goto(f"{fleet.base}{path}?lang={lang}")
            shot = ARTIFACTS / f"dashboard-{name}-laptop-{lang}.png"
            page.screenshot(path=str(shot), full_page=True)
            # Nothing wider than the laptop's screen but the device list's table itself.
            width = page.evaluate("document.querySelector('header.top').scrollWidth")
            assert width <= LAPTOP["width"]
    finally:
        for context, _ in contexts.values():
            context.close()


def test_the_trend_is_labelled_in_chinese_with_values_on_hover(page: Page, small: Small) -> None:
    _log_in(page, small.fleet, small.fleet.viewer)
    page.goto(f"{small.fleet.base}/?lang=zh")
    legend = page.locator("#trend-legend li")
    expect(legend).to_have_count(6)
    expect(legend.filter(has_text="6.3.2")).to_contain_text("VPN")
    texts = legend.all_inner_texts()
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in text) for text in texts), texts
    week = page.locator("#trend svg.chart rect.week").last  # this week: every check's value
    week.hover()
    tip = week.locator("title")
    expect(tip).to_contain_text("截至")
    expect(tip).to_contain_text("6.3.2")
    for line in texts:
        expect(tip).to_contain_text(line.split("%")[0].rsplit(" ", 1)[0].strip())


def test_a_column_title_sorts_the_device_list(page: Page, small: Small) -> None:
    _log_in(page, small.fleet, small.fleet.viewer)
    page.click("#nav-devices")
    expect(page.locator("a.device-link")).to_have_text(["pc-1", "PC-2", "PC-10"])
    page.click('a.sort[data-sort="host"]')
    expect(page.locator("a.device-link")).to_have_text(["PC-10", "PC-2", "pc-1"])
    page.click('a.sort[data-sort="check:public-wifi"]')
    expect(page.locator("a.device-link").first).to_have_text("PC-10")


def test_the_audit_log_fits_a_laptop_screen_with_long_arguments(
    browser: Browser, small: Small
) -> None:
    """A waiver's arguments are one long JSON line (a Chinese reason, a device id): they wrap
    within their column. They did not (`td code` kept them on one line), so on a laptop the
    table ran two screens wide and squeezed the role and outcome to a character a line."""
    arguments = {
        "device": small.pc10,
        "check": "public-wifi",
        "expires": "2026-12-31",
        "owner": "李伟（IT）",
        "reason": "出差期间使用4G热点，VPN客户端正在升级" * 3,
    }
    store = small.fleet.store()
    try:
        store.admin.audit(utcnow(), actor="local:root", credential_id=None, role=ADMIN,
                          command="waiver add", arguments=arguments, outcome="ok",
                          message="", peer="local")  # fmt: skip
    finally:
        store.close()
    context = browser.new_context(locale="zh-CN", viewport=LAPTOP)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        _log_in(page, small.fleet, small.fleet.credential(AUDITOR, "审计员 王芳"))
        page.goto(f"{small.fleet.base}/audit?lang=zh")
        expect(page.locator("#audit")).to_contain_text("VPN客户端正在升级")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= LAPTOP["width"], f"the audit log is {width} px wide on a laptop"
    finally:
        context.close()


def test_chromium_is_debian_s(browser: Browser) -> None:
    # The tests use the system browser, not one Playwright downloaded.
    assert shutil.which("chromium") == str(CHROMIUM)
    assert browser.version
