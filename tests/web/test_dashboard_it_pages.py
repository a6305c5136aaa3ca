"""The dashboard for IT (issue 19 item 7) over real HTTP, on the small fleet whose figures
are known (`conftest.small`).

Headline figures, sorting, failing-longest filters, the waivers, tokens and audit-log pages
and their downloads; the audit log for the auditor and admin roles only.
"""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import urlencode

import pytest

from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN, AUDITOR, VIEWER
from devposture.collector.policy import policy_in_force
from devposture.collector.reports import _standings
from tests.web.conftest import RESEARCH, Small, fetch, login


def _get(small: Small, path: str, role: str = VIEWER, lang: str | None = None) -> str:
    cookie = login(small.fleet, small.fleet.credential(role), lang=lang)
    answer = fetch(small.fleet, "GET", path, cookie=cookie)
    assert answer.status == 200, (path, answer.status)
    return answer.text


def _total(html: str) -> int:
    found = re.search(r'<span id="total">(\d+)</span>', html)
    assert found, "no total on the page"
    return int(found.group(1))


def _figure(html: str, name: str) -> tuple[int, str]:
    """A headline figure's number and the link it leads to."""
    found = re.search(
        rf'<a class="figure [a-z]+" id="figure-{name}" href="([^"]+)">.*?'
        r'<span class="number">(\d+)</span>', html, re.S,
    )  # fmt: skip
    assert found, f"no figure {name}"
    return int(found.group(2)), found.group(1).replace("&amp;", "&")


def _hosts(html: str) -> list[str]:
    return re.findall(r'class="device-link">([^<]+)</a>', html)


# --- the overview's headline figures -------------------------------------------------------


def test_the_headline_figures_are_the_fleet_s_and_lead_to_their_devices(small: Small) -> None:
    page = _get(small, "/")
    compliant, compliant_link = _figure(page, "compliant")
    needing, needing_link = _figure(page, "needing-action")
    stale, stale_link = _figure(page, "stale")
    waivers, waivers_link = _figure(page, "waivers")
    assert (compliant, needing, stale, waivers) == (1, 1, 0, len(small.checks) - 1)
    # Each figure is the count of the list it links to.
    listed = _get(small, compliant_link)
    assert _total(listed) == 1 and _hosts(listed) == ["PC-2"]
    listed = _get(small, needing_link)
    assert _total(listed) == 1 and _hosts(listed) == ["PC-10"]
    assert _total(_get(small, stale_link)) == 0
    assert waivers_link == "/waivers"


def test_the_headline_figures_agree_with_the_standings_judged_in_python(small: Small) -> None:
    """The reference: `compliance.standings` over each device's history (as `report fleet
    --exact`), against the figures counted in SQL."""
    store = small.fleet.store()
    try:
        policy = policy_in_force(small.fleet.collector.config, store)
        at = utcnow()
        devices, judged = _standings(store, policy, at)
        rows = [r for r in judged if r.device_id in devices]
        states: dict[str, set[str]] = {}
        for standing in rows:
            states.setdefault(standing.device_id, set()).add(standing.state)
        compliant = sum(1 for s in states.values() if s <= {"PASS", "EXEMPT"})
        needing = sum(1 for s in states.values() if "FAIL" in s and "STALE" not in s)
        figures = store.dashboard.headline(policy, at, stale=0)
    finally:
        store.close()
    assert (figures.compliant, figures.needing_action) == (compliant, needing)


def test_a_group_s_figures_count_only_its_devices(small: Small) -> None:
    store = small.fleet.store()
    try:
        store.identity.set_device_group(small.pc10, RESEARCH, utcnow())
        page = _get(small, f"/?{urlencode({'group': RESEARCH})}")
    finally:
        store.identity.set_device_group(small.pc10, "", utcnow())
        store.close()
    assert _figure(page, "needing-action")[0] == 1
    assert _figure(page, "compliant")[0] == 0  # PC-2 is not in the group
    assert _figure(page, "waivers")[0] == 0  # nor are its waivers
    assert f"group={RESEARCH}" in _figure(page, "needing-action")[1] or "group=%E7" in (
        _figure(page, "needing-action")[1])  # fmt: skip


