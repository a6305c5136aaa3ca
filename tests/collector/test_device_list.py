"""The device list read in SQL (`collector.store.device_list`) lists the same devices, in the same
order, with the same standings, as judging every device from its history
(`compliance.standings`) and filtering in Python, for every filter the dashboard offers.

The fleet is `tests.collector.mixed_fleet`: every standing, in a real database (a SQLite file,
or PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from itertools import product
from pathlib import Path

import pytest

from devposture.collector.compliance import STATES, DeviceSeen, Standing, Waiver, standings
from devposture.collector.render import Row
from devposture.collector.reports import failing_rows, fleet_rows
from devposture.collector.store import CheckResult, Store
from devposture.collector.store.device_list import (
    NOT_PASSING,
    DeviceFilter,
    listed,
    matching_devices,
)
from devposture.collector.store.engine import SqliteDatabase
from devposture.policy import Policy, default_policy
from tests.collector.mixed_fleet import NOW, enroll, mixed_fleet, report
from tests.databases import fresh_database


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Policy]]:
    store, policy = mixed_fleet(fresh_database(tmp_path_factory.mktemp("list")))
    yield store, policy
    store.close()


def _judged(store: Store, policy: Policy) -> tuple[list[DeviceSeen], dict[str, dict[str, str]]]:
    """The fleet's devices (a revoked or retired one has left it) and their standings."""
    devices = [d for d in store.reports.devices_seen(NOW) if d.left_at is None or d.left_at > NOW]
    judged: dict[str, dict[str, str]] = {d.device_id: {} for d in devices}
    found: list[Standing] = standings(
        devices, store.reports.state_changes(NOW), policy, NOW, store.waivers.recorded()
    )
    for s in found:
        judged[s.device_id][s.check_id] = s.state
    return devices, judged


def _expected(
    store: Store, policy: Policy, wanted: DeviceFilter, groups: dict[str, str]
) -> list[str]:
    """The filter applied in Python to the standings judged from the history."""
    devices, judged = _judged(store, policy)
    out = []
    for device in devices:
        states = judged[device.device_id]
        needle = wanted.text.casefold()
        if needle and not (
            device.device_id.startswith(needle) or needle in device.hostname.casefold()
        ):
            continue
        if wanted.os_family and device.os_family != wanted.os_family:
            continue
        if wanted.group and groups.get(device.device_id, "") != wanted.group:
            continue
        if wanted.stale and not any(s == "STALE" for s in states.values()):
            continue
        if wanted.state:
            chosen = [states[wanted.check]] if wanted.check in states else list(states.values())
            if wanted.state == NOT_PASSING:
                if all(s in ("PASS", "EXEMPT") for s in chosen):
                    continue
            elif wanted.state not in chosen:
                continue
        out.append(device.device_id)
    return out


def _filters(policy: Policy) -> list[DeviceFilter]:
    checks = ["", *(c.check_id for c in policy.checks)]
    by_state = [
        DeviceFilter(check=check, state=state)
        for check, state in product(checks, [*STATES, NOT_PASSING])
    ]
    return [
        DeviceFilter(),
        *by_state,
        DeviceFilter(text="laptop"),
        DeviceFilter(text="ZHÀO"),  # a host name with a non-ASCII letter, another case
        DeviceFilter(text="0a"),  # the start of a device id
        DeviceFilter(text="%"),  # LIKE's wildcard is a literal here
        DeviceFilter(os_family="windows"),
        DeviceFilter(group="财务部"),
        DeviceFilter(stale=True),
        DeviceFilter(os_family="linux", state="FAIL", check="firewall", group="sales-eu"),
    ]


def test_every_filter_lists_the_devices_judging_the_history_lists(
    fleet: tuple[Store, Policy],
) -> None:
    store, policy = fleet
    groups = {d.device_id: d.group for d in store.identity.devices()}
    seen_states: set[str] = set()
    for wanted in _filters(policy):
        expected = _expected(store, policy, wanted, groups)
        assert matching_devices(store._db, policy, NOW, wanted) == expected, wanted
        if wanted.state:
            seen_states.add(wanted.state)
    # The fleet holds every state, else the comparison proves little.
    _, judged = _judged(store, policy)
    assert {s for states in judged.values() for s in states.values()} == set(STATES)
    assert len(_expected(store, policy, DeviceFilter(text="ZHÀO"), groups)) > 0


