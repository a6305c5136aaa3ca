"""Group commit over real mutual TLS and a real database (a SQLite file or PostgreSQL): reports
that arrive together share one transaction, each is acknowledged only once committed, one bad
report costs only itself, and a failed transaction acknowledges nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import logging
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from devposture.agent.transport import open_channel
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.server import log_ingest
from devposture.collector.store import CheckResult, OutboxFigures, ReportRecord, Store, StoreOutcome
from devposture.collector.store.base import to_us
from devposture.collector.store.disk_space import StorageFull
from devposture.collector.store.engine import AnyDatabase, SqliteDatabase
from devposture.v1 import devposture_pb2 as pb
from devposture.v1 import devposture_pb2_grpc as pb_grpc
from tests.collector.enrolled import enroll
from tests.collector.one_by_one import store_one_by_one
from tests.conftest import (
    EnrolledAgent,
    LiveCollector,
    enroll_agent,
    make_report,
)
from tests.databases import fresh_database, statements_issued

MANY = 300


def _integrity_error(store: Store) -> type[Exception]:
    """What the store's engine raises when a constraint refuses a row."""
    if store._db.dialect.is_sqlite:
        return sqlite3.IntegrityError
    import psycopg  # noqa: PLC0415  (installed wherever the PostgreSQL leg runs)

    return psycopg.IntegrityError


def _count(collector: LiveCollector, sql: str, *args: object) -> int:
    store = collector.store()
    try:
        return int(store._db.execute(sql, args).fetchone()[0])
    finally:
        store.close()


def test_concurrent_reports_share_transactions_and_each_is_stored_once(
    generous_collector: LiveCollector, tmp_path: Path
) -> None:
    agent = enroll_agent(generous_collector, tmp_path / "agent")
    reports = [make_report(agent.enrollment.device_id) for _ in range(MANY)]
    with open_channel(agent.state, agent.enrollment) as channel:
        stub = pb_grpc.CollectorStub(channel)
        calls = [stub.Report.future(pb.ReportRequest(report=r), timeout=60) for r in reports]
        acks = [call.result() for call in calls]
    assert sorted(a.report_id for a in acks) == sorted(r.report_id for r in reports)
    assert not any(a.duplicate for a in acks)
    figures = generous_collector.service.committer.figures
    assert figures.reports >= MANY
    # Shared syncs: fewer commits than reports (one per report would be MANY). How many fewer
    # depends on the machine's load; on an idle 2-core machine about 40 for 300.
    assert figures.commits <= MANY * 0.75, figures
    assert figures.largest_group >= 4
    assert _count(generous_collector, "SELECT COUNT(*) FROM reports") == MANY


def test_the_same_report_sent_twice_at_once_is_stored_once_and_acknowledged_twice(
    generous_collector: LiveCollector, tmp_path: Path
) -> None:
    agent = enroll_agent(generous_collector, tmp_path / "agent")
    report = make_report(agent.enrollment.device_id)
    with open_channel(agent.state, agent.enrollment) as channel:
        stub = pb_grpc.CollectorStub(channel)
        calls = [stub.Report.future(pb.ReportRequest(report=report), timeout=30) for _ in range(8)]
        acks = [call.result() for call in calls]
    assert all(a.report_id == report.report_id for a in acks)
    assert sum(not a.duplicate for a in acks) == 1
    assert _count(generous_collector, "SELECT COUNT(*) FROM reports") == 1


def _record(report_id: str, device_id: str, at: dt.datetime) -> ReportRecord:
    return ReportRecord(report_id, device_id, at, at, "1", b"body", "h", "linux", "Debian", "12")


