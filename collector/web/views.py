"""What each dashboard page shows, from the store and the policy in force.

Fleet-wide pages read the current verdicts in SQL, the same way the CLI's reports do, so the
dashboard and `report fleet` never disagree: the overview's counts and the failing-longest page
through `collector.reports` (`fleet_counts`), the device list through `collector.store.device_list`
(the matching devices' ids in one pass, then the standings of one page's devices). Each result
is cached: reused while the database is unchanged (SQLite's `data_version`), and at most
`FRESH_SECONDS` old when reports keep arriving, so turning the pages of a listing reads the
fleet once. The trend (the fleet at each of the last 8 week ends, and now) is cached alike: up
to 10 minutes while nothing changes, `FRESH_SECONDS` while reports arrive.

A device page reads only that device, by index (`collector.store.device_pages`), and judges it from
its history with `compliance.standings`; a device that left the fleet is not judged, its page
shows its last verdicts as history (`left_fleet`).

Every method runs on the dashboard's one database thread (`app.py`).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import TypeVar

from devposture.collector import fleet_history
from devposture.collector.clock import utcnow
from devposture.collector.company_time import zone_of
from devposture.collector.compliance import STATES, Change, DeviceSeen, Standing, Waiver, standings
from devposture.collector.config import CollectorConfig
from devposture.collector.issuing_ca import ca_generations, short_fingerprint
from devposture.collector.policy import policy_in_force
from devposture.collector.render import Row
from devposture.collector.reports import fleet_rows
from devposture.collector.store import Store, device_pages
from devposture.collector.store.dashboard_reads import FailingWanted, Headline
from devposture.collector.store.device_list import NOT_PASSING, DeviceFilter, ListedDevice
from devposture.collector.web import auth, sorting
from devposture.collector.web.charts import Series
from devposture.collector.web.failing_rows import failing_page_rows
from devposture.collector.web.left_fleet import LeftFleet, last_verdicts, left_fleet
from devposture.collector.web.side_reads import SideReader
from devposture.policy import CheckSpec, Clause, Policy
from devposture.v1 import devposture_pb2 as pb

PAGE_SIZE = 50
REPORTS_SHOWN = 50
WEEKS = fleet_history.WEEKS
# A cached fleet view is reused while the database is unchanged, and for at least this long
# when it is changing (every report changes it); never for longer than STALE_AFTER_SECONDS.
FRESH_SECONDS = 5.0
STALE_AFTER_SECONDS = 60.0
TREND_SECONDS = 600.0

T = TypeVar("T")


@dataclass
class _Cached:
    value: object
    made: float
    version: int
    policy: Policy


# Every check PASS or EXEMPT (and heard from): the overview's "fully compliant" figure's
# devices, listed as the devices matching the other filters that are not NOT_PASSING.
COMPLIANT = "COMPLIANT"


@dataclass(frozen=True)
class Filters:
    """The device list's filters as the page's form sends them, the order, and the page."""

    q: str = ""
    check: str = ""
    state: str = ""
    os: str = ""
    group: str = ""
    stale: bool = False
    page: int = 1
    sort: sorting.Sort = field(default_factory=sorting.Sort)

    def wanted(self) -> DeviceFilter:
        """The store's filter (COMPLIANT is told apart by `Views`: see `_matching`)."""
        state = NOT_PASSING if self.state == COMPLIANT else self.state
        return DeviceFilter(text=self.q, check="" if self.state == COMPLIANT else self.check,
                            state=state, os_family=self.os, group=self.group,
                            stale=self.stale)  # fmt: skip

    @classmethod
    def of_query(cls, q: Mapping[str, str], page: int = 1) -> Filters:
        """The filters of the device list's query string (the page, and its downloads)."""
        state = q.get("state", "")
        return cls(
            q=q.get("q", "").strip()[:200], check=q.get("check", ""),
            state=state if state in (*STATES, NOT_PASSING, COMPLIANT) else "",
            os=q.get("os", ""), group=q.get("group", "").strip()[:64],
            stale=q.get("stale") == "1", page=page, sort=sorting.Sort.of_query(q),
        )  # fmt: skip