def test_a_page_carries_each_devices_standing_on_every_check(fleet: tuple[Store, Policy]) -> None:
    store, policy = fleet
    devices, judged = _judged(store, policy)
    ids = matching_devices(store._db, policy, NOW, DeviceFilter())
    page = listed(store._db, policy, NOW, ids[10:30])
    assert [d.device_id for d in page] == ids[10:30]
    for item in page:
        assert item.states == judged[item.device_id]
    by_id = {d.device_id: d for d in devices}
    assert [(d.hostname, d.os_family) for d in page] == [
        (by_id[d.device_id].hostname, by_id[d.device_id].os_family) for d in page
    ]


def test_an_unknown_state_is_refused(fleet: tuple[Store, Policy]) -> None:
    store, policy = fleet
    with pytest.raises(ValueError, match="unknown state 'BROKEN'"):
        matching_devices(store._db, policy, NOW, DeviceFilter(state="BROKEN"))


def test_a_page_of_no_devices_reads_nothing(fleet: tuple[Store, Policy]) -> None:
    store, policy = fleet
    assert listed(store._db, policy, NOW, []) == []


def test_failing_longest_read_a_page_at_a_time_is_the_list_judged_from_the_history(
    fleet: tuple[Store, Policy],
) -> None:
    store, policy = fleet
    exact = failing_rows(store, policy, NOW)
    keys = [(r["device"], r["check"], r["failing_since"]) for r in exact]
    assert len(keys) > 12, "too few failures for pages to prove anything"
    assert store.fleet.failing_count(policy, NOW) == len(keys)
    pages = [
        failing_rows(store, policy, NOW, current=True, offset=start, limit=5)
        for start in range(0, len(keys) + 5, 5)
    ]
    assert [(r["device"], r["check"], r["failing_since"]) for p in pages for r in p] == keys
    assert pages[-1] == []  # past the end


@pytest.mark.parametrize("group", ["财务部", "sales-eu", "nobody"])
def test_a_groups_fleet_and_failures_counted_in_sql_equal_them_judged_from_the_history(
    fleet: tuple[Store, Policy], group: str
) -> None:
    store, policy = fleet
    fast = fleet_rows(store, policy, NOW, current=True, group=group)
    exact = fleet_rows(store, policy, NOW, exact=True, group=group)
    assert fast == exact
    members = {d.device_id for d in store.identity.devices(group=group) if d.status == "active"}
    assert sum(int(str(r["devices"])) for r in exact) == len(members) * len(policy.checks)

    def keys(rows: list[Row]) -> list[tuple[object, object, object]]:
        return [(r["device"], r["check"], r["failing_since"]) for r in rows]

    failing = failing_rows(store, policy, NOW, current=True, group=group)
    assert keys(failing) == keys(failing_rows(store, policy, NOW, group=group))
    assert {r["device"] for r in failing} <= members
    if group != "nobody":
        assert failing, "no failure in the group: the comparison proves little"


@pytest.mark.sqlite_only
def test_a_groups_verdicts_are_counted_from_an_index_without_reading_their_rows(
    fleet: tuple[Store, Policy],
) -> None:
    """A group of 25,000 devices has 150,000 verdicts: read from their rows (a reason, a
    report id beside each), counting them took half of `report fleet --group` over 100,000
    devices (bench/fleet_report.py); schema 32's index holds all the count needs."""
    store, policy = fleet
    assert isinstance(store._db, SqliteDatabase)
    queries: list[str] = []
    store._db.connection.set_trace_callback(queries.append)
    try:
        fleet_rows(store, policy, NOW, current=True, group="财务部")
    finally:
        store._db.connection.set_trace_callback(None)
    (counting,) = [q for q in queries if "GROUP BY c.check_id" in q]
    plan = store._db.execute(f"EXPLAIN QUERY PLAN {counting}").fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "SEARCH c USING COVERING INDEX check_results_by_device" in details, details