def test_one_bad_report_in_a_group_costs_only_itself(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    store = live_collector.store()
    now = dt.datetime.now(dt.UTC)
    refused = _integrity_error(store)
    try:
        outcomes = store.reports.store_reports([
            (_record("a", agent.enrollment.device_id, now), [CheckResult("firewall", "PASS", "")]),
            # No such device: the foreign key refuses it inside its own savepoint.
            (_record("b", "not-enrolled", now), []),
            (_record("c", agent.enrollment.device_id, now), []),
            (_record("a", agent.enrollment.device_id, now), []),
        ])  # fmt: skip
    finally:
        store.close()
    assert outcomes[0] is StoreOutcome.STORED
    assert isinstance(outcomes[1], refused), outcomes[1]
    assert outcomes[2] is StoreOutcome.STORED
    assert outcomes[3] is StoreOutcome.DUPLICATE
    assert _count(live_collector, "SELECT COUNT(*) FROM reports") == 2
    assert _count(live_collector, "SELECT COUNT(*) FROM check_results WHERE report_id='a'") == 1


@contextmanager
def _disk_full(database: AnyDatabase) -> Iterator[None]:
    """Every write that adds a report fails as on a full disk, until the block ends. SQLite:
    SQLITE_FULL, its database forbidden to grow. PostgreSQL: what the server answers when it
    cannot extend a file (SQLSTATE 53100, disk_full), from a trigger on reports."""
    if isinstance(database, SqliteDatabase):
        pages = database.execute("PRAGMA page_count").fetchone()[0]
        database.execute(f"PRAGMA max_page_count = {pages}")
        try:
            yield
        finally:
            database.execute("PRAGMA max_page_count = 1073741823")
        return
    database.execute(
        "CREATE FUNCTION no_space_left() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE EXCEPTION 'could not extend file: No space left on device'"
        " USING ERRCODE = 'disk_full'; END $$"
    )
    database.execute(
        "CREATE TRIGGER no_space_left BEFORE INSERT ON reports"
        " FOR EACH ROW EXECUTE FUNCTION no_space_left()"
    )
    try:
        yield
    finally:
        database.execute("DROP TRIGGER no_space_left ON reports")
        database.execute("DROP FUNCTION no_space_left()")


def test_a_failed_transaction_acknowledges_nothing_and_the_agent_keeps_its_report(
    live_collector: LiveCollector, agent: EnrolledAgent
) -> None:
    report = make_report(agent.enrollment.device_id)
    for letter in "xyz":  # more than a page (an empty table's root page holds one)
        report.chat_backups.backups.add(location=f"~/{letter}" + "y" * 4000)
    with (
        _disk_full(live_collector._running.store._db),
        open_channel(agent.state, agent.enrollment) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        pb_grpc.CollectorStub(channel).Report(pb.ReportRequest(report=report), timeout=30)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    # A full disk is a push-back like any other: the agent keeps its report and retries.
    assert "disk is full): your reports are kept" in (refused.value.details() or "")
    call = refused.value
    assert isinstance(call, grpc.Call)
    assert [k for k, v in call.trailing_metadata() or () if k == "retry-after-ms"]
    assert _count(live_collector, "SELECT COUNT(*) FROM reports") == 0
    assert live_collector.service.committer.figures.failures == 1


def test_group_outcomes_come_only_after_commit(tmp_path: Path) -> None:
    """The store's contract the ack relies on: a second connection sees every report of a
    group as soon as store_reports returns."""
    database = fresh_database(tmp_path, "db.sqlite")
    store = Store.open(database)
    now = dt.datetime.now(dt.UTC)
    store._db.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us)"
        " VALUES ('d', ?, 't', '1', ?)",
        (to_us(now), to_us(now)),
    )
    group: list[tuple[ReportRecord, list[CheckResult]]] = [
        (_record(f"r{i}", "d", now), []) for i in range(50)
    ]
    assert store.reports.store_reports(group) == [StoreOutcome.STORED] * 50
    other = Store.open(database)
    try:
        assert len(other.reports.report_ids("d")) == 50
    finally:
        other.close()
        store.close()


def test_finding_a_devices_newest_report_reads_an_index_not_its_history(tmp_path: Path) -> None:
    """Every stored report asks for the device's newest collection time; read from the table,
    that costs the device's whole history (bodies included) and ingest slows month by month."""
    store = Store.open(fresh_database(tmp_path, "db.sqlite"))
    query = "SELECT MAX(collected_us) FROM reports WHERE device_id = ?"
    sqlite = store._db.dialect.is_sqlite
    explain = "EXPLAIN QUERY PLAN" if sqlite else "EXPLAIN"
    try:
        plan = store._db.execute(f"{explain} {query}", ("d",)).fetchall()
    finally:
        store.close()
    details = " ".join(str(row[-1]) for row in plan)
    if sqlite:
        assert "COVERING INDEX reports_by_collection" in details, details
    else:  # PostgreSQL's plan: the index answers it, newest entry first, not the table's rows
        assert "Index Only Scan" in details, details
        assert "using reports_by_collection" in details, details


