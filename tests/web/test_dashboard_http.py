"""The dashboard over plain HTTP: who gets in, what stays out, which devices each filter and
page returns."""

from __future__ import annotations

import datetime as dt
import html
import http.client
import logging
import re
import ssl
from urllib.parse import quote, urlencode

import pytest

from devposture.collector.clock import utcnow
from devposture.collector.company_time import zone_of
from devposture.collector.credentials import AUDITOR
from devposture.collector.policy import policy_in_force
from devposture.collector.reports import device_rows
from devposture.collector.web import auth
from devposture.collector.web.reasons import reason_text
from devposture.collector.web.server import start_dashboard
from tests.web.conftest import (
    FILLER_DEVICES,
    FINANCE,
    NASTY_HOSTNAME,
    PUBLIC_NETWORK,
    Fleet,
    device_links,
    fetch,
    login,
)


@pytest.mark.parametrize("path", ["/", "/devices?check=public-wifi&state=FAIL", "/failing",
                                  "/devices/0123456789abcdef0123456789abcdef"])  # fmt: skip
def test_every_page_sends_a_stranger_to_the_login_page(fleet: Fleet, path: str) -> None:
    answer = fetch(fleet, "GET", path)
    assert answer.status == 303
    assert answer.location.startswith("/login?next=")
    assert "devposture_session" not in " ".join(answer.cookies())
    # A made-up session id gets no further.
    assert fetch(fleet, "GET", path, cookie="devposture_session=forged").status == 303


def test_login_page_is_served_with_strict_security_headers(fleet: Fleet) -> None:
    answer = fetch(fleet, "GET", "/login")
    assert answer.status == 200
    assert 'name="credential"' in answer.text and 'type="password"' in answer.text
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in answer.headers  # plain HTTP: never pinned to TLS


def test_wrong_credentials_are_refused_and_audited(fleet: Fleet) -> None:
    real = fleet.viewer
    wrong_secret = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for presented in (wrong_secret, "not a credential", ""):
        answer = fetch(fleet, "POST", "/login", form={"credential": presented})
        assert answer.status == 401
        assert not answer.cookies() or "devposture_session" not in " ".join(answer.cookies())
        assert 'id="login-error"' in answer.text
        if presented:
            assert presented not in answer.text
    store = fleet.store()
    try:
        denied = [e for e in store.admin.audit_entries()
                  if e.command == "dashboard login" and e.outcome == "denied"]  # fmt: skip
    finally:
        store.close()
    assert len(denied) >= 3
    assert any(e.credential_id == real.split("_")[1] for e in denied)
    assert all(wrong_secret[21:] not in e.message + e.arguments for e in denied)


def test_a_viewer_logs_in_with_a_strict_http_only_cookie_and_the_secret_stays_out(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = fetch(fleet, "POST", "/login?lang=en", form={"credential": fleet.viewer,
                                                          "next": "/failing"})  # fmt: skip
    assert answer.status == 303 and answer.location == "/failing"
    header = next(h for h in answer.cookies() if h.startswith("devposture_session="))
    assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/" in header
    session_id = header.split(";")[0].split("=", 1)[1]
    assert len(session_id) >= 40 and fleet.viewer not in header
    cookie = f"devposture_session={session_id}"
    for path in ("/", "/failing", f"/devices/{fleet.failing_device}", "/devices"):
        page = fetch(fleet, "GET", path, cookie=cookie)
        assert page.status == 200, path
        assert fleet.viewer not in page.text
        assert "Wang Fang (audit)" in page.text
    secret = fleet.viewer[21:]
    assert secret not in caplog.text
    assert "dashboard login: Wang Fang (audit)" in caplog.text


def test_an_open_redirect_after_login_is_refused(fleet: Fleet) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "\\\\evil"):
        answer = fetch(fleet, "POST", "/login", form={"credential": fleet.viewer,
                                                      "next": target})  # fmt: skip
        assert answer.status == 303 and answer.location == "/"