# --- the device list's order ---------------------------------------------------------------


def test_host_names_sort_naturally_and_each_column_sorts_both_ways(small: Small) -> None:
    assert _hosts(_get(small, "/devices")) == ["pc-1", "PC-2", "PC-10"]
    assert _hosts(_get(small, "/devices?sort=host&order=desc")) == ["PC-10", "PC-2", "pc-1"]
    by_check = _hosts(_get(small, "/devices?sort=check:public-wifi"))
    assert by_check[0] == "PC-10"  # FAIL first: what needs attention
    assert _hosts(_get(small, "/devices?sort=check:public-wifi&order=desc"))[-1] == "PC-10"
    ids = sorted([small.pc1, small.pc2, small.pc10])
    by_id = re.findall(r'<code class="device-id" title="([0-9a-f]{32})">',
                       _get(small, "/devices?sort=device"))  # fmt: skip
    assert by_id == ids
    # An unknown column is the host order, not an error.
    assert _hosts(_get(small, "/devices?sort=nonsense")) == ["pc-1", "PC-2", "PC-10"]


def test_a_column_title_links_to_its_order_and_keeps_the_filters(small: Small) -> None:
    page = _get(small, "/devices?os=linux&sort=host")
    link = re.search(r'<a href="([^"]+)" class="sort" data-sort="host">', page)
    assert link is not None
    target = link.group(1).replace("&amp;", "&")
    assert "os=linux" in target and "sort=host" in target and "order=desc" in target
    assert 'th class="sortable sorted asc"' in page


def test_the_device_download_has_the_page_s_order(small: Small) -> None:
    text = _get(small, "/download/devices?sort=host&order=desc&format=csv").lstrip("\ufeff")
    hosts = [row["hostname"] for row in csv.DictReader(io.StringIO(text))]
    assert hosts == ["PC-10", "PC-2", "pc-1"]


# --- failing longest, filtered -------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ({}, 1),
    ({"check": "public-wifi"}, 1),
    ({"check": "clause:6.3.2"}, 1),
    ({"check": "firewall"}, 0),
    ({"min_days": "1"}, 0),  # it began failing hours ago
    ({"min_days": "0"}, 1),
    ({"min_days": "nonsense"}, 1),
])  # fmt: skip
def test_failing_longest_filters(small: Small, query: dict[str, str], expected: int) -> None:
    page = _get(small, f"/failing?{urlencode(query)}")
    assert _total(page) == expected
    assert len(_hosts(page)) == expected
    download = json.loads(_get(small, f"/download/failing?{urlencode(query | {'format': 'json'})}"))
    assert len(download) == expected


def test_failing_longest_filters_by_group(small: Small) -> None:
    store = small.fleet.store()
    try:
        store.identity.set_device_group(small.pc10, RESEARCH, utcnow())
        inside = _get(small, f"/failing?{urlencode({'group': RESEARCH})}")
        outside = _get(small, "/failing?group=sales")
    finally:
        store.identity.set_device_group(small.pc10, "", utcnow())
        store.close()
    assert _hosts(inside) == ["PC-10"] and _total(outside) == 0


# --- waivers, tokens, the audit log ----------------------------------------------------------


def test_the_waivers_page_shows_those_in_force_and_those_ended(small: Small) -> None:
    page = _get(small, "/waivers?lang=zh")
    in_force = page[page.index('id="waivers-in-force"'):page.index('id="ended"')]
    ended = page[page.index('id="waivers-ended"'):]
    assert in_force.count("<tr class=\"waiver-active\">") == len(small.checks) - 1
    assert "张伟" in in_force and "测试机,只在内网使用" in in_force
    assert "w-old" in ended and "已到期" in ended and "w-revoked" in ended and "已撤销" in ended
    assert "w-old" not in in_force
    assert "（UTC+08:00）" in in_force  # Beijing time, in a Chinese page's brackets
    rows = json.loads(_get(small, "/download/waivers?format=json"))
    assert {r["waiver"]: r["status"] for r in rows}["w-revoked"] == "revoked"
    assert len(rows) == len(small.checks) + 1


