"""A device IT revoked (stolen) or retired (replaced) leaves the fleet's compliance at that
moment, and its history stays: retiring 50 old laptops used to lower the fleet's figures for
good (each counted STALE once silent, or UNKNOWN) and kept them in the failing list and the
alerts. On a real database (a SQLite file, or PostgreSQL): four devices, one passing, one
failing, one failing that IT retires at LEFT and one silent (STALE) that IT revokes then.
Counted now they are two; as of an hour before LEFT, four, as before."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from devposture.collector.alerts.detect import current
from devposture.collector.cli import main as collector_cli
from devposture.collector.clock import utcnow
from devposture.collector.credentials import ADMIN
from devposture.collector.render import Row
from devposture.collector.reports import failing_rows, fleet_rows, history_rows
from devposture.collector.standing_rule import ACTIVE, in_fleet, sql_in_fleet, sql_left_fleet
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.store.dashboard_reads import FailingWanted
from devposture.collector.store.device_list import DeviceFilter
from devposture.collector.store.fleet import fleet_figures_as_of
from devposture.collector.store.fleet_marks import (
    Measured,
    chain_seq,
    judging_key,
    keep,
    marked,
    report_number,
)
from devposture.collector.tokens import new_token
from devposture.policy import Policy, default_policy
from tests.collector.cli_fleet import DEVICES, CliFleet, cli_fleet  # noqa: F401
from tests.collector.test_admin import admin_collector
from tests.conftest import enroll_agent
from tests.databases import fresh_database

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
LEFT = NOW - dt.timedelta(hours=3)
BEFORE = LEFT - dt.timedelta(hours=1)
PASSING, FAILING, RETIRED, REVOKED = (f"{n:02x}" + "ef" * 15 for n in range(4))


def _enroll(store: Store, device_id: str, at: dt.datetime) -> None:
    token = new_token()
    store.identity.add_token(token, at, at + dt.timedelta(hours=1), uses=1, group="财务部")
    store.identity.enroll(token, at, DeviceRecord(device_id, device_id[:4], NOW + dt.timedelta(
        days=90), hostname=f"pc-{device_id[:2]}"))  # fmt: skip


def _report(store: Store, policy: Policy, device_id: str, n: int, at: dt.datetime,
            state: str) -> None:  # fmt: skip
    record = ReportRecord(f"{device_id}-{n}", device_id, at, at, "1", b"body",
                          f"pc-{device_id[:2]}", "linux", "Debian", "12")  # fmt: skip
    store.reports.store_report(record, [CheckResult(c.check_id, state, "r") for c in policy.checks])


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Store, Policy]]:
    policy = default_policy()
    store = Store.open(fresh_database(tmp_path))
    enrolled = NOW - dt.timedelta(days=10)
    for device_id in (PASSING, FAILING, RETIRED, REVOKED):
        _enroll(store, device_id, enrolled)
    # Failing for days (past every grace period), reported within the hour.
    for device_id, state in ((PASSING, "PASS"), (FAILING, "FAIL"), (RETIRED, "FAIL")):
        _report(store, policy, device_id, 0, NOW - dt.timedelta(days=5), state)
        _report(store, policy, device_id, 1, NOW - dt.timedelta(hours=6), state)
        _report(store, policy, device_id, 2, NOW - dt.timedelta(minutes=30), state)
    _report(store, policy, REVOKED, 0, NOW - dt.timedelta(days=5), "PASS")  # silent since
    assert store.identity.set_device_status(RETIRED, "retired", LEFT, "replaced by a new laptop")
    assert store.identity.set_device_status(REVOKED, "revoked", LEFT, "stolen")
    yield store, policy
    store.close()


def _tally(row: Row, *columns: str) -> tuple[int, ...]:
    """A row's counts in `columns` (a+b: their sum)."""
    return tuple(sum(int(row[c] or 0) for c in column.split("+")) for column in columns)


def _devices(rows: list[Row]) -> set[object]:
    return {row["devices"] for row in rows}