def test_a_login_posted_from_another_site_is_refused(fleet: Fleet) -> None:
    answer = fetch(fleet, "POST", "/login", form={"credential": fleet.viewer},
                   headers={"Origin": "https://evil.example"})  # fmt: skip
    assert answer.status == 403 and not answer.cookies()


def test_a_revoked_credential_s_session_stops_working(fleet: Fleet) -> None:
    credential = fleet.credential(name="Temp contractor")
    cookie = login(fleet, credential)
    assert fetch(fleet, "GET", "/", cookie=cookie).status == 200
    store = fleet.store()
    try:
        assert store.admin.revoke_credential(credential.split("_")[1], utcnow())
    finally:
        store.close()
    answer = fetch(fleet, "GET", "/", cookie=cookie)
    assert answer.status == 303 and answer.location.startswith("/login")
    # Nor can it log in again.
    assert fetch(fleet, "POST", "/login", form={"credential": credential}).status == 401


def test_logout_needs_the_session_s_csrf_token(fleet: Fleet) -> None:
    cookie = login(fleet)
    page = fetch(fleet, "GET", "/", cookie=cookie).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    refused = fetch(fleet, "POST", "/logout", form={"csrf": "guess"}, cookie=cookie)
    assert refused.status == 403
    assert fetch(fleet, "GET", "/", cookie=cookie).status == 200
    done = fetch(fleet, "POST", "/logout", form={"csrf": csrf.group(1)}, cookie=cookie)
    assert done.status == 303 and done.location == "/login"
    assert fetch(fleet, "GET", "/", cookie=cookie).status == 303


def test_overview_counts_each_check_and_links_each_count(fleet: Fleet) -> None:
    page = fetch(fleet, "GET", "/", cookie=login(fleet)).text
    row = page[page.index('id="fleet-public-wifi"'):]
    row = row[: row.index("</tr>")]
    assert "6.3.2" in row
    assert re.search(r'href="/devices\?check=public-wifi&amp;state=FAIL"[^>]*>1<', row)
    assert re.search(r'href="/devices\?check=public-wifi&amp;state=PASS"[^>]*>2<', row)
    assert f'id="device-count">{FILLER_DEVICES + 3}<' in page
    assert "<svg" in page and "data-series=\"public-wifi\"" in page


def test_the_trends_hover_texts_take_the_readers_colon(fleet: Fleet) -> None:
    """Each week's hover text names every line by its check's title, then its value: after a
    Chinese title the full-width colon, as every other label of the page ("设备数："), not
    "在公共无线网络上使用 VPN: 100.0%"."""
    for lang, colon in (("zh", "："), ("en", ": ")):
        page = fetch(fleet, "GET", "/", cookie=login(fleet, lang=lang)).text
        hovers = re.findall(r'<rect class="week"[^>]*><title>([^<]*)</title>', page)
        assert hovers, page
        lines = [line for hover in hovers for line in hover.split("\n")[1:]]
        assert lines and all(re.search(rf"{colon}(—|\d+\.\d%)$", line) for line in lines), lines
        if lang == "zh":
            assert not any(re.search(r"[\u4e00-\u9fff]: ", line) for line in lines), lines


def test_the_overview_of_one_group_counts_its_devices_and_keeps_the_group_in_its_links(
    fleet: Fleet,
) -> None:
    cookie = login(fleet, lang="en")
    page = fetch(fleet, "GET", f"/?group={quote(FINANCE)}", cookie=cookie).text
    assert 'id="device-count">2<' in page  # cafe-laptop and win-laptop
    assert f'<option value="{FINANCE}" selected>{FINANCE}</option>' in page
    row = page[page.index('id="fleet-public-wifi"'):]
    row = row[: row.index("</tr>")]
    group = quote(FINANCE)
    failing = re.search(rf'href="(/devices\?check=public-wifi&amp;state=FAIL&amp;group={group})"'
                        r"[^>]*>1<", row)  # fmt: skip
    assert failing, row
    assert re.search(rf'state=PASS&amp;group={group}"[^>]*>1<', row)  # win-laptop
    assert "The trend is the whole fleet&#39;s." in page  # escaped
    linked = fetch(fleet, "GET", failing.group(1).replace("&amp;", "&"), cookie=cookie).text
    assert device_links(linked) == [fleet.failing_device]
    assert 'id="device-count">0<' in fetch(fleet, "GET", "/?group=nobody", cookie=cookie).text


