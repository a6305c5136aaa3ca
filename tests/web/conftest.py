"""A real collector with a small fleet, and its dashboard on an ephemeral loopback port.

The fleet reports over real mutual TLS: `cafe-laptop` used a public Wi-Fi network without a
VPN (so it fails 6.3.2, public-wifi), `office-desktop` used only its office network, one
device runs Windows (it and `cafe-laptop` are in the group 财务部), and enough others report
for the device list to need two pages.
"""

from __future__ import annotations

import datetime as dt
import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

from devposture.agent.transport import open_channel, send_report
from devposture.collector import fleet_history
from devposture.collector.clock import utcnow
from devposture.collector.company_time import zone_of
from devposture.collector.compliance import Waiver
from devposture.collector.credentials import ADMIN, VIEWER, new_credential
from devposture.collector.policy import policy_in_force
from devposture.collector.store import Store
from devposture.collector.tokens import new_token
from devposture.collector.web.server import DashboardServer, start_dashboard
from devposture.v1 import devposture_pb2 as pb
from tests.conftest import LiveCollector, enroll_agent, make_report, running_collector
from tests.e2e.fleet import closed_session

PUBLIC_NETWORK = "Airport-Free-WiFi"
FINANCE = "财务部"  # the group of the failing and the Windows device
RESEARCH = "研发部"  # the group of the small fleet's unused token
FILLER_DEVICES = 52  # with the three named ones: 55 devices, two pages of 50
NASTY_HOSTNAME = '<img src=x onerror="alert(1)">'


@dataclass
class Fleet:
    collector: LiveCollector
    dashboard: DashboardServer
    viewer: str  # a viewer credential, dpa_...
    failing_device: str  # fails 6.3.2 (public-wifi)
    passing_device: str
    windows_device: str
    all_devices: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.dashboard.url

    def store(self) -> Store:
        return self.collector.store()

    def credential(self, role: str = VIEWER, name: str = "Li Wei (IT)") -> str:
        return self.collector.credential(name, role)


def _wifi(report: pb.PostureReport, sessions: list[pb.WifiSession]) -> None:
    report.wifi.has_wifi_interface = True
    report.wifi.sessions.extend(sessions)


def _send(collector: LiveCollector, directory: Path, hostname: str,
          sessions: list[pb.WifiSession] | None = None,
          os_family: pb.OsFamily.ValueType = pb.OS_FAMILY_LINUX) -> str:  # fmt: skip
    agent = enroll_agent(collector, directory, hostname)
    device_id = agent.enrollment.device_id
    report = make_report(device_id)
    report.host.hostname = hostname
    report.host.os_family = os_family
    if sessions is not None:
        _wifi(report, sessions)
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, report)
    return device_id


def _past_weeks(store: Store, collector: LiveCollector, devices: int) -> None:
    """Records of the fleet at the end of each of the trend's past weeks, as `serve` keeps
    them (`Fleet.keep_fleet_days`): each check from its own start towards how it stands now,
    a trend with a line per check for the overview (and its screenshots)."""
    policy = policy_in_force(collector.config, store)
    zone = zone_of(policy)
    now = store.fleet.fleet_figures(policy, utcnow()).by_check
    moments = fleet_history.week_ends(utcnow(), zone)[:-1]
    days: dict[str, dict[str, dict[str, int]]] = {}
    for week, moment in enumerate(moments):
        day = fleet_history.day_ended_by(moment, zone)
        days[day] = {}
        for k, check in enumerate(policy.checks):
            start = min(devices, round(devices * (0.2 + 0.14 * k)))
            end = now[check.check_id]["PASS"]
            passing = round(start + (end - start) * (week + 1) / (len(moments) + 1))
            days[day][check.check_id] = {"PASS": passing, "FAIL": devices - passing}
    store.fleet.keep_fleet_days(days, utcnow())


@pytest.fixture(scope="package")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("web")
    now = utcnow()
    with running_collector(root / "collector") as collector:
        cafe = closed_session(PUBLIC_NETWORK, now - dt.timedelta(hours=3),
                              now - dt.timedelta(hours=2))  # fmt: skip
        office = closed_session("Office-5G", now - dt.timedelta(hours=5),
                                now - dt.timedelta(hours=4), public=False)  # fmt: skip
        failing = _send(collector, root / "cafe", "cafe-laptop", [cafe])
        passing = _send(collector, root / "office", "office-desktop", [office])
        windows = _send(collector, root / "win", "win-laptop", [], pb.OS_FAMILY_WINDOWS)
        others = [
            _send(collector, root / f"f{n}", NASTY_HOSTNAME if n == 0 else f"fleet-{n:02d}")
            for n in range(FILLER_DEVICES)
        ]
        credential = new_credential()
        store = collector.store()
        try:
            store.admin.add_credential(credential, "Wang Fang (audit)", VIEWER, utcnow())
            # An admin credential exists too: the dashboard must not need it.
            store.admin.add_credential(new_credential(), "Admin", ADMIN, utcnow())
            for device_id in (failing, windows):
                store.identity.set_device_group(device_id, FINANCE, utcnow())
            _past_weeks(store, collector, len(others) + 3)
        finally:
            store.close()
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            yield Fleet(collector, dashboard, str(credential), failing, passing, windows,
                        [failing, passing, windows, *others])  # fmt: skip
        finally:
            dashboard.stop()