def test_the_collector_logs_a_line_a_minute_on_what_it_stored_not_one_per_report(
    live_collector: LiveCollector, agent: EnrolledAgent, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    summary = asyncio.run_coroutine_threadsafe(
        log_ingest(live_collector._running, stop, every=0.3), live_collector._loop
    )
    caplog.set_level(logging.DEBUG, logger="devposture.collector")
    with open_channel(agent.state, agent.enrollment) as channel:
        stub = pb_grpc.CollectorStub(channel)
        for _ in range(3):
            report = make_report(agent.enrollment.device_id)
            stub.Report(pb.ReportRequest(report=report), timeout=10)
    time.sleep(0.8)
    live_collector._loop.call_soon_threadsafe(stop.set)
    summary.result(10)
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("3 report(s) committed in" in line for line in info), info
    assert not any(report.report_id in line for line in info)


def _device(store: Store, device_id: str, at: dt.datetime) -> None:
    store._db.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us)"
        " VALUES (?, ?, 't', '1', ?)",
        (device_id, to_us(at), to_us(at)),
    )


def _tables(store: Store) -> dict[str, list[tuple[object, ...]]]:
    """Everything a stored report writes; of the chain what it covers and in which order (a
    state entry's time is when it was written)."""
    queries = {
        "reports": "SELECT * FROM reports ORDER BY report_id",
        "devices": "SELECT device_id, last_report_us, hostname, os_family, os_name, os_version,"
        " agent_version, clock_skew_ms, outbox_pending, outbox_coalesced_total,"
        " outbox_dropped_total, outbox_corrupt_total FROM devices ORDER BY device_id",
        "check_results": "SELECT * FROM check_results ORDER BY device_id, check_id",
        "state_changes": "SELECT * FROM state_changes ORDER BY device_id, check_id, since_us",
        "chain": "SELECT seq, kind, record_key, payload FROM evidence_chain ORDER BY seq",
    }
    return {name: store._db.execute(sql).fetchall() for name, sql in queries.items()}


def test_a_group_written_together_leaves_what_storing_its_reports_one_by_one_leaves(
    tmp_path: Path,
) -> None:
    """The group is written with a few statements for all its reports; what it leaves must be
    exactly what `_store_one` report after report leaves: outcomes, rows, the chain."""
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

    def at(minutes: int) -> dt.datetime:
        return t0 + dt.timedelta(minutes=minutes)

    def record(report_id: str, device_id: str, collected: int, received: int, host: str,
               skew: int | None = None, pending: int = 0) -> ReportRecord:  # fmt: skip
        return ReportRecord(
            report_id, device_id, at(received), at(collected), f"agent-{host}",
            f"body {report_id}".encode(), host, "linux", "Debian", "12", skew,
            OutboxFigures(pending, pending * 2, pending * 3, pending * 4),
        )  # fmt: skip

    def verdicts(firewall: str, antivirus: str, reason: str = "") -> list[CheckResult]:
        return [CheckResult("firewall", firewall, f"firewall {reason}"),
                CheckResult("antivirus", antivirus, f"antivirus {reason}")]  # fmt: skip

    history = [
        (record("h1", "d1", 0, 1, "one", skew=5, pending=1), verdicts("PASS", "FAIL")),
        (record("h2", "d2", 0, 1, "two"), verdicts("FAIL", "FAIL")),
        (record("h3", "d1", 10, 11, "one"), verdicts("PASS", "PASS")),
    ]
    group = [
        # newer, a state change on one check
        (record("g1", "d1", 20, 30, "one-b", pending=2), verdicts("FAIL", "PASS", "g1")),
        # a late, older report: no verdict of a newer one is overwritten, no state change
        (record("g2", "d1", 5, 30, "one-c", skew=-7, pending=9), verdicts("PASS", "FAIL", "g2")),
        # already stored (same device: duplicate; another device: conflict), and twice here
        (record("h2", "d2", 0, 30, "two-b"), verdicts("PASS", "PASS")),
        (record("h1", "d2", 0, 30, "two-c"), verdicts("PASS", "PASS")),
        (record("g3", "d2", 25, 30, "two-d", skew=3, pending=4), verdicts("PASS", "FAIL", "g3")),
        (record("g3", "d2", 25, 31, "two-e"), verdicts("PASS", "PASS")),
        # the same collection time as the newest: newest too; the state changes back
        (record("g4", "d1", 20, 32, "one-d", pending=5), verdicts("PASS", "PASS", "g4")),
        # a first report, with a check the others do not have
        (record("g5", "d3", 40, 33, "three"),
         [*verdicts("UNKNOWN", "FAIL", "g5"), CheckResult("os-updates", "FAIL", "old")]),
        # newer again, on a device already changed in this group
        (record("g6", "d1", 50, 34, "one-e", skew=11, pending=6), verdicts("FAIL", "PASS", "g6")),
    ]  # fmt: skip
    stores = []
    for name in ("together", "one-by-one"):
        store = Store.open(fresh_database(tmp_path, f"{name}.sqlite"))
        for device_id in ("d1", "d2", "d3"):
            _device(store, device_id, t0)
        for item in history:
            store.reports.store_report(*item)
        stores.append(store)
    together, one_by_one = stores
    try:
        statements: list[str] = []
        together._db.trace(statements.append)
        outcomes = together.reports.store_reports(group)
        together._db.trace(None)
        statements = statements_issued(statements)
        assert outcomes == store_one_by_one(one_by_one, group)
        stored, duplicate, conflict = (StoreOutcome.STORED, StoreOutcome.DUPLICATE,
                                       StoreOutcome.CONFLICT)  # fmt: skip
        assert outcomes == [stored, stored, duplicate, conflict, stored, duplicate, stored,
                            stored, stored]  # fmt: skip
        # Written together, not report by report (each of those takes a dozen statements).
        assert "SAVEPOINT report" not in statements, statements
        # The seal that follows (store/sealing.py) reads what waits and, when due, chains
        # it: five statements at most, whatever the group's size. (Four of the group's own:
        # it first tried its rows as all new, and one was not: `_stored_if_all_new`.)
        sealing = statements.index("RELEASE reports") + 1
        assert "ROLLBACK TO fresh" in statements
        assert len(statements[:sealing]) < len(group) * 2 + 4, statements
        assert len([s for s in statements[sealing:] if s != "COMMIT"]) <= 5, statements[sealing:]
        written, reference = _tables(together), _tables(one_by_one)
        for table in reference:
            assert written[table] == reference[table], table
        assert len(written["state_changes"]) > len(history) * 2  # the group changed states
        head = together.evidence.chain_head()
        assert head is not None
        entries = together.evidence.chain_entries(1, head.seq)
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
        assert all(e.recomputed() == e.hash for e in entries)
        assert all(b.at_us >= a.at_us for a, b in itertools.pairwise(entries))
    finally:
        for store in stores:
            store.close()