@dataclass(frozen=True)
class FailingFilters:
    """Failing-longest's filters: a check (or `clause:ID`, each of its checks), a group, a
    minimum number of days failing; and the page."""

    check: str = ""
    group: str = ""
    min_days: float = 0.0
    page: int = 1

    @classmethod
    def of_query(cls, q: Mapping[str, str], page: int = 1) -> FailingFilters:
        try:
            days = float(q.get("min_days", "") or 0)
        except ValueError:
            days = 0.0
        days = days if math.isfinite(days) else 0.0
        return cls(q.get("check", "")[:100], q.get("group", "").strip()[:64],
                   min(max(days, 0.0), 36_500.0), page)  # fmt: skip

    def wanted(self, policy: Policy) -> FailingWanted:
        if self.check.startswith("clause:"):
            clause = self.check.removeprefix("clause:")
            checks = tuple(c.check_id for c in policy.checks if c.clause == clause) or ("",)
        else:
            checks = (self.check,) if self.check else ()
        return FailingWanted(checks, self.group, self.min_days)


@dataclass(frozen=True)
class Trend:
    """The pass rate of each check at each week's end (`Views.trend_points`)."""

    moments: list[dt.datetime]
    series: list[Series]  # named by check id, in the policy's order


@dataclass(frozen=True)
class Overview:
    at: dt.datetime
    policy: Policy
    rows: list[Row]
    devices: int
    trend: Trend
    headline: Headline
    group: str = ""  # the counts are of this group's devices ("": the whole fleet)
    groups: list[str] = field(default_factory=list)  # the groups to choose from


@dataclass(frozen=True)
class DeviceList:
    at: dt.datetime
    policy: Policy
    filters: Filters
    rows: list[ListedDevice]
    total: int
    page: int
    pages: int
    os_families: list[str]
    groups: list[str]


@dataclass(frozen=True)
class FailingPage:
    at: dt.datetime
    policy: Policy
    rows: list[Row]
    total: int
    page: int
    pages: int
    filters: FailingFilters = field(default_factory=FailingFilters)
    groups: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineEntry:
    state: str
    since: dt.datetime
    until: dt.datetime | None
    hours: float
    reason: str


@dataclass(frozen=True)
class WifiSessionView:
    network: str
    classification: str
    started: dt.datetime | None
    ended: dt.datetime | None
    vpn_at: dt.datetime | None
    vpn_up: bool


@dataclass(frozen=True)
class CheckView:
    spec: CheckSpec
    clause: Clause
    standing: Standing
    verdict: device_pages.Verdict | None
    waivers: list[Waiver]
    timeline: list[TimelineEntry]
    wifi_sessions: list[WifiSessionView] = field(default_factory=list)
    # The device has left the fleet: `standing` is its last verdict, kept as history.
    history_only: bool = False

    @property
    def needs_remedy(self) -> bool:
        return self.standing.state != "PASS" and not self.history_only


@dataclass(frozen=True)
class DevicePage:
    at: dt.datetime
    policy: Policy
    device_id: str
    hostname: str
    os_family: str
    group: str
    enrolled_at: dt.datetime
    last_report_at: dt.datetime | None
    status: str
    checks: list[CheckView]
    reports: list[device_pages.ReceivedReport]
    reports_total: int
    waivers: list[Waiver]
    left: LeftFleet | None = None  # how it left the fleet, if IT revoked or retired it
    # Its certificate in use: when it expires and which CA signed it (schema 28), named as
    # `device show` names it ("CA 2 (sha256:3f2a9c1e…)"): during a CA rollover, whether it
    # still holds the previous CA's. None: not recorded (issued before schema 28).
    certificate_expires_at: dt.datetime | None = None
    certificate_ca: str | None = None  # the short fingerprint
    certificate_ca_generation: int | None = None  # None: a CA this data folder does not hold