def test_counts_now_leave_them_out_and_counts_before_keep_them(
    fleet: tuple[Store, Policy],
) -> None:
    """`report fleet` (now, as of any moment, one group's), judged per device as the
    reference and counted in SQL every way: two devices now, four as of before LEFT, with
    the retired one's failure and the revoked one's STALE then."""
    store, policy = fleet
    check = policy.checks[0].check_id
    for group in (None, "财务部"):
        now = fleet_rows(store, policy, NOW, current=True, group=group)
        assert now == fleet_rows(store, policy, NOW, exact=True, group=group)
        assert now == fleet_rows(store, policy, NOW, group=group)  # as of the moment now
        assert _devices(now) == {2}
        assert {_tally(r, "pass", "fail+grace", "stale", "unknown") for r in now} == {(1, 1, 0, 0)}
        before = fleet_rows(store, policy, BEFORE, group=group)
        assert before == fleet_rows(store, policy, BEFORE, exact=True, group=group)
        assert _devices(before) == {4}
        assert {_tally(r, "pass", "fail+grace", "stale") for r in before} == {(1, 2, 1)}
    for way in ("verdicts", "history"):
        at_now = fleet_figures_as_of(store._db, policy, NOW, way=way)
        assert sum(at_now[check].values()) == 2 and at_now[check]["STALE"] == 0
        at_before = fleet_figures_as_of(store._db, policy, BEFORE, way=way)
        assert sum(at_before[check].values()) == 4
    # The moment itself: gone from it on.
    assert _devices(fleet_rows(store, policy, LEFT)) == {2}
    # Devices per status still name them.
    assert store.fleet.fleet_figures(policy, NOW).by_status == {
        "active": 2, "revoked": 1, "retired": 1}  # fmt: skip


def test_midnight_marks_and_the_days_record_agree(fleet: tuple[Store, Policy]) -> None:
    """A mark after LEFT counts two devices, one before four; the day's record, two. A count
    under way when a device is retired is not kept (a collector whose clock runs behind may
    date it before the moment counted)."""
    store, policy = fleet
    after, earlier = NOW - dt.timedelta(hours=1), LEFT - dt.timedelta(hours=2)
    for at, devices in ((after, 2), (earlier, 4)):
        assert store.fleet.mark(policy, at)
        kept = marked(store._db, policy, at)
        assert kept is not None and {sum(s.values()) for s in kept.values()} == {devices}
        assert store.fleet.mark(policy, at, "财务部")
        assert store.fleet.fleet_figures_as_of(policy, at, "财务部") == kept
    store.fleet.record_fleet_day(policy, NOW)
    (day,) = store.fleet.fleet_days().values()
    assert {sum(s.values()) for s in day.values()} == {2}
    # Counted, then PASSING retired meanwhile (dated at the moment), then kept: refused.
    counts = fleet_figures_as_of(store._db, policy, NOW)
    measured = Measured(int(NOW.timestamp() * 1_000_000), judging_key(policy), counts,
                        chain_seq(store._db), report_number(store._db))  # fmt: skip
    assert store.identity.set_device_status(PASSING, "retired", NOW, "replaced")
    with store._db.transaction() as cursor:
        assert not keep(cursor, measured)


def test_a_mark_counted_before_the_rule_is_not_read(fleet: tuple[Store, Policy]) -> None:
    """Marks kept by an older collector counted revoked and retired devices: their judging
    key differs, so they are counted again rather than read."""
    store, policy = fleet
    # The key schema 19's collectors kept their marks under.
    parameters = {"stale_after_hours": policy.stale_after_hours,
                  "checks": [[c.check_id, c.grace_hours] for c in policy.checks]}  # fmt: skip
    old_key = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
    with store._db.transaction() as cursor:
        cursor.execute(
            "INSERT INTO fleet_marks(at_us, judged_by, check_id, state, devices)"
            " VALUES (?, ?, ?, 'STALE', 4)",
            (int(NOW.timestamp() * 1_000_000), old_key, policy.checks[0].check_id),
        )
    assert judging_key(policy) != old_key and marked(store._db, policy, NOW) is None