def test_a_group_of_new_ids_is_not_looked_up_before_it_is_written(tmp_path: Path) -> None:
    """The usual group (no id stored before) is inserted as new straight away; what it leaves
    is still what storing its reports one by one leaves (the newest of each device read
    before its rows are written)."""
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    stores = [Store.open(fresh_database(tmp_path, f"{name}.sqlite"))
              for name in ("together", "one-by-one")]  # fmt: skip
    together, one_by_one = stores
    group = [
        (ReportRecord(f"n{k}", f"d{k % 2}", t0 + dt.timedelta(minutes=k + 1),
                      t0 + dt.timedelta(minutes=k), "1.0", f"body {k}".encode(), "pc", "linux",
                      "Debian", "12"),
         [CheckResult("firewall", "PASS" if k % 3 else "FAIL", f"firewall {k}")])
        for k in range(6)
    ]  # fmt: skip
    try:
        for store in stores:
            for device_id in ("d0", "d1"):
                _device(store, device_id, t0)
        statements: list[str] = []
        together._db.trace(statements.append)
        held: dict[str, dict[str, int]] = {}
        outcomes = together.reports.store_reports(group, held)
        together._db.trace(None)
        held_alone: dict[str, dict[str, int]] = {}
        assert outcomes == store_one_by_one(one_by_one, group, held_alone)
        assert outcomes == [StoreOutcome.STORED] * len(group)
        assert held == held_alone and set(held) == {f"n{k}" for k in range(6)}
        assert not [s for s in statements if s.startswith("SELECT report_id, device_id")]
        assert "ROLLBACK TO fresh" not in statements_issued(statements)
        written, reference = _tables(together), _tables(one_by_one)
        for table in reference:
            assert written[table] == reference[table], table
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("seed", range(12))
def test_random_groups_written_together_leave_what_one_by_one_leaves(
    tmp_path: Path, seed: int
) -> None:
    """The same, on random groups: several devices, collection times out of order and tied,
    ids repeated within the group and across groups, states flipping, skews and outbox
    figures coming and going; three groups in a row on the same two databases."""
    rng = random.Random(seed)
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    devices = ["d1", "d2", "d3", "d4"]
    checks = ["antivirus", "firewall", "os-updates"]
    stores = [Store.open(fresh_database(tmp_path, f"{name}.sqlite"))
              for name in ("together", "one-by-one")]  # fmt: skip
    together, one_by_one = stores
    try:
        for store in stores:
            for device_id in devices:
                _device(store, device_id, t0)
        ids: list[str] = []
        for _ in range(3):
            group: list[tuple[ReportRecord, list[CheckResult]]] = []
            for _ in range(rng.randint(1, 40)):
                if ids and rng.random() < 0.15:
                    report_id = rng.choice(ids)
                else:
                    report_id = f"r{len(ids)}"
                    ids.append(report_id)
                device_id = rng.choice(devices)
                collected = t0 + dt.timedelta(minutes=rng.randint(0, 30))
                received = collected + dt.timedelta(minutes=rng.randint(0, 5))
                pending = rng.randint(0, 3)
                report = ReportRecord(
                    report_id, device_id, received, collected, rng.choice(["1.0", "1.1"]),
                    f"body {report_id} {rng.random()}".encode(), rng.choice(["a", "b"]),
                    "linux", "Debian", rng.choice(["12", "13"]),
                    rng.choice([None, None, rng.randint(-5000, 5000)]),
                    OutboxFigures(pending, pending + 1, pending + 2, pending + 3),
                )  # fmt: skip
                results = [
                    CheckResult(c, rng.choice(["PASS", "FAIL", "UNKNOWN"]), f"{c} {rng.random()}")
                    for c in rng.sample(checks, rng.randint(0, len(checks)))
                ]
                group.append((report, results))
            held: dict[str, dict[str, int]] = {}
            held_alone: dict[str, dict[str, int]] = {}
            outcomes = together.reports.store_reports(group, held)
            assert outcomes == store_one_by_one(one_by_one, group, held_alone)
            written, reference = _tables(together), _tables(one_by_one)
            for table in reference:
                assert written[table] == reference[table], (table, seed)
            # Since when each state holds, as told for the grace deadlines: what storing
            # alone says, and for each device's last newest report what the history says.
            assert held == held_alone, seed
            _held_is_the_history(together, group, outcomes, held)
    finally:
        for store in stores:
            store.close()