def test_a_waiver_table_s_count_follows_its_heading_as_each_language_writes_it(
    small: Small,
) -> None:
    """"生效中 （5）" had a space before the full-width bracket; English keeps "In force (5)"."""
    count = len(small.checks) - 1
    heading = re.compile(r'<h2 id="in-force">(.*?)</h2>')
    for lang, shown in (("zh", f"生效中<span class=\"meta\">（{count}）</span>"),
                        ("en", f"In force<span class=\"meta\"> ({count})</span>")):  # fmt: skip
        found = heading.search(_get(small, f"/waivers?lang={lang}"))
        assert found is not None and found[1] == shown, found


def test_the_tokens_page_shows_no_secret(small: Small) -> None:
    page = _get(small, "/tokens", lang="en")
    secret = small.unused_token.split("_", 2)[2]  # dpt_ID_SECRET
    assert len(secret) > 16 and secret not in page and secret[:12] not in page
    assert RESEARCH in page and "usable" in page and "revoked" in page and "used up" in page
    rows = json.loads(_get(small, "/download/tokens?format=json"))
    assert sorted(r["status"] for r in rows) == sorted(
        ["usable", "revoked", "used up", "used up", "used up"]
    )
    assert sum(r["enrolled"] for r in rows) == 3
    assert not any(secret[:12] in json.dumps(r) for r in rows)
    assert "secret" not in " ".join(rows[0])


@pytest.mark.parametrize("role", [AUDITOR, ADMIN])
def test_the_audit_log_is_for_auditors_and_admins(small: Small, role: str) -> None:
    page = _get(small, "/audit", role)
    assert 'id="nav-audit"' in page
    assert "dashboard login" in page and _total(page) > 0
    rows = json.loads(_get(small, "/download/audit?format=json", role))
    assert any(r["command"] == "dashboard login" for r in rows)


def test_a_viewer_neither_sees_nor_downloads_the_audit_log(small: Small) -> None:
    cookie = login(small.fleet, lang="en")
    overview = fetch(small.fleet, "GET", "/", cookie=cookie).text
    assert 'id="nav-audit"' not in overview and 'id="nav-waivers"' in overview
    for path in ("/audit", "/download/audit?format=csv", "/download/audit?format=json"):
        answer = fetch(small.fleet, "GET", path, cookie=cookie)
        assert answer.status == 403, path
        assert "auditor" in answer.text and "dashboard login" not in answer.text


def test_the_audit_log_pages_newest_first(small: Small) -> None:
    store = small.fleet.store()
    try:
        for n in range(60):
            store.admin.audit(utcnow(), actor="bench", credential_id=None, role=ADMIN,
                              command=f"token list #{n:02d}", arguments={}, outcome="ok",
                              message="", peer="local")  # fmt: skip
    finally:
        store.close()
    first = _get(small, "/audit", AUDITOR)
    assert "token list #59" in first and "token list #09" not in first
    assert first.index("token list #59") < first.index("token list #58")
    second = _get(small, "/audit?page=2", AUDITOR)
    assert "token list #09" in second and "token list #59" not in second


# --- every page, both languages ----------------------------------------------------------


def every_page(device_id: str) -> list[str]:
    """Every page of the dashboard, filtered and sorted ones included (and the login page,
    which a signed-in browser is sent on from)."""
    return [
        "/", f"/?{urlencode({'group': RESEARCH})}", "/devices", "/devices?state=COMPLIANT",
        "/devices?state=NOT_PASSING&sort=check:firewall&order=desc", "/devices?sort=last_report",
        f"/devices/{device_id}", "/failing", "/failing?check=clause:6.3.2&min_days=0.5",
        "/waivers", "/tokens", "/audit", "/nowhere",
    ]  # fmt: skip


