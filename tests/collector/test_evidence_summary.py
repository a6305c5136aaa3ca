"""The audit report's figures (`evidence.summary`), folded from chain records given as data:
weekly compliance per clause and group by the standing rule, failures past grace less waived
time, who counts (silent, revoked), in Beijing time. Pure: no database, no clock."""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devposture.collector.evidence import bundle, chain, html
from devposture.collector.evidence.summary import BEIJING, Heard, Summary, weeks_of

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

BJ = dt.timezone(dt.timedelta(hours=8))
HOUR = 3_600_000_000
# Monday 2026-10-05 00:00 Beijing time: the period is two whole weeks from there.
MONDAY = int(dt.datetime(2026, 10, 5, tzinfo=BJ).timestamp() * 1_000_000)
END = MONDAY + 14 * 24 * HOUR
CONTEXT = {
    "clauses": [{"clause_id": "6.3.1", "title_zh": "安全防护", "title_en": "Protection"}],
    "checks": [{"check_id": "firewall", "clause": "6.3.1", "grace_hours": 4},
               {"check_id": "antivirus", "clause": "6.3.1", "grace_hours": 24}],
    "stale_after_hours": 48,
    "devices": {"a": "pc-a", "b": "pc-b", "c": "pc-c"},
    "groups": {"a": "财务部", "b": "财务部"},
    "time_zone": {"name": "Asia/Shanghai", "utc_offset_minutes": 480},
}  # fmt: skip
HEADER = {"period": {"from_us": MONDAY, "to_us": END}}


class Records:
    """Chain entries in writing order (their hashes are not the summary's business)."""

    def __init__(self) -> None:
        self.seq = 0

    def entry(self, kind: str, at_us: int, record: Mapping[str, object]) -> chain.Entry:
        self.seq += 1
        return chain.Entry(self.seq, kind, at_us, str(self.seq), chain.canonical(record),
                           bytes(32), bytes(32))  # fmt: skip

    def report(self, device: str, at_us: int) -> chain.Entry:
        return self.entry(chain.REPORT, at_us, {"device_id": device, "received_us": at_us})

    def state(self, device: str, check: str, state: str, at_us: int) -> chain.Entry:
        return self.entry(chain.STATE, at_us, {"device_id": device, "check_id": check,
                                               "state": state, "reason": f"{check} {state}",
                                               "since_us": at_us})  # fmt: skip

    def waiver(self, action: str, at_us: int, created: int, expires: int) -> chain.Entry:
        return self.entry(chain.WAIVER, at_us, {
            "waiver_id": "w1", "action": action, "at_us": at_us, "device_id": "b",
            "check_id": "firewall", "owner": "Li Wei", "reason": "new laptop",
            "created_us": created, "expires_us": expires})  # fmt: skip


def _daily_reports(records: Records, device: str, days: range) -> list[chain.Entry]:
    return [records.report(device, MONDAY + d * 24 * HOUR + 9 * HOUR) for d in days]


def _summary() -> Summary:
    """Three devices through two weeks:
    a: passes both checks throughout, reports daily;
    b: fails the firewall from day 2 09:00 to day 9 09:00 (past its 4 h grace from 13:00),
       waived from day 4 09:00 to day 6 09:00; reports daily;
    c: passes, reports daily in week 1, then falls silent (stale by the end of week 2)."""
    records = Records()
    summary = Summary(HEADER, CONTEXT)
    opening = [records.state(d, c, "PASS", MONDAY - 30 * 24 * HOUR)
               for d in "abc" for c in ("firewall", "antivirus")]  # fmt: skip
    opening += [records.report(d, MONDAY - HOUR) for d in "abc"]
    summary.opening(opening)
    during = _daily_reports(records, "a", range(14)) + _daily_reports(records, "b", range(14))
    during += _daily_reports(records, "c", range(6))
    during += [
        records.state("b", "firewall", "FAIL", MONDAY + 2 * 24 * HOUR + 9 * HOUR),
        records.waiver("add", MONDAY + 4 * 24 * HOUR + 9 * HOUR, MONDAY + 4 * 24 * HOUR + 9 * HOUR,
                       MONDAY + 6 * 24 * HOUR + 9 * HOUR),
        records.state("b", "firewall", "PASS", MONDAY + 9 * 24 * HOUR + 9 * HOUR),
    ]  # fmt: skip
    for entry in sorted(during, key=lambda e: e.at_us):
        summary.add(entry)
    summary.finish()
    return summary