def _held_is_the_history(
    store: Store, group: list[tuple[ReportRecord, list[CheckResult]]],
    outcomes: list[StoreOutcome | Exception], held: dict[str, dict[str, int]],
) -> None:  # fmt: skip
    """Each device's last report stored from `group` that the store said was its newest:
    for each of its checks, the since of the check's last state change in the history."""
    last: dict[str, tuple[ReportRecord, list[CheckResult]]] = {}
    for (report, results), outcome in zip(group, outcomes, strict=True):
        if outcome is StoreOutcome.STORED and report.report_id in held:
            last[report.device_id] = (report, results)
    for device_id, (report, results) in last.items():
        history = {
            check_id: to_us(since)
            for _, check_id, _, _, since in store.device_pages.changes(
                device_id, report.received_at + dt.timedelta(days=1)
            )
        }
        told = held[report.report_id]
        assert told == {r.check_id: history[r.check_id] for r in results}


def test_a_number_rolled_back_is_sealed_with_the_report_that_takes_it_again(
    tmp_path: Path,
) -> None:
    """The records a seal takes from memory (those this process made as it stored reports)
    are only the committed ones: a group whose transaction failed leaves nothing behind, so
    when another collector's reports take its numbers, they are sealed with their own."""
    target = fresh_database(tmp_path, "db.sqlite")
    store, other = Store.open(target), Store.open(target)
    now = dt.datetime.now(dt.UTC)
    enroll(store, "dev", now - dt.timedelta(days=1))
    for each in (store, other):
        each.reports.seal_after_us, each.reports.seal_reports = 10**15, 20  # by count only
    store.reports.store_reports([(_record(f"kept-{k}", "dev", now), []) for k in range(3)])
    big: list[tuple[ReportRecord, list[CheckResult]]] = [
        (dataclasses.replace(_record(f"lost-{k}", "dev", now), body=b"x" * 9000), [])
        for k in range(8)
    ]
    with _disk_full(store._db), pytest.raises(StorageFull):
        store.reports.store_reports(big)  # numbers 4-11, rolled back
    other.reports.store_reports([(_record(f"took-{k}", "dev", now), []) for k in range(8)])
    # 20 waiting: this process seals 1-20, its own records from memory, the others' read.
    store.reports.store_reports([(_record(f"more-{k}", "dev", now), []) for k in range(9)])
    assert store.sealing.waiting() == 0
    numbers = dict(store._db.execute("SELECT report_id, n FROM reports").fetchall())
    assert sorted(numbers.values()) == list(range(1, 21)) and "lost-0" not in numbers
    assert numbers["took-0"] == 4
    found = table_disagreements(store)
    assert found.ok, found.text()