def test_any_check_filters_tell_devices_passing_everything_from_those_that_do_not(
    tmp_path: Path,
) -> None:
    """The "any check" filters at their edges, against the standings judged from the history:
    a device passing every check, one passing all but a check waived over a failure, one whose
    waived check was never judged (EXEMPT with no verdict), one silent after passing all, one
    failing a single check and one whose failure is still in grace. NOT_PASSING lists only
    the last three; PASS, FAIL and GRACE on any check each their own."""
    policy = default_policy()
    checks = [c.check_id for c in policy.checks]
    store = Store.open(fresh_database(tmp_path))
    try:
        verdicts = {
            "passes-all": dict.fromkeys(checks, "PASS"),
            "waived-fail": {**dict.fromkeys(checks, "PASS"), checks[0]: "FAIL"},
            "waived-unjudged": dict.fromkeys(checks[1:], "PASS"),
            "silent": dict.fromkeys(checks, "PASS"),
            "fails-one": {**dict.fromkeys(checks, "PASS"), checks[1]: "FAIL"},  # 4 h grace
        }
        for n, (name, states) in enumerate(verdicts.items()):
            device_id = f"{n:02x}" + "cd" * 15
            enroll(store, device_id)
            ago = dt.timedelta(days=5) if name == "silent" else dt.timedelta(days=2)
            results = [CheckResult(check, state, "r") for check, state in states.items()]
            store.reports.store_reports(
                [(report(device_id, 0, NOW - ago, name, "linux"), results)]
            )
            if name == "fails-one":  # a newer report: still failing, and the failure is old
                store.reports.store_reports([(
                    report(device_id, 1, NOW - dt.timedelta(minutes=5), name, "linux"), results
                )])  # fmt: skip
            if name.startswith("waived"):
                store.waivers.add_waiver(Waiver(
                    f"w{n}", device_id, checks[0], "IT", "replacement ordered",
                    NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3),
                ), NOW)  # fmt: skip
        in_grace = "05" + "cd" * 15
        enroll(store, in_grace)
        store.reports.store_reports([(
            report(in_grace, 0, NOW - dt.timedelta(minutes=5), "in-grace", "linux"),
            [CheckResult(checks[2], "FAIL", "r")] + [  # os-updates: 168 h of grace
                CheckResult(c, "PASS", "r") for c in checks if c != checks[2]
            ],
        )])  # fmt: skip
        groups = {d.device_id: d.group for d in store.identity.devices()}
        _, judged = _judged(store, policy)
        assert "GRACE" in judged[in_grace].values()
        for state in (NOT_PASSING, "PASS", "FAIL", "GRACE", "EXEMPT", "UNKNOWN", "STALE"):
            wanted = DeviceFilter(state=state)
            assert matching_devices(store._db, policy, NOW, wanted) == _expected(
                store, policy, wanted, groups
            ), state
        hosts = {d.device_id: d.hostname for d in store.identity.devices()}
        not_passing = matching_devices(store._db, policy, NOW, DeviceFilter(state=NOT_PASSING))
        assert sorted(hosts[d] for d in not_passing) == ["fails-one", "in-grace", "silent"]
    finally:
        store.close()


def test_the_command_line_lists_devices_in_the_dashboard_s_natural_host_order(
    tmp_path: Path,
) -> None:
    """`device list` (`identity.devices`) and the dashboard's device list read the same order:
    PC-2 before PC-10, whatever the case. The command line sorted the names as bytes (PC-10,
    PC-2, then every lower-case name, pc-1 last of the three), so IT saw two orders."""
    store = Store.open(fresh_database(tmp_path, "hosts.sqlite"))
    try:
        names = {"d1": "PC-10", "d2": "pc-1", "d3": "笔记本-10", "d4": "PC-2", "d5": "笔记本-2"}
        for n, (device_id, host) in enumerate(names.items()):
            enroll(store, device_id)
            store.reports.store_report(report(device_id, n, NOW, host, "linux"), [])
        store.identity.set_device_group("d4", "研发部", NOW)
        listed = store.identity.devices()
        assert [d.hostname for d in listed] == ["pc-1", "PC-2", "PC-10", "笔记本-2", "笔记本-10"]
        # What an audit export's context reads (`identity.names`): the same devices, names,
        # groups and order, without each one's certificate.
        assert store.identity.names() == [(d.device_id, d.hostname, d.group) for d in listed]
        assert ("d4", "PC-2", "研发部") in store.identity.names()
    finally:
        store.close()