@dataclass
class Small:
    """A fleet of three devices whose figures are known (see `small`)."""

    fleet: Fleet  # the conftest's shape, so that its HTTP helpers apply
    pc1: str
    pc2: str
    pc10: str
    unused_token: str  # the secret, which no page may show
    checks: list[str]


@pytest.fixture(scope="package")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Small]:
    """The dashboard for IT's fleet: `PC-10` fails 6.3.2 past its grace (a public Wi-Fi
    network without a VPN); `PC-2` has its firewall on and a waiver in force on each other
    check (fully compliant); `pc-1` reports its firewall only (its other checks UNKNOWN) and
    has one expired and one revoked waiver. Tokens: one per device (used up), one unused for
    研发部, one revoked."""
    root = tmp_path_factory.mktemp("it-pages")
    now = utcnow()
    with running_collector(root / "collector") as collector:
        cafe = closed_session("Airport-Free-WiFi", now - dt.timedelta(hours=3),
                              now - dt.timedelta(hours=2))  # fmt: skip
        pc10 = _send(collector, root / "pc10", "PC-10", [cafe])
        pc2 = _send(collector, root / "pc2", "PC-2", [])
        pc1 = _send(collector, root / "pc1", "pc-1")
        store = collector.store()
        try:
            policy = policy_in_force(collector.config, store)
            checks = [c.check_id for c in policy.checks]
            for n, check in enumerate(c for c in checks if c != "firewall"):
                store.waivers.add_waiver(Waiver(
                    f"w-pc2-{n}", pc2, check, "张伟", "测试机,只在内网使用", now,
                    now + dt.timedelta(days=30 + n),
                ), now)  # fmt: skip
            store.waivers.add_waiver(Waiver(
                "w-old", pc1, "antivirus", "Li Wei", "old exception", now - dt.timedelta(days=10),
                now - dt.timedelta(days=3),
            ), now)  # fmt: skip
            store.waivers.add_waiver(Waiver(
                "w-revoked", pc1, "firewall", "Li Wei", "granted by mistake", now,
                now + dt.timedelta(days=5),
            ), now)  # fmt: skip
            store.waivers.revoke_waiver("w-revoked", now, "granted by mistake")
            unused = new_token()
            store.identity.add_token(unused, now, now + dt.timedelta(days=7), 5, RESEARCH)
            revoked = new_token()
            store.identity.add_token(revoked, now, now + dt.timedelta(days=7), 5)
            store.identity.revoke_token(revoked.token_id, now)
        finally:
            store.close()
        viewer = collector.credential("Zhou (helpdesk)", VIEWER)
        dashboard = start_dashboard(collector.config, "127.0.0.1", 0)
        try:
            fleet = Fleet(collector, dashboard, viewer, pc10, pc2, pc1, [pc1, pc2, pc10])
            yield Small(fleet, pc1, pc2, pc10, str(unused), checks)
        finally:
            dashboard.stop()


# --- a small HTTP client (no redirects followed, cookies by hand) -------------------------


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def cookies(self) -> list[str]:
        return self.headers.get_all("set-cookie") or []


def fetch(fleet: Fleet, method: str, path: str, *, form: dict[str, str] | None = None,
          cookie: str | None = None, headers: dict[str, str] | None = None) -> Answer:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", fleet.dashboard.port, timeout=30)
    sent = dict(headers or {})
    body = None
    if form is not None:
        body = urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    if cookie is not None:
        sent["Cookie"] = cookie
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode("utf-8"))
    finally:
        connection.close()


def session_cookie(answer: Answer) -> str:
    for header in answer.cookies():
        match = re.match(r"(devposture_session=[^;]+)", header)
        if match:
            return match.group(1)
    raise AssertionError(f"no session cookie in {answer.cookies()}")


def login(fleet: Fleet, credential: str | None = None, *, lang: str | None = None) -> str:
    """Log in over HTTP; the session cookie to send back. The session reads the site's
    language (Chinese) unless `lang` chooses, as the login page's switch does."""
    path = "/login" if lang is None else f"/login?lang={lang}"
    answer = fetch(fleet, "POST", path, form={"credential": credential or fleet.viewer})
    assert answer.status == 303, answer.text
    return session_cookie(answer)


def device_links(html: str) -> list[str]:
    return re.findall(r'href="/devices/([0-9a-f]+)(?:#[a-z-]+)?" class="device-link"', html)
