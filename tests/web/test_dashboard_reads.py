"""The dashboard for IT's reads in SQL (`collector.store.dashboard_reads`) give the same
figures and orders as judging every device from its history (`compliance.standings`) and
sorting in Python, on `tests.collector.mixed_fleet`: every standing (silent devices, ones
never heard from, waivers in force, expired and revoked, two groups), on a real database
(a SQLite file, or PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re
from collections.abc import Iterator

import pytest

from devposture.collector.compliance import Standing, Waiver, standings
from devposture.collector.store import Store
from devposture.collector.store.dashboard_reads import STATE_ORDER, FailingWanted
from devposture.policy import Policy, default_policy
from tests.collector.mixed_fleet import NOW, enroll, mixed_fleet, report
from tests.databases import fresh_database


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Policy]]:
    """The mixed fleet, and two devices made fully compliant by waivers: one waived on every
    check it does not pass, one on every check (EXEMPT whatever its verdicts)."""
    store, policy = mixed_fleet(fresh_database(tmp_path_factory.mktemp("reads")))
    judged = _states(store, policy)
    fresh = [d for d, states in judged.items() if "STALE" not in states.values()]
    some_pass = next(d for d in fresh if "PASS" in judged[d].values())
    every = next(d for d in fresh if d != some_pass)
    for device_id in (some_pass, every):
        for check, state in judged[device_id].items():
            if state != "PASS" or device_id == every:
                store.waivers.add_waiver(Waiver(
                    f"all-{device_id[:6]}-{check}", device_id, check, "IT", "test bench",
                    NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=1),
                ), NOW - dt.timedelta(days=1))  # fmt: skip
    yield store, policy
    store.close()


def _states(store: Store, policy: Policy, group: str = "") -> dict[str, dict[str, str]]:
    """Each device of the fleet's standing per check, judged from its history (one revoked or
    retired has left the fleet)."""
    devices = [d for d in store.reports.devices_seen(NOW) if d.left_at is None or d.left_at > NOW]
    if group:
        members = {d.device_id for d in store.identity.devices(group=group)}
        devices = [d for d in devices if d.device_id in members]
    judged: dict[str, dict[str, str]] = {d.device_id: {} for d in devices}
    found: list[Standing] = standings(
        devices, store.reports.state_changes(NOW), policy, NOW, store.waivers.recorded()
    )
    for s in found:
        if s.device_id in judged:
            judged[s.device_id][s.check_id] = s.state
    return judged


@pytest.mark.parametrize("group", ["", "财务部", "sales-eu", "nobody"])
@pytest.mark.parametrize("checks", ["all", "one dropped"])
def test_the_headline_figures_are_the_standings(
    fleet: tuple[Store, Policy], group: str, checks: str
) -> None:
    """Counted from each device's count of passing verdicts (schema 18) and the failing
    index; and, under a policy that dropped a check the fleet still has verdicts of, from a
    pass over every verdict: both ways equal to judging the history."""
    store, policy = fleet
    if checks == "one dropped":
        policy = dataclasses.replace(policy, checks=policy.checks[1:])
    judged = _states(store, policy, group)
    stale = sum(1 for states in judged.values() if "STALE" in states.values())
    in_policy = {c.check_id for c in policy.checks}
    waived = {
        (w.device_id, w.check_id) for w in store.waivers.recorded()
        if w.active(NOW) and w.check_id in in_policy
    }  # fmt: skip
    members = set(judged)
    figures = store.dashboard.headline(policy, NOW, stale, group)
    assert figures.compliant == sum(
        1 for states in judged.values() if set(states.values()) <= {"PASS", "EXEMPT"}
    )
    assert figures.needing_action == sum(
        1 for states in judged.values() if "FAIL" in states.values()
    )
    assert figures.waivers_in_force == len({p for p in waived if p[0] in members})
    if not group:  # the fleet has each kind, so the test can tell a wrong count
        assert figures.compliant and figures.needing_action and stale
        assert any("EXEMPT" in s.values() for s in judged.values())


def _natural(name: str) -> tuple[str, int, str, str]:
    """The order the SQL gives: the name without trailing digits, its length, the name."""
    return (re.sub(r"[0-9]+$", "", name.lower()), len(name), name.lower(), name)


@pytest.mark.parametrize("descending", [False, True])
def test_each_order_is_the_one_judged_in_python(
    fleet: tuple[Store, Policy], descending: bool
) -> None:
    store, policy = fleet
    devices = {d.device_id: d for d in store.identity.devices() if d.status == "active"}
    host = {d: (*_natural(info.hostname), d) for d, info in devices.items()}
    by_host = sorted(devices, key=host.__getitem__)
    # Ties (the same host name) by device id, whichever way the column goes.
    expected = sorted(by_host, key=lambda d: host[d][:-1], reverse=descending)
    assert store.dashboard.ordered(policy, NOW, "host", descending) == expected
    judged = _states(store, policy)
    for check in (c.check_id for c in policy.checks):
        rank = {d: STATE_ORDER.index(judged.get(d, {}).get(check, "UNKNOWN")) for d in devices}
        expected = sorted(by_host, key=rank.__getitem__, reverse=descending)
        got = store.dashboard.ordered(policy, NOW, check, descending)
        assert sorted(got) == sorted(expected)
        assert [rank[d] for d in got] == [rank[d] for d in expected], check
        # Ties in host order, whichever way the column goes.
        for a, b in itertools.pairwise(got):
            if rank[a] == rank[b]:
                assert host[a] < host[b]


def test_natural_host_order_puts_pc_2_before_pc_10() -> None:
    names = ["PC-10", "pc-1", "PC-2", "pc-10a", "laptop"]
    assert sorted(names, key=_natural) == ["laptop", "pc-1", "PC-2", "PC-10", "pc-10a"]


@pytest.mark.parametrize("min_days", [0.0, 1.0, 5.0, 30.0])
def test_failing_filters_select_what_python_would(
    fleet: tuple[Store, Policy], min_days: float
) -> None:
    store, policy = fleet
    every = store.fleet.failing_now(policy, NOW)
    assert every, "the fleet has failures past grace"
    for check in [(), *((c.check_id,) for c in policy.checks)]:
        for group in ("", "财务部"):
            members = {d.device_id for d in store.identity.devices(group=group or None)}
            wanted = FailingWanted(check, group, min_days)
            expected = [
                f for f in every
                if (not check or f.check_id in check) and f.device_id in members
                and (NOW - f.since).total_seconds() >= min_days * 86400
            ]  # fmt: skip
            assert store.dashboard.failing(policy, NOW, wanted) == expected
            assert store.dashboard.failing_count(policy, NOW, wanted) == len(expected)
            page = store.dashboard.failing(policy, NOW, wanted, offset=1, limit=2)
            assert page == expected[1:3]


# Names that tell the key's parts apart: a prefix of another, the same name in two cases,
# numbers of different widths, digits inside, no digits, Chinese, one left empty.
AWKWARD_NAMES = [
    "PC-10", "pc-1", "PC-2", "pc-10a", "pc-2", "pc", "pc-", "PC-010", "laptop", "Laptop-9",
    "laptop-9x", "财务-12", "财务-3", "财务", "a", "A", "", "pc-100", "pc-99", "PC1", "pc01",
]  # fmt: skip


def test_host_order_key_sorts_awkward_names_as_python_does(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`devices.host_key` (schema 17), which the database computes from the host name, puts
    devices in the natural order `_natural` spells in Python, both ways, on either engine."""
    store = Store.open(fresh_database(tmp_path_factory.mktemp("names")))
    try:
        policy = default_policy()
        names: dict[str, str] = {}
        for n, name in enumerate(AWKWARD_NAMES):
            device_id = f"{n:02x}" + "cd" * 15
            enroll(store, device_id)
            store.reports.store_reports([(report(device_id, 0, NOW, name, "linux"), [])])
            names[device_id] = name
        key = {d: (*_natural(name), d) for d, name in names.items()}
        expected = sorted(names, key=key.__getitem__)
        assert [names[d] for d in store.dashboard.ordered(policy, NOW, "host")] == [
            names[d] for d in expected
        ]
        backwards = sorted(names, key=lambda d: key[d][:-1], reverse=True)
        assert store.dashboard.ordered(policy, NOW, "host", descending=True) == backwards
    finally:
        store.close()