REPRS = ("<built-in method", "<bound method", "object at 0x", "<function ", "Undefined")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_page_renders_a_python_object(small: Small, lang: str) -> None:
    cookie = login(small.fleet, small.fleet.credential(AUDITOR))
    answers = [fetch(small.fleet, "GET", f"/login?lang={lang}")]  # signed out
    for path in every_page(small.pc10):
        joined = f"{path}{'&' if '?' in path else '?'}lang={lang}"
        answers.append(fetch(small.fleet, "GET", joined, cookie=cookie))
        assert answers[-1].status == (404 if path == "/nowhere" else 200), joined
    for answer in answers:
        text = answer.text.replace("&lt;", "<")
        for marker in REPRS:
            assert marker not in text, marker
    devices = fetch(small.fleet, "GET", f"/devices?lang={lang}", cookie=cookie).text
    assert ("清除" if lang == "zh" else ">Clear</a>") in devices


def test_the_trend_legend_reads_the_checks_titles_not_their_ids(small: Small) -> None:
    page = _get(small, "/?lang=zh")
    legend = page[page.index('id="trend-legend"'):page.index("</ul>", page.index("trend-legend"))]
    assert "在公共无线网络上使用 VPN" in legend or "6.3.2" in legend
    for check in small.checks:
        assert f"> {check}<" not in legend and f" {check} " not in legend
    tips = re.findall(r"<title>([^<]+)</title>", page[page.index("<svg"):])
    assert any("%" in tip and "6.3.2" in tip for tip in tips)  # values on hover


def test_the_pages_have_downloads_for_every_table(small: Small) -> None:
    for path, tables in [
        ("/", {"fleet", "trend"}), ("/devices", {"devices"}), ("/failing", {"failing"}),
        (f"/devices/{small.pc10}", {"device", "history", "reports"}),
        ("/waivers", {"waivers"}), ("/tokens", {"tokens"}), ("/audit", {"audit"}),
    ]:  # fmt: skip
        page = _get(small, path, AUDITOR)
        found = set(re.findall(r'id="downloads-([a-z]+)"', page))
        assert tables <= found, (path, found)
        for table in tables:
            link = re.search(rf'href="(/download/{table}\?[^"]*format=csv[^"]*)"', page)
            assert link, (path, table)
            answer = fetch(small.fleet, "GET", link.group(1).replace("&amp;", "&"),
                           cookie=login(small.fleet, small.fleet.credential(AUDITOR)))  # fmt: skip
            assert answer.status == 200 and answer.text.startswith("\ufeff"), (path, table)


def test_a_clause_s_id_is_not_shown_twice(small: Small) -> None:
    """The policy's English clause titles start with the clause's id, which the pages show
    beside the title already."""
    for path in (f"/devices/{small.pc10}?lang=en", "/failing?lang=en"):
        page = _get(small, path)
        assert "6.3.2 6.3.2" not in page and '6.3.2</span> 6.3.2' not in page, path
        assert "Security protection: networks" in page, path


def test_a_count_of_one_reads_in_the_singular_in_english(small: Small) -> None:
    """The English pages said "1 matching devices" and "1 failures past their grace period";
    the Chinese, which has no plural, reads the same for one and for many."""
    failing = _get(small, "/failing?lang=en")
    assert _total(failing) == 1 and "1</span> failure past its grace period" in failing
    devices = _get(small, f"/devices?{urlencode({'q': 'PC-10', 'lang': 'en'})}")
    assert _total(devices) == 1 and "1</span> matching device ·" in devices
    several = _get(small, "/devices?lang=en")
    assert _total(several) == 3 and "3</span> matching devices ·" in several
    chinese = _get(small, "/failing?lang=zh")
    assert "1</span> 项检查超过宽限期仍未通过" in chinese