class PolicyUnavailable(Exception):
    """The policy in force cannot be read; the message says why."""


class Views:
    """The dashboard's reads. Not thread-safe: call from one thread."""

    def __init__(
        self, config: CollectorConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._reader = Store.open_reader(config.database)
        self._side = SideReader(config)
        self._writer: Store | None = None
        self._sessions: auth.Sessions | None = None
        self._cache: dict[str, _Cached] = {}

    def prepare(self) -> None:
        """Open the second reader's connection too (the first is open already)."""
        self._side.submit(lambda store: None).result()

    def close(self) -> None:
        self._side.close()
        self._reader.close()
        if self._writer is not None:
            self._writer.close()

    # --- credentials and the audit log ---------------------------------------------------

    @property
    def store(self) -> Store:
        """A store to read credentials from (read-only)."""
        return self._reader

    @property
    def sessions(self) -> auth.Sessions:
        """The dashboard's sessions, kept in the database (every collector knows them)."""
        if self._sessions is None:
            self._sessions = auth.Sessions(backend=auth.StoredSessions(self.writer()))
        return self._sessions

    def writer(self) -> Store:
        """The store the audit entries go to (opened on first use)."""
        if self._writer is None:
            self._writer = Store.open(self._config.database)
        return self._writer

    def credential_active(self, credential_id: str) -> bool:
        return self._reader.admin.credential_active(credential_id)

    # --- the policy and caching ----------------------------------------------------------

    def policy(self) -> Policy:
        from devposture.policy import PolicyError  # noqa: PLC0415

        try:
            return policy_in_force(self._config, self._reader)
        except (PolicyError, OSError) as exc:
            raise PolicyUnavailable(str(exc)) from exc

    def _reusable(self, name: str, policy: Policy, longest: float) -> _Cached | None:
        """The cached result by that name, if it may be reused now."""
        now, version = self._clock(), self._reader.data_version()
        found = self._cache.get(name)
        if found is not None and found.policy == policy:
            age = now - found.made
            unchanged = found.version == version
            if age < FRESH_SECONDS or (unchanged and age < longest):
                return found
        return None

    def _cached(self, name: str, policy: Policy, longest: float, make: Callable[[], T]) -> T:
        found = self._reusable(name, policy, longest)
        if found is not None:
            return found.value  # type: ignore[return-value]
        now, version = self._clock(), self._reader.data_version()
        value = make()
        self._cache[name] = _Cached(value, now, version, policy)
        return value

    # --- fleet pages ---------------------------------------------------------------------

    def _matching(self, policy: Policy, filters: Filters) -> tuple[dt.datetime, list[str]]:
        """The ids of the devices matching the filters (in host-name order), cached as a
        fleet view is, so turning the pages of one listing reads the fleet once. COMPLIANT:
        the devices matching the other filters that are not NOT_PASSING on any check."""
        wanted = filters.wanted()

        def make(of: DeviceFilter) -> Callable[[], tuple[dt.datetime, list[str]]]:
            def read() -> tuple[dt.datetime, list[str]]:
                at = utcnow()
                return at, self._reader.device_list.matching(policy, at, of)

            return read

        if filters.state != COMPLIANT:
            return self._cached(f"devices {wanted!r}", policy, STALE_AFTER_SECONDS, make(wanted))
        at, bad = self._cached(f"devices {wanted!r}", policy, STALE_AFTER_SECONDS, make(wanted))
        every = replace(wanted, state="")
        _, ids = self._cached(f"devices {every!r}", policy, STALE_AFTER_SECONDS, make(every))
        needing = set(bad)
        return at, [d for d in ids if d not in needing]

    def ordered_ids(self, filters: Filters) -> tuple[Policy, dt.datetime, list[str]]:
        """The matching devices' ids in the order asked for (`sorting`): every device's
        order read from the store (cached as a fleet view is), the matching kept."""
        policy = self.policy()
        sort = filters.sort
        if sort.check and policy.check(sort.check) is None:
            sort = sorting.Sort()
        column = sort.check or sort.column

        def make() -> tuple[dt.datetime, list[str]]:
            at = utcnow()
            return at, self._reader.dashboard.ordered(policy, at, column, sort.descending)

        at, order = self._cached(f"order {sort!r}", policy, STALE_AFTER_SECONDS, make)
        if filters.wanted() == DeviceFilter():  # every device: the order is the listing
            return policy, at, order
        at, matching = self._matching(policy, filters)
        return policy, at, sorting.in_order(matching, order)

    def overview(self, group: str = "") -> Overview:
        """The fleet's counts per check and its headline figures (of one group's devices when
        `group` is given; the trend is always the whole fleet's: the daily records are kept
        for the fleet)."""
        policy = self.policy()
        key = f"headline {group!r}"
        pending: Future[Headline] | None = None
        if self._reusable(key, policy, STALE_AFTER_SECONDS) is None:
            # Read on the second reader while this thread counts the fleet (`side_reads`).
            now = utcnow()
            pending = self._side.submit(lambda s: s.dashboard.headline(policy, now, 0, group))

        def count(store: Store) -> tuple[dt.datetime, list[Row], int]:
            at = utcnow()
            rows = fleet_rows(store, policy, at, current=True)
            return at, rows, store.reports.device_count()

        whole: Future[tuple[dt.datetime, list[Row], int]] | None = None
        if group:
            if self._reusable("fleet", policy, STALE_AFTER_SECONDS) is None:
                # The whole fleet's count (for the trend) on the second reader too, while
                # this thread counts the group's devices.
                whole = self._side.submit(count)

            def of_group() -> tuple[dt.datetime, list[Row]]:
                now = utcnow()
                return now, fleet_rows(self._reader, policy, now, current=True, group=group)

            group_at, group_rows = self._cached(
                f"fleet {group!r}", policy, STALE_AFTER_SECONDS, of_group
            )
        at, rows, devices = self._cached(
            "fleet", policy, STALE_AFTER_SECONDS,
            lambda: whole.result() if whole is not None else count(self._reader),
        )  # fmt: skip
        trend = self._cached("trend", policy, TREND_SECONDS,
                             lambda: Trend(*self.trend_points(policy, at, rows)))  # fmt: skip
        if group:
            at, rows = group_at, group_rows
            devices = int(str(rows[0]["devices"])) if rows else 0
        stale = int(str(rows[0]["stale"])) if rows else 0

        def figures() -> Headline:
            found = (pending.result() if pending is not None
                     else self._reader.dashboard.headline(policy, at, 0, group))  # fmt: skip
            return replace(found, stale=stale)

        headline = self._cached(key, policy, STALE_AFTER_SECONDS, figures)
        groups = self._reader.device_list.groups()
        return Overview(at, policy, rows, devices, trend, headline, group, groups)

    def trend_points(
        self, policy: Policy, at: dt.datetime, now_rows: list[Row] | None = None
    ) -> tuple[list[dt.datetime], list[Series]]:
        """The pass rate of each check at the end of each of the last `WEEKS` weeks (the
        last point is `at`): the week end's mark where `serve` has counted it (a local
        midnight, exactly: store/fleet_marks), else how its last day was recorded. A week
        whose end has neither yet is a gap (None): `serve` counts it from the history when
        it starts (`collector.fleet_history`); no page waits for that."""
        zone = zone_of(policy)
        moments = fleet_history.week_ends(at, zone, WEEKS)
        rates: dict[str, list[float | None]] = {c.check_id: [] for c in policy.checks}
        days = self._reader.fleet.fleet_days()
        for moment in moments:
            ended = fleet_history.day_ended_by(moment, zone)
            mark = None if moment is moments[-1] else self._reader.fleet.marked(policy, moment)
            if moment is moments[-1]:  # now: the overview's own counts, when it has them
                rows = now_rows or fleet_rows(self._reader, policy, at, current=True)
            elif mark is not None:  # the week end itself, as `serve` counted it once
                rows = _day_rows(policy, mark)
            elif ended in days:
                rows = _day_rows(policy, days[ended])
            else:
                rows = [{"check": c.check_id, "devices": 0, "pass": 0} for c in policy.checks]
            for row in rows:
                devices, passing = row["devices"], row["pass"]
                assert isinstance(devices, int) and isinstance(passing, int)
                rates[str(row["check"])].append(100 * passing / devices if devices else None)
        series = [Series(c.check_id, rates[c.check_id]) for c in policy.checks]
        return moments, series

    def device_list(self, filters: Filters) -> DeviceList:
        policy, at, matching = self.ordered_ids(filters)
        pages = max(1, math.ceil(len(matching) / PAGE_SIZE))
        page = min(max(1, filters.page), pages)
        shown = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        rows = self._reader.device_list.listed(policy, at, shown)
        return DeviceList(
            at, policy, filters, rows, len(matching), page, pages,
            self._reader.device_list.os_families(), self._reader.device_list.groups(),
        )  # fmt: skip

    def failing(self, filters: FailingFilters) -> FailingPage:
        """One page of the failures past their grace that the filters select, the longest
        first: the count and the page in SQL (`store.dashboard`), so the page costs the same
        with 100 or 100,000 failures."""
        policy = self.policy()
        at = utcnow()
        wanted = filters.wanted(policy)
        if wanted == FailingWanted():  # the whole list: counted from the fleet's figures
            count = lambda: self._reader.fleet.failing_count(policy, at)  # noqa: E731
        else:
            count = lambda: self._reader.dashboard.failing_count(policy, at, wanted)  # noqa: E731
        total = self._cached(f"failing {wanted!r}", policy, STALE_AFTER_SECONDS, count)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(max(1, filters.page), pages)
        found = self._reader.dashboard.failing(
            policy, at, wanted, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        rows = failing_page_rows(policy, at, found)
        groups = self._reader.device_list.groups()
        return FailingPage(at, policy, rows, total, page, pages, filters, groups)

    # --- one device ----------------------------------------------------------------------

    def device(self, device_id: str) -> DevicePage | None:
        policy = self.policy()
        info = self._reader.identity.device(device_id)
        at = utcnow()
        if info is None or info.enrolled_at > at:
            return None
        seen = DeviceSeen(
            info.device_id, info.hostname, info.os_family, info.enrolled_at, info.last_report_at
        )
        # A device that left the fleet: its history up to then, its last verdicts.
        left = left_fleet(info, at)
        ended = None if left is None else left.at
        history = self._reader.device_pages.changes(device_id, ended or at)
        waivers = [w for w in self._reader.waivers.recorded() if w.device_id == device_id]
        verdicts = self._reader.device_pages.verdicts(device_id)
        current = {(device_id, c): (v.state, v.reason) for c, v in verdicts.items()}
        judged = (
            {s.check_id: s
             for s in standings([seen], history, policy, at, waivers, current=current)}
            if left is None else last_verdicts(device_id, history, policy, verdicts, left)
        )  # fmt: skip
        checks: list[CheckView] = []
        for spec in policy.checks:
            verdict = verdicts.get(spec.check_id)
            sessions = (
                self._wifi_sessions(verdict.report_id)
                if spec.check_id == "public-wifi" and verdict is not None
                else []
            )
            checks.append(CheckView(
                spec=spec, clause=policy.clause(spec.clause), standing=judged[spec.check_id],
                verdict=verdict, waivers=[w for w in waivers if w.check_id == spec.check_id],
                timeline=_timeline([c for c in history if c[1] == spec.check_id], at, ended),
                wifi_sessions=sessions, history_only=left is not None,
            ))  # fmt: skip
        received, total = self._reader.device_pages.reports(device_id, REPORTS_SHOWN)
        return DevicePage(
            at=at, policy=policy, device_id=info.device_id, hostname=info.hostname,
            os_family=info.os_family, group=info.group, enrolled_at=info.enrolled_at,
            last_report_at=info.last_report_at, status=info.status, checks=checks,
            reports=received, reports_total=total, waivers=waivers, left=left,
            certificate_expires_at=info.certificate_expires_at,
            certificate_ca=None if info.issuer is None else short_fingerprint(info.issuer),
            certificate_ca_generation=(
                None if info.issuer is None
                else ca_generations(self._config.ca_cert.parent).get(info.issuer)
            ),
        )  # fmt: skip

    def _wifi_sessions(self, report_id: str) -> list[WifiSessionView]:
        """The Wi-Fi sessions the verdict's report carried: the facts behind 6.3.2."""
        body = self._reader.device_pages.report_body(report_id)
        if body is None:
            return []
        try:
            report = pb.PostureReport.FromString(body)
        except Exception:  # a stored body was validated; never fail the page on one
            return []
        if not report.HasField("wifi"):
            return []

        def moment(has: bool, value: object) -> dt.datetime | None:
            return value.ToDatetime(dt.UTC) if has else None  # type: ignore[attr-defined]

        return [
            WifiSessionView(
                network=s.network_id,
                classification=pb.NetworkClass.Name(s.classification).removeprefix(
                    "NETWORK_CLASS_"
                ),
                started=moment(s.HasField("started_at"), s.started_at),
                ended=moment(s.HasField("ended_at"), s.ended_at),
                vpn_at=moment(s.HasField("vpn_up_at"), s.vpn_up_at),
                vpn_up=s.vpn_up,
            )
            for s in report.wifi.sessions
        ]


def trend_days(moments: list[dt.datetime], zone: dt.tzinfo) -> list[dt.date]:
    """The local day each of the trend's points closes, which labels it: a week's end (Monday
    00:00) is labelled with the Sunday that ended then, the week's last day ("week ending
    11-29", "截至 11-29"), as the daily records that hold it are keyed
    (`fleet_history.day_ended_by`); the last point, now, with today. The Monday's own date
    read as a week ending a day later in English, and in Chinese as up to and including a
    day that the point holds nothing of."""
    return [dt.date.fromisoformat(fleet_history.day_ended_by(m, zone)) for m in moments]


def _timeline(
    mine: list[Change], at: dt.datetime, ended: dt.datetime | None = None
) -> list[TimelineEntry]:
    """Each state of one check from when until when, newest first (as `report history`);
    none for a check without history (a device enrolled that has not reported yet). The last
    state holds until now, or until `ended`, when the device left the fleet."""
    if not mine:
        return []
    out: list[TimelineEntry] = []
    for current, following in zip(mine, [*mine[1:], None], strict=True):
        until = following[4] if following is not None else ended
        hours = round(((until or at) - current[4]).total_seconds() / 3600, 1)
        out.append(TimelineEntry(current[2], current[4], until, hours, current[3]))
    return out[::-1]


__all__ = [
    "COMPLIANT", "NOT_PASSING", "STATES", "DeviceList", "DevicePage", "FailingFilters",
    "Filters", "Overview", "Trend", "Views", "trend_days",
]  # fmt: skip


def _day_rows(policy: Policy, day: dict[str, dict[str, int]]) -> list[Row]:
    """A recorded day as the rows fleet_rows gives (devices and passing per check)."""
    rows: list[Row] = []
    for check in policy.checks:
        per_state = day.get(check.check_id, {})
        rows.append({
            "check": check.check_id, "devices": sum(per_state.values()),
            "pass": per_state.get("PASS", 0),
        })  # fmt: skip
    return rows