def _listed(fleet: Fleet, cookie: str, query: str) -> list[str]:
    answer = fetch(fleet, "GET", f"/devices?{query}", cookie=cookie)
    assert answer.status == 200
    return device_links(answer.text)


def test_filters_return_the_right_devices(fleet: Fleet) -> None:
    cookie = login(fleet)
    assert _listed(fleet, cookie, "check=public-wifi&state=FAIL") == [fleet.failing_device]
    assert sorted(_listed(fleet, cookie, "check=public-wifi&state=PASS")) == sorted(
        [fleet.passing_device, fleet.windows_device]
    )
    # Every device is judged UNKNOWN on antivirus (no such fact reported) ...
    assert len(_listed(fleet, cookie, "check=antivirus&state=UNKNOWN")) == 50
    # ... and none fails it, passes it, or is stale.
    assert _listed(fleet, cookie, "check=antivirus&state=PASS") == []
    assert _listed(fleet, cookie, "stale=1") == []
    assert _listed(fleet, cookie, "os=windows") == [fleet.windows_device]
    assert _listed(fleet, cookie, "q=cafe") == [fleet.failing_device]
    assert _listed(fleet, cookie, f"q={fleet.passing_device[:10]}") == [fleet.passing_device]
    assert _listed(fleet, cookie, "q=fleet-1&os=linux") == [
        d for d in _listed(fleet, cookie, "q=fleet-1")
    ] and len(_listed(fleet, cookie, "q=fleet-1")) == 10  # fleet-10 .. fleet-19
    finance = sorted([fleet.failing_device, fleet.windows_device])
    assert sorted(_listed(fleet, cookie, f"group={quote(FINANCE)}")) == finance
    assert _listed(fleet, cookie, f"group={quote(FINANCE)}&os=windows") == [fleet.windows_device]
    assert _listed(fleet, cookie, "group=nobody") == []
    page = fetch(fleet, "GET", "/devices", cookie=cookie).text
    assert f'<option value="{FINANCE}" >{FINANCE}</option>' in page  # the filter offers it


def test_pages_of_fifty_cover_every_device_once(fleet: Fleet) -> None:
    cookie = login(fleet)
    first = _listed(fleet, cookie, "page=1")
    second = _listed(fleet, cookie, "page=2")
    assert len(first) == 50 and len(second) == len(fleet.all_devices) - 50
    assert sorted(first + second) == sorted(fleet.all_devices)
    assert _listed(fleet, cookie, "page=99") == second  # past the end: the last page
    assert _listed(fleet, cookie, "page=nonsense") == first
    page = fetch(fleet, "GET", "/devices?page=1", cookie=cookie).text
    assert 'href="/devices?page=2"' in page and 'rel="next"' in page


def test_hostnames_and_reasons_are_escaped(fleet: Fleet) -> None:
    page = fetch(fleet, "GET", "/devices?q=onerror", cookie=login(fleet)).text
    assert NASTY_HOSTNAME not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page