def test_the_dashboard_lists_and_counts_only_the_fleet(fleet: tuple[Store, Policy]) -> None:
    store, policy = fleet
    stale = store.fleet.fleet_figures(policy, NOW).by_check[policy.checks[0].check_id]["STALE"]
    headline = store.dashboard.headline(policy, NOW, stale)
    assert (headline.compliant, headline.needing_action, headline.stale) == (1, 1, 0)
    assert store.dashboard.headline(policy, NOW, stale, "财务部") == headline
    assert set(store.device_list.matching(policy, NOW, DeviceFilter())) == {PASSING, FAILING}
    assert store.device_list.matching(policy, NOW, DeviceFilter(stale=True)) == []
    assert set(store.dashboard.ordered(policy, NOW, "host")) == {PASSING, FAILING}
    assert set(store.device_list.matching(policy, BEFORE, DeviceFilter())) == {
        PASSING, FAILING, RETIRED, REVOKED}  # fmt: skip
    failing = store.fleet.failing_now(policy, NOW)
    assert {f.device_id for f in failing} == {FAILING}
    assert store.fleet.failing_count(policy, NOW) == len(failing) > 0
    for wanted in (FailingWanted(), FailingWanted(group="财务部")):
        listed = store.dashboard.failing(policy, NOW, wanted)
        assert {f.device_id for f in listed} == {FAILING}
        assert store.dashboard.failing_count(policy, NOW, wanted) == len(listed)


def test_report_failing_leaves_them_out_and_their_history_stays(
    fleet: tuple[Store, Policy],
) -> None:
    store, policy = fleet
    for rows in (failing_rows(store, policy, NOW, current=True), failing_rows(store, policy, NOW),
                 failing_rows(store, policy, NOW, current=True, group="财务部")):  # fmt: skip
        assert {r["device"] for r in rows} == {FAILING}
    assert {r["device"] for r in failing_rows(store, policy, BEFORE)} == {FAILING, RETIRED}
    history = history_rows(store, RETIRED, NOW, policy)
    assert {r["state"] for r in history} == {"FAIL"} and len(history) == len(policy.checks)
    assert history_rows(store, REVOKED, NOW, policy)


def test_alerts_are_quiet_about_them(fleet: tuple[Store, Policy]) -> None:
    """Neither failing nor STALE after LEFT; before it both were told."""
    store, policy = fleet
    told = current(store, policy, NOW)
    assert not [k for k in told if RETIRED in k or REVOKED in k]
    assert any(FAILING in k for k in told)
    assert {f.device_id for f in store.alerts.failing(policy, BEFORE)} == {FAILING, RETIRED}


def test_a_device_enrolled_again_with_a_new_key_counts_from_then(
    fleet: tuple[Store, Policy],
) -> None:
    """`enroll --force` makes a new key, so a new device id: the retired record stays out, the
    new one counts from its enrollment."""
    store, policy = fleet
    again = "99" + "ef" * 15
    _enroll(store, again, NOW - dt.timedelta(minutes=20))
    _report(store, policy, again, 0, NOW - dt.timedelta(minutes=10), "PASS")
    assert _devices(fleet_rows(store, policy, NOW, current=True)) == {3}
    assert _devices(fleet_rows(store, policy, NOW, exact=True)) == {3}
    assert _devices(fleet_rows(store, policy, NOW - dt.timedelta(minutes=30))) == {2}


