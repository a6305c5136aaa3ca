"""The figures of the printable audit report, folded from the bundle's records one at a time.

A quarter of a fleet is millions of records; the report is read by people. So the exporter
and the verifier feed every record through one `Summary` as they stream the bundle, and the
summary keeps only what is bounded by the fleet (each device's standing per check, its last
report, the waivers that ran) and by the number of weeks: never a list of the period's
records. The detail stays in the machine-readable members.

What it works out, in the company's time zone (`context["time_zone"]`, a fixed UTC offset so
that every machine redraws the same bytes):

* per clause and device group, the share of devices compliant at the end of each week: every
  check of the clause PASS or EXEMPT by the standing rule (`standing_rule.decide`: a device
  silent past the policy's window is STALE, a waiver in force makes a check EXEMPT, a failure
  within its grace period is GRACE), among the devices heard from by then and not revoked or
  retired;
* per device and check, how long it failed past its grace period within the period (waived
  time not counted), from the verdicts;
* the waivers in force at any time in the period, reports and devices heard per week, and
  counts of identity events and admin actions.

Pure: no database, no clock (the verifier runs it on an auditor's machine).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devposture.collector.evidence import fact_groups
from devposture.collector.evidence.chain import (
    ADMIN,
    DEVICE,
    REPORT,
    REPORT_GROUP,
    STATE,
    WAIVER,
    Entry,
    group_records,
)
from devposture.collector.evidence.opening import GONE
from devposture.collector.standing_rule import Facts, decide, in_fleet
from devposture.policy.time_zone import company_zone

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
COMPLIANT = ("PASS", "EXEMPT")
# The report layout (`html.LAYOUT`) from which reports count in the week they were received.
RECEIPT_LAYOUT = 5
# The layout from which a device that left the fleet at a week's very end counts in it no more
# (`standing_rule.in_fleet`), however late its chain entry came.
LEAVING_LAYOUT = 6


@functools.lru_cache(maxsize=256)  # bounded: an edited chain may name any state
def _decided(silent: bool, waived: bool, latest: str | None, in_grace: bool) -> str:
    """The standing rule (`decide`) for these facts, decided once per distinct set: the week's
    close asks it for every device and check (ten thousand devices, a quarter: a million
    times), of a few dozen distinct answers."""
    return decide(Facts(silent=silent, waived=waived, latest=latest, in_grace=in_grace))


ALL_DEVICES = ""  # the key of the whole fleet's row (device groups are never empty names)
_FOREVER = 1 << 62  # a close's finding that no time alone changes


@dataclass(frozen=True)
class Zone:
    """The company's time zone as a fixed offset (China keeps no daylight saving time)."""

    name: str
    offset_minutes: int

    @property
    def tzinfo(self) -> dt.timezone:
        return dt.timezone(dt.timedelta(minutes=self.offset_minutes))

    def label(self) -> str:
        hours, minutes = divmod(abs(self.offset_minutes), 60)
        sign = "+" if self.offset_minutes >= 0 else "-"
        return f"UTC{sign}{hours:02d}:{minutes:02d}"

    def moment(self, micros: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(micros / 1_000_000, self.tzinfo)


BEIJING = Zone("Asia/Shanghai", 480)


def fixed_zone(name: str, at: dt.datetime) -> Zone:
    """The policy's zone `name` as the fixed offset it has at `at` (the period's start): what
    the export records in the bundle's context, so that every verifier redraws the same bytes
    whatever its own time zone database. A zone with daylight saving time keeps the period
    start's offset for the whole report."""
    offset = at.astimezone(company_zone(name)).utcoffset() or dt.timedelta()
    return Zone(name, int(offset.total_seconds()) // 60)


def zone_of(context: Mapping[str, Any]) -> Zone:
    value = context.get("time_zone")
    if not isinstance(value, Mapping):
        return BEIJING
    return Zone(str(value.get("name", "")), int(value.get("utc_offset_minutes", 0)))


def weeks_of(from_us: int, to_us: int, zone: Zone) -> list[tuple[int, int]]:
    """The period cut at each Monday 00:00 local time: (start, end) of each week in it, the
    first and last possibly partial."""
    start = zone.moment(from_us)
    monday = (start - dt.timedelta(days=start.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    out: list[tuple[int, int]] = []
    begin = from_us
    cut = monday + dt.timedelta(days=7)
    while begin < to_us:
        end = min(int(cut.timestamp() * 1_000_000), to_us)
        out.append((begin, end))
        begin, cut = end, cut + dt.timedelta(days=7)
    return out


@dataclass(slots=True)
class Verdict:
    """A device's last state on a check. Its words are interned (`Summary._apply`): a
    quarter's fleet holds 60,000 of them at once, each parsed from its own payload."""

    state: str
    since_us: int
    reason: str


@dataclass
class PastGrace:
    """One device's failures on one check past their grace period, within the period."""

    device_id: str
    check_id: str
    past_us: int = 0
    first_past_us: int | None = None
    episodes: int = 0
    reason: str = ""


@dataclass
class WaiverSpan:
    waiver_id: str
    device_id: str
    check_id: str
    owner: str
    reason: str
    created_us: int
    expires_us: int
    revoked_us: int | None = None

    def end_us(self) -> int:
        return self.expires_us if self.revoked_us is None else min(self.expires_us,
                                                                   self.revoked_us)  # fmt: skip

    def active(self, at_us: int) -> bool:
        return self.created_us <= at_us < self.end_us()


@dataclass
class Week:
    start_us: int
    end_us: int
    reports: int = 0
    devices_heard: int = 0
    assessed: dict[str, int] = field(default_factory=dict)  # group -> devices counted
    stale: dict[str, int] = field(default_factory=dict)  # group -> silent past the window
    # (clause, group) -> devices compliant with every check of the clause
    compliant: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class Heard:
    """A run's reports folded for the figures (`Summary.add_heard`) where the run was read,
    the week of each report's receipt by the period's week ends (`Summary.week_ends`): what
    a million reports' `(device, received)` pairs were, each pickled between processes."""

    at_us: int  # when the first of their groups was written
    counts: dict[int, int] = field(default_factory=dict)  # week received -> reports
    # week received -> devices, for the weeks a report still counts its device in (the
    # week its group was written in and the week before: layout 5, the only one it serves)
    devices: dict[int, set[str]] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)  # device -> its last report received

    def add(self, ends: list[int], written_week: int, device: str, received: int) -> None:
        week = bisect.bisect_right(ends, received)
        self.counts[week] = self.counts.get(week, 0) + 1
        if week >= written_week - 1:
            self.devices.setdefault(min(week, written_week), set()).add(device)
        self.last[device] = received

    def add_all(
        self, ends: list[int], written_week: int, devices: Sequence[Any], received: Sequence[Any]
    ) -> None:  # fmt: skip
        """`add` of each (device, received) of a group in turn: where all fall in one week,
        as a fleet's groups do but at a week's turn, by a few calls over the lists."""
        if not devices:
            return
        week = bisect.bisect_right(ends, min(received))
        if week != bisect.bisect_right(ends, max(received)):
            for device, at in zip(devices, received, strict=True):
                self.add(ends, written_week, device, at)
            return
        self.counts[week] = self.counts.get(week, 0) + len(devices)
        if week >= written_week - 1:
            self.devices.setdefault(min(week, written_week), set()).update(devices)
        self.last.update(zip(devices, received, strict=True))


class Summary:
    """Fold the opening records, then the period's records in sequence order; `finish` at
    the end. The same records give the same figures, byte for byte once drawn."""

    def __init__(self, header: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        period = header.get("period", {})
        self.from_us = int(period.get("from_us", 0))
        self.to_us = int(period.get("to_us", self.from_us))
        self.zone = zone_of(context)
        self.stale_us = int(context.get("stale_after_hours", 0)) * HOUR_US
        checks: list[Mapping[str, Any]] = list(context.get("checks", []))
        self.grace_us = {str(c["check_id"]): int(c.get("grace_hours", 0)) * HOUR_US
                         for c in checks}  # fmt: skip
        self.clause_checks: dict[str, list[str]] = {}
        for c in checks:
            self.clause_checks.setdefault(str(c["clause"]), []).append(str(c["check_id"]))
        self.groups: Mapping[str, str] = context.get("groups", {})
        self.weeks = [Week(a, b) for a, b in weeks_of(self.from_us, self.to_us, self.zone)]
        self._week = 0
        # Layout 5 on: a report counts in the week it was received, not in the week its group
        # was sealed (up to half a minute later, hours after a clock set back): one received
        # at 23:59:50 on a Sunday was the next week's. Layout 4 counted by the seal.
        layout = int(header.get("report_layout", RECEIPT_LAYOUT))
        self.by_receipt = layout >= RECEIPT_LAYOUT
        # Layout 6 on: who counts at a week's end is decided by `in_fleet` (a device that left
        # at that very moment is out), and a leaving chained after the week was closed, dated
        # by then, is taken back out of it (`_closed`). Layout 5 counted both.
        self.by_rule = layout >= LEAVING_LAYOUT
        # What each device added to the week closed last (layout 6): its rows, its silence and
        # the clauses it complied with, to take back a device whose leaving comes late.
        self._closed: dict[str, tuple[tuple[str, ...], bool, tuple[str, ...]]] = {}
        self._rows_of: dict[str, tuple[str, ...]] = {}  # a device's rows: the fleet, its group
        self._ends = [w.end_us for w in self.weeks]
        self._heard_before: set[str] = set()  # the week before the current one's (layout 5)
        self.last_report: dict[str, int] = {}
        self.gone: dict[str, int] = {}
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        self.waivers: dict[str, WaiverSpan] = {}
        self._waived: dict[tuple[str, str], list[WaiverSpan]] = {}
        self._waived_devices: set[str] = set()
        # What a week's close found of each device, to be taken as it is at the next close
        # while nothing it depends on changed (`_complied`): how many of its verdicts had been
        # set, whether it was silent, until when it holds (a grace period's end), and the
        # clauses it complied with. A steady fleet's device is then a few look-ups a week
        # instead of its standing for every check (a quarter of 10,000 devices: 780,000).
        self._verdicts_set: dict[str, int] = {}
        self._complied_then: dict[str, tuple[int, bool, int, tuple[str, ...]]] = {}
        self.past_grace: dict[tuple[str, str], PastGrace] = {}
        self.device_events: dict[str, int] = {}
        self.admin_actions: dict[tuple[str, str], int] = {}
        self._heard: set[str] = set()
        self.finished = False

    # --- feeding ---------------------------------------------------------------------------

    def opening(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._fold(entry, in_period=False)

    def add(self, entry: Entry) -> None:
        """Fold an entry of the period (a report group as each of its reports)."""
        self._reach(entry.at_us)
        self._fold(entry, in_period=True)

    def week_ends(self) -> list[int]:
        """When each week of the period ends: what `Heard.add` needs to fold reports."""
        return list(self._ends)

    def add_heard(self, heard: Heard) -> None:
        """Fold reports of the period as a run's reports folded elsewhere (`Heard`, perhaps
        in a worker process): the same figures as each report's `_report` in turn, their
        groups being the first entries of the week `heard.at_us` falls in."""
        if not self.by_receipt:
            raise ValueError("reports folded elsewhere count in the week received (layout 5)")
        self._reach(heard.at_us)
        self.last_report.update(heard.last)
        if self._week >= len(self.weeks):
            return
        current = self._week
        for week, count in heard.counts.items():
            self.weeks[min(week, current)].reports += count
        for week, devices in heard.devices.items():
            if min(week, current) == current:
                self._heard |= devices
            elif week == current - 1:
                self._heard_before |= devices

    def _reach(self, at_us: int) -> None:
        while self._week < len(self.weeks) and at_us >= self.weeks[self._week].end_us:
            self._close_week()

    def _fold(self, entry: Entry, *, in_period: bool) -> None:
        if entry.kind == REPORT_GROUP:  # its reports' two columns, folded together
            records = group_records(entry)
            self.fold_reports([r["device_id"] for r in records],
                              [r["received_us"] for r in records], in_period=in_period)  # fmt: skip
        elif entry.kind == fact_groups.REPORT_FACTS:  # format 5: the two columns as they are
            found = fact_groups.columns(entry)
            self.fold_reports(found["device_id"], found["received_us"], in_period=in_period)
        else:
            self._apply(entry, record=entry.record(), in_period=in_period)

    def fold_reports(
        self, devices: Sequence[Any], received: Sequence[Any], *, in_period: bool
    ) -> None:  # fmt: skip
        """`_report` of each (device, received) in turn, for a group's reports (a group
        entry's records, or format 5's columns, `fact_groups`): where every report falls in
        the current week, as a fleet's groups do but at a week's turn, folded by a few calls
        over the lists instead of one a report (the figures were about a fifth of a
        quarter's verify, read per report)."""
        names = list(map(str, devices))
        times = list(map(int, received))  # ValueError or TypeError for an edited column
        if len(names) != len(times):
            raise ValueError("a group's device and time columns differ in length")
        self.last_report.update(zip(names, times, strict=True))
        if not in_period or self._week >= len(self.weeks) or not names:
            return
        start = self._ends[self._week - 1] if self._week else None
        if not self.by_receipt or start is None or min(times) >= start:
            self.weeks[self._week].reports += len(names)
            self._heard.update(names)
            return
        for device, at in zip(names, times, strict=True):
            self._report({"device_id": device, "received_us": at}, in_period=True)

    def _report(self, record: Mapping[str, Any], *, in_period: bool) -> None:
        device = str(record["device_id"])
        received = int(record["received_us"])
        self.last_report[device] = received
        if not in_period or self._week >= len(self.weeks):
            return
        week = self._week
        if self.by_receipt:
            week = min(max(bisect.bisect_right(self._ends, received), 0), self._week)
        self.weeks[week].reports += 1
        if week == self._week:
            self._heard.add(device)
        elif week == self._week - 1:
            self._heard_before.add(device)

    def finish(self) -> None:
        while self._week < len(self.weeks):
            self._close_week()
        self._count_heard_before()
        for key, verdict in self.verdicts.items():
            if verdict.state == "FAIL":
                self._failed(key, verdict, self.to_us)
        self.finished = True

    def _apply(self, entry: Entry, *, record: Mapping[str, Any], in_period: bool) -> None:
        kind = entry.kind
        if kind == REPORT:
            self._report(record, in_period=in_period)
        elif kind == STATE:
            # Interned: each state change is a payload parsed on its own, and the verdicts
            # held (a device's last on each check) kept its strings alive, 20 MB of them for
            # the 10,000-device daily quarter, past the export's 300 MB with its workers.
            key = (sys.intern(str(record["device_id"])), sys.intern(str(record["check_id"])))
            since = int(record["since_us"])
            before = self.verdicts.get(key)
            if before is not None and before.state == "FAIL":
                self._failed(key, before, since)
            self.verdicts[key] = Verdict(sys.intern(str(record["state"])), since,
                                         sys.intern(str(record["reason"])))  # fmt: skip
            self._verdicts_set[key[0]] = self._verdicts_set.get(key[0], 0) + 1
        elif kind == WAIVER:
            self._waiver(record)
        elif kind == DEVICE:
            action = str(record["action"])
            if action in GONE:
                device_id = str(record["device_id"])
                self.gone.setdefault(device_id, int(record["at_us"]))
                self._take_back(device_id, self.gone[device_id])
            if in_period:
                self.device_events[action] = self.device_events.get(action, 0) + 1
        elif kind == ADMIN and in_period:
            key2 = (str(record["command"]), str(record["outcome"]))
            self.admin_actions[key2] = self.admin_actions.get(key2, 0) + 1

    def _waiver(self, record: Mapping[str, Any]) -> None:
        waiver_id = str(record["waiver_id"])
        span = self.waivers.get(waiver_id)
        if span is None:
            span = WaiverSpan(waiver_id, str(record["device_id"]), str(record["check_id"]),
                              str(record["owner"]), str(record["reason"]),
                              int(record["created_us"]), int(record["expires_us"]))  # fmt: skip
            self.waivers[waiver_id] = span
            self._waived.setdefault((span.device_id, span.check_id), []).append(span)
            self._waived_devices.add(span.device_id)
        if record["action"] == "revoke":
            span.revoked_us = int(record["at_us"])

    # --- failures past grace ---------------------------------------------------------------

    def _failed(self, key: tuple[str, str], verdict: Verdict, ended_us: int) -> None:
        """A failure from `verdict.since_us` to `ended_us`: count its time past grace inside
        the period, less any time a waiver on the check was in force."""
        start = max(verdict.since_us + self.grace_us.get(key[1], 0), self.from_us)
        end = min(ended_us, self.to_us)
        if end <= start:
            return
        past = end - start
        for span in self._waived.get(key, ()):
            overlap = min(end, span.end_us()) - max(start, span.created_us)
            past -= max(0, overlap)
        if past <= 0:
            return
        found = self.past_grace.get(key)
        if found is None:
            found = self.past_grace[key] = PastGrace(key[0], key[1])
        found.past_us += past
        found.first_past_us = start if found.first_past_us is None else found.first_past_us
        found.episodes += 1
        found.reason = verdict.reason

    def _count_heard_before(self) -> None:
        """The devices heard in the week before the current one, counted into it (layout 5)."""
        if self.by_receipt and 0 < self._week <= len(self.weeks):
            self.weeks[self._week - 1].devices_heard = len(self._heard_before)
        self._heard_before = set()

    # --- weekly standings --------------------------------------------------------------------

    def standing(self, device_id: str, check_id: str, at_us: int) -> str:
        heard = self.last_report.get(device_id)
        return self._standing(device_id, check_id, at_us,
                              silent=heard is None or at_us - heard > self.stale_us)  # fmt: skip

    def _standing(self, device_id: str, check_id: str, at_us: int, *, silent: bool) -> str:
        key = (device_id, check_id)
        verdict = self.verdicts.get(key)
        waivers = self._waived.get(key)
        waived = waivers is not None and any(s.active(at_us) for s in waivers)
        latest = None if verdict is None else verdict.state
        in_grace = (verdict is not None and latest == "FAIL"
                    and at_us < verdict.since_us + self.grace_us.get(check_id, 0))  # fmt: skip
        return _decided(silent, waived, latest, in_grace)

    def _close_week(self) -> None:
        week = self.weeks[self._week]
        at = week.end_us
        if self.by_receipt:
            # A report of this week may still come in a group sealed after its end: the
            # week's devices are counted when the next one closes (or at the finish).
            self._count_heard_before()
            self._heard_before = self._heard
        else:
            week.devices_heard = len(self._heard)
        self._heard = set()
        self._closed = {}
        # Devices alike (the same rows, silence and clauses) counted together, then added to
        # the week once per kind: the figures and the order their keys first appear in are
        # those of adding each device in turn.
        alike: dict[tuple[tuple[str, ...], bool, tuple[str, ...]], int] = {}
        rows_of = self._rows_of
        for device_id, heard in self.last_report.items():
            gone = self.gone.get(device_id)
            if gone is not None and (not in_fleet(gone, at) if self.by_rule else gone < at):
                continue
            rows = rows_of.get(device_id)
            if rows is None:
                rows = tuple(dict.fromkeys((ALL_DEVICES, str(self.groups.get(device_id, "")))))
                rows_of[device_id] = rows
            silent = at - heard > self.stale_us
            counted = (rows, silent, self._complied(device_id, at, silent))
            alike[counted] = alike.get(counted, 0) + 1
            if self.by_rule:
                self._closed[device_id] = counted
        for (rows, silent, complied), devices in alike.items():
            for group in rows:
                week.assessed[group] = week.assessed.get(group, 0) + devices
                week.stale[group] = week.stale.get(group, 0) + silent * devices
            for clause in complied:
                for group in rows:
                    cell = (clause, group)
                    week.compliant[cell] = week.compliant.get(cell, 0) + devices
        self._week += 1

    def _complied(self, device_id: str, at: int, silent: bool) -> tuple[str, ...]:
        """The clauses whose every check the device stood compliant in at `at`: as the close
        before found them while none of its verdicts was set since, its silence is the same,
        no grace period it was in has ended and it has no waiver (a waiver's span is time,
        not an entry: a waived device is always decided afresh). Under today's standing rule
        a grace period's end turns GRACE into FAIL, neither compliant; the bound keeps the
        memory right should the rule ever count GRACE."""
        changes = self._verdicts_set.get(device_id, 0)
        waived = device_id in self._waived_devices  # since a close before, perhaps
        then = None if waived else self._complied_then.get(device_id)
        if then is not None and then[0] == changes and then[1] == silent and at < then[2]:
            return then[3]
        complied = tuple(clause for clause, check_ids in self.clause_checks.items()
                         if all(self._standing(device_id, c, at, silent=silent) in COMPLIANT
                                for c in check_ids))  # fmt: skip
        if not waived:
            until = _FOREVER
            for check_ids in self.clause_checks.values():
                for check_id in check_ids:
                    verdict = self.verdicts.get((device_id, check_id))
                    if verdict is not None and verdict.state == "FAIL":
                        ends = verdict.since_us + self.grace_us.get(check_id, 0)
                        if at < ends:
                            until = min(until, ends)
            self._complied_then[device_id] = (changes, silent, until, complied)
        return complied

    def _take_back(self, device_id: str, gone: int) -> None:
        """Take a device out of the week closed last when it had left by that week's end: its
        chain entry came after the close (the chain's time of an entry is its writer's clock,
        never earlier than the entry before, so a leaving at a week's last moment may be
        chained in the next). A week earlier than that is not revisited: a leaving chained a
        week late would take keeping every week's devices, which grows with the period."""
        counted = self._closed.pop(device_id, None)
        if counted is None or in_fleet(gone, self.weeks[self._week - 1].end_us):
            return
        week = self.weeks[self._week - 1]
        rows, silent, complied = counted
        for group in rows:
            # As if never counted: a figure taken to nought is no figure at all (a group
            # whose only device left draws no row for that week).
            if week.assessed[group] == 1:
                del week.assessed[group], week.stale[group]
            else:
                week.assessed[group] -= 1
                week.stale[group] -= silent
            for clause in complied:
                cell = (clause, group)
                week.compliant[cell] -= 1
                if not week.compliant[cell]:
                    del week.compliant[cell]

    def waivers_in_period(self) -> list[WaiverSpan]:
        return sorted(
            (w for w in self.waivers.values()
             if w.created_us < self.to_us and w.end_us() > self.from_us),
            key=lambda w: (w.created_us, w.waiver_id),
        )  # fmt: skip

    def reasons_shown(self) -> set[str]:
        """The reasons the report shows (as stored: codes with parameters since reasons
        became codes), for the exporter to word them once, in each language."""
        return {p.reason for p in self.past_grace.values()}

    def worst_past_grace(self) -> list[PastGrace]:
        return sorted(self.past_grace.values(),
                      key=lambda p: (-p.past_us, p.device_id, p.check_id))  # fmt: skip