def test_the_period_is_cut_into_weeks_at_monday_midnight_beijing_time() -> None:
    # From a Wednesday noon: a short first week, whole ones, a short last one.
    start = int(dt.datetime(2026, 10, 7, 12, tzinfo=BJ).timestamp() * 1_000_000)
    weeks = weeks_of(start, END + 24 * HOUR, BEIJING)
    assert [w[1] - w[0] for w in weeks] == [4.5 * 24 * HOUR, 7 * 24 * HOUR, 24 * HOUR]
    assert weeks[0][1] == MONDAY + 7 * 24 * HOUR


def test_weekly_compliance_follows_the_standing_rule_per_group() -> None:
    weeks = _summary().weeks
    first, second = weeks
    # End of week 1 (day 7 00:00): b has failed its firewall since day 2, past grace: not
    # compliant; a and c are.
    assert first.assessed == {"": 3, "财务部": 2}
    assert first.compliant == {("6.3.1", ""): 2, ("6.3.1", "财务部"): 1}
    # End of week 2: b passes again, c has been silent since day 5 09:00: STALE.
    assert second.compliant == {("6.3.1", ""): 2, ("6.3.1", "财务部"): 2}
    assert second.stale == {"": 1, "财务部": 0}
    assert (first.reports, second.reports) == (7 + 7 + 6, 7 + 7)
    assert (first.devices_heard, second.devices_heard) == (3, 2)


def test_time_past_grace_leaves_out_the_waived_days() -> None:
    summary = _summary()
    [found] = summary.worst_past_grace()
    assert (found.device_id, found.check_id, found.episodes) == ("b", "firewall", 1)
    # Failing day 2 09:00 → day 9 09:00, grace to day 2 13:00, waived day 4 09:00 → 6 09:00.
    assert found.past_us == 7 * 24 * HOUR - 4 * HOUR - 2 * 24 * HOUR
    assert found.first_past_us == MONDAY + 2 * 24 * HOUR + 13 * HOUR
    assert [w.waiver_id for w in summary.waivers_in_period()] == ["w1"]


def test_a_revoked_device_no_longer_counts() -> None:
    records = Records()
    summary = Summary(HEADER, CONTEXT)
    summary.opening([records.report("a", MONDAY - HOUR)])
    summary.add(records.entry(chain.DEVICE, MONDAY + HOUR, {
        "device_id": "a", "action": "revoked", "at_us": MONDAY + HOUR}))  # fmt: skip
    summary.finish()
    assert summary.weeks[0].assessed == {} and summary.device_events == {"revoked": 1}


WEEK_END = MONDAY + 7 * 24 * HOUR


def _leaving(left_us: int, chained_us: int, layout: int = html.LAYOUT) -> Summary:
    """a and b (both of 财务部) passing, heard from two hours before the first
    week's end; a retired at `left_us`, its entry chained at `chained_us` (the chain's clock:
    never before the event's own, and later when a collector whose clock runs ahead wrote
    the entry before)."""
    records = Records()
    summary = Summary(HEADER | {"report_layout": layout}, CONTEXT)
    summary.opening([records.state(d, c, "PASS", MONDAY - 30 * 24 * HOUR)
                     for d in "ab" for c in ("firewall", "antivirus")])  # fmt: skip
    for device in "ab":
        summary.add(records.report(device, WEEK_END - 2 * HOUR))
    summary.add(records.entry(chain.DEVICE, chained_us, {
        "device_id": "a", "action": "retired", "at_us": left_us}))  # fmt: skip
    summary.finish()
    return summary