def test_report_device_says_when_it_left_and_device_list_still_lists_it(
    cli_fleet: CliFleet,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = ["--data", str(cli_fleet.data)]
    device_id = DEVICES[0][0]
    assert collector_cli(["device", "retire", device_id, "--reason", "replaced", *data]) == 0
    capsys.readouterr()
    assert collector_cli(["report", "device", device_id, *data, "--lang", "en"]) != 0
    said = capsys.readouterr().err
    assert f"device {device_id} was retired at" in said and "report history" in said
    assert collector_cli(["report", "fleet", *data, "--format", "json"]) == 0
    assert "\"devices\": 2" in capsys.readouterr().out.replace("\n", " ")
    assert collector_cli(["device", "list", *data, "--format", "json"]) == 0
    assert device_id in capsys.readouterr().out
    earlier = (cli_fleet.now - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert collector_cli(["report", "device", device_id, *data, "--as-of", earlier]) == 0
    assert collector_cli(["report", "history", device_id, *data]) == 0


def test_the_sql_of_who_is_in_the_fleet_is_the_python_rule(tmp_path: Path) -> None:
    """`sql_in_fleet` and `sql_left_fleet`, evaluated by the engine, against `in_fleet`: for
    an active device, one that left before, at and after the moment, and a status without
    its moment (left since ever: never counted by a guess)."""
    store = Store.open(fresh_database(tmp_path))
    try:
        for status, status_us in (("active", None), ("retired", 5), ("revoked", 10),
                                  ("retired", 15), ("revoked", None)):  # fmt: skip
            left_at = None if status == ACTIVE else (status_us if status_us is not None else -1)
            row = store._db.execute(
                f"SELECT {sql_in_fleet('d', ':t')}, {sql_left_fleet('d', ':t')}"
                " FROM (SELECT CAST(:status AS TEXT) AS status,"
                " CAST(:status_us AS BIGINT) AS status_us) AS d",
                {"t": 10, "status": status, "status_us": status_us},
            ).fetchone()
            expected = in_fleet(left_at, 10)
            assert (bool(row[0]), bool(row[1])) == (expected, not expected), (status, status_us)
    finally:
        store.close()


# --- a waiver for a device that left --------------------------------------------------------


def test_waiver_add_refuses_a_device_that_left_the_fleet_with_the_fix(
    cli_fleet: CliFleet,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A waiver on a retired or revoked device exempts nothing (it is judged no more), and
    IT meant the computer in use: refused, saying when it left and where the ids in use are,
    as an unknown device is; nothing is recorded, and a device in use still takes one."""
    data = ["--data", str(cli_fleet.data)]
    retired, revoked, in_use = (d for d, _ in DEVICES)
    assert collector_cli(["device", "retire", retired, "--reason", "replaced", *data]) == 0
    assert collector_cli(["device", "revoke", revoked, "--reason", "stolen", *data]) == 0
    capsys.readouterr()
    expires = (cli_fleet.now + dt.timedelta(days=7)).strftime("%Y-%m-%d")
    waiver = ["waiver", "add", "--check", "firewall", "--owner", "IT", "--reason", "rollout",
              "--expires", expires, *data]  # fmt: skip
    for device_id, status in ((retired, "retired"), (revoked, "revoked")):
        assert collector_cli([*waiver, "--device", device_id]) == 1
        said = capsys.readouterr().err
        assert f"device {device_id} was {status} at" in said, said
        assert "left the fleet" in said and "device list" in said, said
    # One that left among devices in use: none of them is waived.
    assert collector_cli([*waiver, "--device", in_use, "--device", retired]) == 1
    assert f"device {retired} was retired at" in capsys.readouterr().err
    store = cli_fleet.store()
    try:
        assert store.waivers.recorded() == []
    finally:
        store.close()
    assert collector_cli([*waiver, "--device", "nobody"]) == 1  # unknown: as before
    assert "no enrolled device nobody" in capsys.readouterr().err
    assert collector_cli([*waiver, "--device", in_use]) == 0


def test_waiver_add_of_a_device_that_left_is_failed_precondition_on_the_admin_port(
    tmp_path: Path,
) -> None:
    """Over the admin port (real TLS, a credential), the refusal is FAILED_PRECONDITION: the
    device exists (an unknown one is NOT_FOUND) but is in no state to be waived. Audited as
    an error."""
    with admin_collector(tmp_path / "collector") as collector:
        agent = enroll_agent(collector.live, tmp_path / "agent", hostname="old-laptop")
        device_id = agent.enrollment.device_id
        admin = collector.credential("Li Wei (IT)", ADMIN)
        collector.run(admin, "device", "retire", device_id=device_id, reason="replaced")
        expires = (utcnow() + dt.timedelta(days=7)).isoformat()
        arguments = {"check": "firewall", "owner": "Li Wei", "reason": "rollout",
                     "expires": expires}  # fmt: skip
        with pytest.raises(grpc.RpcError) as refused:
            collector.run_with(admin, ("waiver", "add"), {"device": device_id, **arguments})
        error = refused.value
        assert isinstance(error, grpc.Call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"device {device_id} was retired at" in str(error.details())
        with pytest.raises(grpc.RpcError) as unknown:
            collector.run_with(admin, ("waiver", "add"), {"device": "nobody", **arguments})
        assert isinstance(unknown.value, grpc.Call)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
        assert [(e.command, e.outcome) for e in collector.audit()][-2:] == [
            ("waiver add", "error"), ("waiver add", "error")]  # fmt: skip
        store = collector.store()
        try:
            assert store.waivers.recorded() == []
        finally:
            store.close()