def test_the_device_page_shows_the_6_3_2_evidence_as_the_cli_report_does(fleet: Fleet) -> None:
    page = fetch(fleet, "GET", f"/devices/{fleet.failing_device}",
                 cookie=login(fleet, lang="en")).text  # fmt: skip
    assert f'<a href="/devices?group={quote(FINANCE)}">{FINANCE}</a>' in page  # its group
    assert "<dd>Linux</dd>" in page  # its OS as its maker writes it, not the store's "linux"
    section = page[page.index('id="check-public-wifi"'):]
    section = section[: section.index("</section>")]
    assert "6.3.2" in section
    assert f"public Wi-Fi: {PUBLIC_NETWORK} at " in section and "without VPN" in section
    assert "report collected " in section
    assert PUBLIC_NETWORK in section and 'class="bad"' in section  # the session itself
    assert "VPN" in section and "lang=\"zh-CN\"" in section  # remediation in both languages
    store = fleet.store()
    try:
        expected = device_rows(store, policy_in_force(fleet.collector.config), utcnow(),
                               fleet.failing_device, lang="en")  # fmt: skip
    finally:
        store.close()
    zone = zone_of(policy_in_force(fleet.collector.config))
    for row in expected:
        assert f"{row['clause']}</span>" in page
        # The stored reason as a reader of English reads it (a reason code rendered).
        shown = html.escape(reason_text(str(row["reason"]), "en", zone), quote=False)
        assert shown.split(" at ")[0] in page
    wifi = next(r for r in expected if r["check"] == "public-wifi")
    assert wifi["state"] == "FAIL" and str(wifi["evidence"]) in section
    assert "Reports received" in page and "latest 1 of 1" in page


def test_a_clause_s_title_stands_above_its_text_without_a_second_colon(fleet: Fleet) -> None:
    """The title holds a colon of its own ("六（三）1 安全防护：设备"); one more before the text
    read "六（三）1 安全防护：设备：员工应…" (and "…: devices: Employees shall…")."""
    cookie = login(fleet)
    clauses = policy_in_force(fleet.collector.config).clauses
    for lang in ("zh", "en"):
        page = fetch(fleet, "GET", f"/devices/{fleet.failing_device}?lang={lang}",
                     cookie=cookie).text  # fmt: skip
        for clause in clauses:
            for title, colon in ((clause.title_zh, "："), (clause.title_en, ": ")):
                assert f'<cite class="clause-title">{html.escape(title)}</cite> ' in page
                assert html.escape(title + colon) not in page, (lang, title)


def test_the_os_filter_and_column_name_each_os_as_its_maker_writes_it(fleet: Fleet) -> None:
    """Not the store's codes ("linux", "windows"), in the filter's choices as in the column;
    the filter still sends the code."""
    cookie = login(fleet)
    for lang in ("zh", "en"):
        page = fetch(fleet, "GET", f"/devices?os=windows&lang={lang}", cookie=cookie).text
        choices = page[page.index('<select name="os"'):]
        choices = choices[: choices.index("</select>")]
        assert '<option value="windows" selected>Windows</option>' in choices
        assert '<option value="linux" >Linux</option>' in choices
        assert ">linux<" not in page and ">windows<" not in page
        assert "<td>Windows</td>" in page


def test_an_unknown_device_is_not_found(fleet: Fleet) -> None:
    cookie = login(fleet, lang="en")
    answer = fetch(fleet, "GET", "/devices/ffffffffffffffffffffffffffffffff", cookie=cookie)
    assert answer.status == 404 and "no such device" in answer.text


def test_failing_longest_lists_the_public_wifi_failure(fleet: Fleet) -> None:
    page = fetch(fleet, "GET", "/failing", cookie=login(fleet, lang="en")).text
    assert device_links(page) == [fleet.failing_device]
    assert "without VPN" in page