def test_a_device_leaving_at_a_week_s_end_counts_in_it_no_more_as_in_fleet_decides() -> None:
    """A week's figures are the fleet at its end, and a device that left at that very moment
    is out of the fleet then (`standing_rule.in_fleet`: in only while it left after the
    moment). It was counted: at the end itself, and at the week's last microsecond when the
    chain entry came a little later (the week was closed before the leaving was read)."""
    for left, chained in ((WEEK_END, WEEK_END), (WEEK_END - 1, WEEK_END + 5_000_000),
                          (WEEK_END - 1, WEEK_END - 1)):  # fmt: skip
        first, second = _leaving(left, chained).weeks
        assert first.assessed == {"": 1, "财务部": 1}, (left - WEEK_END, chained - WEEK_END)
        assert first.compliant == {("6.3.1", ""): 1, ("6.3.1", "财务部"): 1}
        assert first.stale == {"": 0, "财务部": 0}
        assert (second.assessed, second.stale) == ({"": 1, "财务部": 1}, {"": 1, "财务部": 1})
    # A microsecond after the end: counted in that week, in none after.
    first, second = _leaving(WEEK_END + 1, WEEK_END + 1).weeks
    assert (first.assessed, second.assessed) == ({"": 2, "财务部": 2}, {"": 1, "财务部": 1})
    assert first.compliant == {("6.3.1", ""): 2, ("6.3.1", "财务部"): 2}


def test_a_bundle_of_layout_5_keeps_its_figures_at_the_week_s_end() -> None:
    """The verifier redraws an older bundle's report in its own layout, byte for byte: layout
    5 counted a device that left at the week's end in it, and still does."""
    first, _ = _leaving(WEEK_END, WEEK_END, layout=5).weeks
    assert first.assessed == {"": 2, "财务部": 2}


def test_a_share_short_of_everyone_never_reads_100_percent() -> None:
    assert html._share(1999, 2000).startswith("99.9%") and html._share(0, 0) == "—"
    assert html._share(2000, 2000).startswith("100.0%")


def test_the_drawn_report_shows_the_shares_and_the_failure_in_beijing_time() -> None:
    summary = _summary()
    header = {**HEADER, "period": {**HEADER["period"], "from": "…", "to": "…"},
              "generated_at": "…", "collector": {"hostname": "c1", "ca_fingerprint": "x"},
              "signing_key": "k", "counts": {"report": 34},
              "chain": {"first_seq": 1, "last_seq": 40, "last_hash": "00"}}  # fmt: skip
    page = html.draw(header, CONTEXT, summary).decode("utf-8")
    assert "66.6%<br><small>2/3</small>" in page  # week 1, all devices (rounded down)
    assert "50.0%<br><small>1/2</small>" in page  # week 1, 财务部
    assert "4 天 d 20 小时 h" in page  # b's firewall past grace
    assert "2026-10-07 13:00" in page  # when it passed grace, Beijing time
    assert "2026-10-05 00:00 – 2026-10-19 00:00" in page


@settings(max_examples=300, deadline=None)
@given(text=st.text(), key=st.text(min_size=1))
def test_a_chain_line_is_the_json_of_its_entry_whatever_its_payload_text(
    text: str, key: str
) -> None:
    """Any text in a payload or a key (control characters, quotes, any plane, U+2028):
    orjson's escaping of the payload is the standard library's, byte for byte."""
    payload = chain.canonical({"reason": text, "n": 1})
    entry = chain.Entry(3, chain.STATE, 1, key, payload, bytes(32), bytes(32))
    assert bundle.entry_jsonl(entry) == bundle.jsonl(bundle.entry_line(entry))


@settings(max_examples=200, deadline=None)
@given(reports=st.lists(st.tuples(st.text(), st.binary(max_size=64)), max_size=5),
       seq=st.integers(min_value=1, max_value=2**62))  # fmt: skip
def test_a_group_line_of_bodies_is_the_json_of_its_reports_whatever_their_ids(
    reports: list[tuple[str, bytes]], seq: int
) -> None:
    """A format-4 group's line of bodies, made as bytes, is the JSON its bundles have always
    held, byte for byte (each [id, base64] as the standard library writes it, "," between
    them): any id (quotes, control characters, any plane), any body, none at all."""
    items = ",".join(json.dumps([report_id, bundle.text_of(body)], ensure_ascii=False)
                     for report_id, body in reports)  # fmt: skip
    spelled = f'{{"reports": [{items}], "seq": {seq}}}\n'.encode()
    assert bundle.group_bodies_jsonl(seq, reports) == spelled
    assert bundle.parse_group_bodies(json.loads(spelled)) == (seq, reports)