def test_the_language_switch_shows_chinese_and_is_remembered(fleet: Fleet) -> None:
    cookie = login(fleet)
    answer = fetch(fleet, "GET", "/?lang=zh", cookie=cookie)
    assert answer.status == 200 and "总览" in answer.text and 'lang="zh-CN"' in answer.text
    assert "六（三）2 安全防护：网络" in answer.text  # the policy's own 6.3.2 title
    assert "在公共无线网络上使用 VPN" in answer.text  # and its check's
    lang = next(h for h in answer.cookies() if h.startswith(auth.LANG_COOKIE))
    remembered = fetch(fleet, "GET", "/failing", cookie=f"{cookie}; {lang.split(';')[0]}")
    assert "失败最久" in remembered.text
    english = fetch(fleet, "GET", "/?lang=en", cookie=cookie)
    assert "Overview" in english.text and "总览" not in english.text


def test_tls_serves_with_the_collector_s_certificate_and_secure_cookies(fleet: Fleet) -> None:

    config = fleet.collector.config
    server = start_dashboard(config, "127.0.0.1", 0, tls=True)
    try:
        assert server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(config.ca_cert))
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                                 timeout=30)  # fmt: skip
        try:
            connection.request("POST", "/login", body=urlencode({"credential": fleet.viewer}),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        assert response.status == 303
        cookie = next(h for h in response.headers.get_all("set-cookie") or []
                      if h.startswith("devposture_session="))  # fmt: skip
        assert "Secure" in cookie
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        # Plain HTTP on the TLS port gets nothing.
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            plain.request("GET", "/login")
            answer: int | None = plain.getresponse().status
        except (http.client.HTTPException, OSError):
            answer = None
        finally:
            plain.close()
        assert answer != 200
    finally:
        server.stop()


def test_a_taken_port_is_reported(fleet: Fleet) -> None:
    with pytest.raises(OSError, match="could not listen"):
        start_dashboard(fleet.collector.config, "127.0.0.1", fleet.dashboard.port)


def test_pages_show_times_in_the_company_s_time_zone_with_its_offset(fleet: Fleet) -> None:
    """Beijing time by default (the policy's time_zone), as the CLI writes it: the offset in
    the brackets of the page's language, full-width on a Chinese page."""
    cookie = login(fleet)
    store = fleet.store()
    try:
        device = store.identity.device(fleet.failing_device)
    finally:
        store.close()
    assert device is not None and device.last_report_at is not None
    page = fetch(fleet, "GET", f"/devices/{fleet.failing_device}", cookie=cookie).text
    beijing = device.last_report_at.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert f"<dd>{beijing:%Y-%m-%d %H:%M}（UTC+08:00）</dd>" in page  # the last report
    for path in ("/", "/devices", f"/devices/{fleet.failing_device}", "/failing"):
        text = fetch(fleet, "GET", path, cookie=cookie).text
        assert "（UTC+08:00）" in text and not re.search(r"\d\d:\d\d UTC\b", _pages_own(text))
        assert " (UTC+" not in text, path  # no half-width bracket in a Chinese page
    english = fetch(fleet, "GET", f"/devices/{fleet.failing_device}?lang=en", cookie=cookie).text
    assert f"<dd>{beijing:%Y-%m-%d %H:%M} (UTC+08:00)</dd>" in english


def _pages_own(html: str) -> str:
    """The page without the check reasons agents' reports carry (stored words, in UTC)."""
    return re.sub(r"public Wi-Fi: [^<]* at [^<]* UTC", "", html)


def test_an_auditor_logs_into_the_dashboard_read_only(fleet: Fleet) -> None:
    """An auditor sees what a viewer sees; the dashboard changes nothing for any role."""
    auditor = fleet.credential(AUDITOR, "Zhao Min (audit)")
    answer = fetch(fleet, "POST", "/login?lang=en", form={"credential": auditor, "next": "/"})
    assert answer.status == 303
    header = next(h for h in answer.cookies() if h.startswith("devposture_session="))
    cookie = header.split(";")[0]
    for path in ("/", "/failing", f"/devices/{fleet.failing_device}", "/devices"):
        page = fetch(fleet, "GET", path, cookie=cookie)
        assert page.status == 200, path
        assert "Zhao Min (audit)" in page.text