def test_a_chain_line_written_out_directly_is_the_json_of_its_entry() -> None:
    """The exporter writes chain lines without a dict per line; they must be the bytes the
    JSON of the entry is (the verifier parses them; a later version may compare them)."""
    payload = chain.canonical({"reason": 'say "离线" \\ \n\t\x01 ok', "n": 1, "d": "测试"})
    entry = chain.Entry(12, chain.STATE, 1_796_000_000_000_001, 'd1/"防火墙"/5', payload,
                        bytes(range(32)), bytes(32))  # fmt: skip
    assert bundle.entry_jsonl(entry) == bundle.jsonl(bundle.entry_line(entry))
    assert bundle.index_jsonl(entry) == bundle.jsonl(bundle.index_line(entry))
    body = bytes(range(256))
    assert bundle.report_jsonl(7, 'r-"报告"', body) == bundle.jsonl(
        bundle.report_line(7, 'r-"报告"', body)
    )
    assert entry.record() is entry.record()  # parsed once


def _group(records: Records, sealed_us: int, received: list[tuple[str, int]]) -> chain.Entry:
    """A report group as sealing writes it: sealed at `sealed_us`, its reports received before."""
    reports = [{"device_id": d, "received_us": at} for d, at in received]
    return records.entry(chain.REPORT_GROUP, sealed_us, {"reports": reports})


def test_a_report_counts_in_the_week_it_was_received_not_the_week_it_was_sealed() -> None:
    """A report received at 23:59:50 on a Sunday, Beijing time, whose group was sealed at
    00:00:10 on the Monday, counted in the next week: the report's weekly counts disagreed
    with the database's reports received in each week by one at each week's end."""
    week_end = MONDAY + 7 * 24 * HOUR
    records = Records()
    summary = Summary(HEADER | {"report_layout": html.LAYOUT}, CONTEXT)
    summary.add(_group(records, MONDAY + HOUR, [("a", MONDAY + HOUR // 2)]))
    summary.add(_group(records, week_end + 10_000_000, [("b", week_end - 10_000_000)]))
    summary.add(_group(records, week_end + 2 * HOUR, [("c", week_end + HOUR)]))
    summary.finish()
    first, second = summary.weeks
    assert (first.reports, first.devices_heard) == (2, 2)
    assert (second.reports, second.devices_heard) == (1, 1)
    older = Summary(HEADER | {"report_layout": 4}, CONTEXT)  # as layout 4 drew it: unchanged
    for entry in (
        _group(Records(), MONDAY + HOUR, [("a", MONDAY)]),
        _group(Records(), week_end + 10_000_000, [("b", week_end - 10_000_000)]),
    ):
        older.add(entry)  # fmt: skip
    older.finish()
    assert [w.reports for w in older.weeks] == [1, 1]


def _figures(summary: Summary) -> list[tuple[int, int, dict[tuple[str, str], int]]]:
    return [(w.reports, w.devices_heard, dict(w.compliant)) for w in summary.weeks]


def test_reports_folded_where_their_run_was_read_give_the_figures_of_each_report_in_turn() -> None:
    """An export's workers fold a run's reports (`Heard`, by the week each group was written
    in) instead of handing each report over: the same figures as `Summary.add` of every
    group, with groups sealed after the week their reports were received in (one by two
    weeks), state changes between them, and a device whose last report is in a later group."""
    week_end = MONDAY + 7 * 24 * HOUR
    records = Records()
    entries = [
        _group(records, MONDAY + HOUR, [("a", MONDAY + HOUR // 2), ("b", MONDAY + HOUR // 3)]),
        records.state("b", "firewall", "FAIL", MONDAY + 2 * HOUR),
        _group(records, week_end - HOUR, [("c", week_end - 2 * HOUR)]),
        _group(records, week_end + 10_000_000, [("d", week_end - 10_000_000),
                                                ("a", week_end + 5_000_000)]),
        records.state("b", "firewall", "PASS", week_end + HOUR),
        _group(records, week_end + 2 * HOUR, [("c", MONDAY + HOUR), ("a", week_end + HOUR)]),
    ]  # fmt: skip
    each = Summary(HEADER | {"report_layout": html.LAYOUT}, CONTEXT)
    for entry in entries:
        each.add(entry)
    each.finish()
    folded = Summary(HEADER | {"report_layout": html.LAYOUT}, CONTEXT)
    ends = folded.week_ends()
    # The run read whole first (batch_work.write_run), then folded in order (export's take).
    heard: dict[int, Heard] = {}
    run: list[chain.Entry | Heard] = []
    for entry in entries:
        if entry.kind != chain.REPORT_GROUP:
            run.append(entry)
            continue
        written = bisect.bisect_right(ends, entry.at_us)
        if written not in heard:  # placed where the week's first group is
            heard[written] = Heard(entry.at_us)
            run.append(heard[written])
        for record in chain.group_records(entry):
            heard[written].add(ends, written, str(record["device_id"]),
                               int(str(record["received_us"])))  # fmt: skip
    for figure in run:
        if isinstance(figure, Heard):
            folded.add_heard(figure)
        else:
            folded.add(figure)
    folded.finish()
    assert _figures(folded) == _figures(each)
    # d is heard only in a group written the next week: still week 1's.
    assert [(w.reports, w.devices_heard) for w in each.weeks] == [(5, 4), (2, 1)]
    assert folded.last_report == each.last_report and folded.last_report["c"] == MONDAY + HOUR


def test_a_groups_columns_fold_as_each_of_its_reports_would() -> None:
    """`Summary.fold_reports` (format 5's columns) leaves the figures `_report` per report
    leaves: groups within a week, groups across a week's turn (a report received before the
    turn whose group was sealed after it), the opening's reports; then the weeks drawn."""
    records = Records()
    received = [MONDAY + k * 5 * HOUR for k in range(14 * 24 // 5)]
    groups = []
    for k, at in enumerate(received):
        late = at - (2 * HOUR if k % 7 == 3 else 0)  # a group holding an earlier receipt
        groups.append((at, [("a", late), ("b", at), ("c" if k % 3 else "a", at)]))
    turn = MONDAY + 7 * 24 * HOUR  # a group sealed just after the turn, one report before it
    groups.append((turn + HOUR, [("c", turn - HOUR), ("b", turn + HOUR)]))
    groups.sort(key=lambda group: group[0])
    by_column, by_report = Summary(HEADER, CONTEXT), Summary(HEADER, CONTEXT)
    opening = [("b", MONDAY - HOUR), ("c", MONDAY - 3 * HOUR)]
    by_column.fold_reports([d for d, _ in opening], [t for _, t in opening], in_period=False)
    by_report.opening(records.report(d, t) for d, t in opening)
    for at, group in groups:
        by_column.add(records.entry(chain.STATE, at, {"device_id": "a", "check_id": "firewall",
                                                      "state": "PASS", "reason": "",
                                                      "since_us": at}))  # fmt: skip
        by_column.fold_reports([d for d, _ in group], [t for _, t in group], in_period=True)
        by_report.add(records.entry(chain.STATE, at, {"device_id": "a", "check_id": "firewall",
                                                      "state": "PASS", "reason": "",
                                                      "since_us": at}))  # fmt: skip
        for device, t in group:
            by_report.add(records.entry(chain.REPORT, at, {"device_id": device,
                                                           "received_us": t}))  # fmt: skip
    by_column.finish()
    by_report.finish()
    assert by_column.weeks == by_report.weeks and by_column.last_report == by_report.last_report
    assert [w.reports for w in by_column.weeks] == [
        sum(1 for at, g in groups for _, t in g if w.start_us <= t < w.end_us)
        for w in by_column.weeks
    ]


class _Afresh(Summary):
    """The same figures with every device decided afresh at every week's close (what
    `Summary._complied` remembers between closes forgotten)."""

    def _complied(self, device_id: str, at: int, silent: bool) -> tuple[str, ...]:
        self._complied_then.clear()
        return super()._complied(device_id, at, silent)


_RANDOM_CONTEXT = {
    **CONTEXT,
    "checks": [{"check_id": "firewall", "clause": "6.3.1", "grace_hours": 4},
               {"check_id": "antivirus", "clause": "6.3.1", "grace_hours": 24 * 9},
               {"check_id": "backup", "clause": "6.2.1", "grace_hours": 0},
               {"check_id": "public-wifi", "clause": "6.3.2", "grace_hours": 24 * 7}],
    "groups": {f"d{n}": ("财务部" if n % 3 else "研发部") for n in range(24)},
}  # fmt: skip


def _random_figures(seed: int, summary: Summary) -> list[tuple[object, ...]]:
    """Eight weeks of 24 devices with verdicts changing at random moments (some right at a
    week's end or a grace period's), silences, and waivers added, revoked and expiring."""
    import random  # noqa: PLC0415 (this test's alone)

    rng = random.Random(seed)
    weeks = 8
    end = MONDAY + weeks * 7 * 24 * HOUR
    checks = ["firewall", "antivirus", "backup", "public-wifi"]
    records = Records()
    opening = [records.state(f"d{n}", c, rng.choice(["PASS", "PASS", "FAIL", "UNKNOWN"]),
                             MONDAY - rng.randrange(1, 20) * 24 * HOUR)
               for n in range(24) for c in checks]  # fmt: skip
    opening += [records.report(f"d{n}", MONDAY - HOUR) for n in range(24)]
    summary.opening(opening)
    during: list[chain.Entry] = []
    week_ends = [MONDAY + w * 7 * 24 * HOUR for w in range(1, weeks + 1)]
    for n in range(24):
        device = f"d{n}"
        quiet = rng.randrange(weeks * 7) if rng.random() < 0.3 else None  # a silent spell
        for day in range(weeks * 7):
            if quiet is None or not quiet <= day < quiet + rng.choice([1, 3, 9]):
                during.append(records.report(device, MONDAY + day * 24 * HOUR + 9 * HOUR))
        for _ in range(rng.randrange(0, 6)):
            if rng.random() < 0.3:  # right before a week's end, or a grace period's
                at = rng.choice(week_ends) - rng.choice([1, 4 * HOUR, 4 * HOUR + 1, 24 * 7 * HOUR])
            else:
                at = MONDAY + rng.randrange(weeks * 7 * 24) * HOUR
            state = rng.choice(["PASS", "FAIL", "FAIL", "UNKNOWN", "EXEMPT"])
            during.append(records.state(device, rng.choice(checks), state, at))
    for w in range(rng.randrange(0, 5)):
        created = MONDAY + rng.randrange(weeks * 7 * 24) * HOUR
        expires = created + rng.choice([1, 30, 24 * 8]) * HOUR
        waiver = {"waiver_id": f"w{w}", "device_id": f"d{rng.randrange(24)}",
                  "check_id": rng.choice(checks), "owner": "Li Wei", "reason": "r",
                  "created_us": created, "expires_us": expires}  # fmt: skip
        during.append(records.entry(chain.WAIVER, created, {**waiver, "action": "add",
                                                            "at_us": created}))  # fmt: skip
        if rng.random() < 0.4:
            revoked = created + rng.randrange(1, 200) * HOUR
            during.append(records.entry(chain.WAIVER, revoked, {**waiver, "action": "revoke",
                                                                "at_us": revoked}))  # fmt: skip
    for entry in sorted(during, key=lambda e: e.at_us):
        if entry.at_us < end:
            summary.add(entry)
    summary.finish()
    return [(w.assessed, w.stale, w.compliant) for w in summary.weeks]


@pytest.mark.parametrize("seed", range(40))
def test_a_device_remembered_between_closes_counts_as_decided_afresh(seed: int) -> None:
    """What a week's close remembers of a device (no verdict set since, the same silence, no
    grace period ended, no waiver) gives the same weekly figures as deciding every device and
    check again at every close, on random histories."""
    header = {"period": {"from_us": MONDAY, "to_us": MONDAY + 8 * 7 * 24 * HOUR}}
    remembered = _random_figures(seed, Summary(header, _RANDOM_CONTEXT))
    afresh = _random_figures(seed, _Afresh(header, _RANDOM_CONTEXT))
    assert remembered == afresh
    assert any(compliant for _, _, compliant in remembered)  # something counted
