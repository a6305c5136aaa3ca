"""Reports sealed into the evidence chain in groups (`store/sealing.py`, schema 14), on both
engines: when a seal is due, what a group holds, several writers on one database, a collector
that stopped before sealing, and a row slipped into a sealed range."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.evidence import chain, export, signing, verify
from devposture.collector.evidence.crosscheck import PeriodCheck, table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store, sealing
from devposture.collector.store.base import to_us
from devposture.collector.store.sealing import SEAL_AFTER_US
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from tests.collector.enrolled import enroll
from tests.databases import fresh_database, unguarded

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def _enroll(store: Store, device_id: str) -> None:
    enroll(store, device_id, T0)


def _record(report_id: str, device_id: str, seconds: float) -> ReportRecord:
    at = T0 + dt.timedelta(seconds=seconds)
    return ReportRecord(report_id, device_id, at, at, "1.0", f"body {report_id}".encode(), "pc",
                        "linux", "Debian", "12")  # fmt: skip


def _store(store: Store, report_id: str, seconds: float, device_id: str = "d1") -> None:
    store.reports.store_report(_record(report_id, device_id, seconds),
                               [CheckResult("firewall", "PASS", "on")])  # fmt: skip


def _groups(store: Store) -> list[tuple[int, list[str]]]:
    """(seq, report ids) of each report group in the chain, in order."""
    head = store.evidence.chain_head()
    entries = store.evidence.chain_entries(1, head.seq) if head else []
    return [(e.seq, [r.key for r in chain.as_reports(e)])
            for e in entries if e.kind == chain.REPORT_GROUP]  # fmt: skip


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    target = fresh_database(tmp_path, "db.sqlite")
    with contextlib.closing(Store.open(target)) as opened:
        for device_id in ("d1", "d2"):
            _enroll(opened, device_id)
    return target


@pytest.fixture
def store(target: DatabaseTarget) -> Iterator[Store]:
    with contextlib.closing(Store.open(target)) as opened:
        yield opened


def test_a_report_waits_until_the_oldest_waited_its_time_then_all_are_sealed_in_order(
    store: Store,
) -> None:
    wait = SEAL_AFTER_US / 1e6
    _store(store, "r1", 0)
    _store(store, "r2", wait / 2)
    assert _groups(store) == [] and store.sealing.waiting() == 2
    _store(store, "r3", wait)  # r1 has waited its time: everything waiting is sealed
    ((seq, reports),) = _groups(store)
    assert reports == ["r1", "r2", "r3"] and store.sealing.waiting() == 0
    entry = store.evidence.chain_entries(seq, seq)[0]
    assert entry.key == chain.group_key(1, 3)
    # Each record is what a report's own entry held.
    record = chain.group_records(entry)[0]
    assert record == chain.report_payload(("r1", "d1", to_us(T0), to_us(T0), "1.0", None),
                                          b"body r1")  # fmt: skip
    assert entry.payload == chain.canonical(entry.record())
    rows = store._db.execute("SELECT seq, first_n, last_n, reports FROM report_groups").fetchall()
    assert [tuple(r) for r in rows] == [(seq, 1, 3, 3)]


def test_a_group_holds_at_most_the_most_a_seal_waits_for(store: Store) -> None:
    store.reports.seal_reports = 5
    store.reports.store_reports([
        (_record(f"r{n:02d}", "d1" if n % 2 else "d2", 0), [CheckResult("firewall", "PASS", "on")])
        for n in range(12)
    ])  # fmt: skip
    assert [len(reports) for _, reports in _groups(store)] == [5, 5, 2]
    assert [r for _, reports in _groups(store) for r in reports] == [f"r{n:02d}" for n in range(12)]


def test_the_records_an_export_sizes_its_work_by_count_each_group_as_its_reports(
    store: Store,
) -> None:
    """`chain_records`: a period's entries, each report group counted as the reports it seals
    (what the export decides its workers by: check_pool.workers_for)."""
    store.reports.seal_reports = 5
    store.reports.store_reports([
        (_record(f"r{n:02d}", "d1", 0), [CheckResult("firewall", "PASS", "on")])
        for n in range(12)
    ])  # fmt: skip
    head = store.evidence.chain_head()
    assert head is not None
    entries = store.evidence.chain_entries(1, head.seq)
    groups = [e for e in entries if e.kind == chain.REPORT_GROUP]
    assert len(groups) == 3
    others = len(entries) - len(groups)  # enrollments, the first state change
    assert others > 0
    assert store.evidence.chain_records(1, head.seq) == others + 12
    # A span that holds the second group only, and one before any group.
    second = groups[1].seq
    assert store.evidence.chain_records(second, second) == 5
    assert store.evidence.chain_records(1, groups[0].seq - 1) == groups[0].seq - 1


def test_serve_seals_what_is_due_and_a_stopped_collector_leaves_nothing_waiting(
    store: Store, target: DatabaseTarget
) -> None:
    _store(store, "r1", 0)
    assert store.sealing.seal_due(to_us(T0) + SEAL_AFTER_US - 1) == 0  # not yet
    assert store.sealing.seal_due(to_us(T0) + SEAL_AFTER_US) == 1
    _store(store, "r2", 60)
    store.close()  # stopped without sealing (killed): r2 is stored, not yet chained
    with contextlib.closing(Store.open(target)) as reopened:
        assert reopened.sealing.waiting() == 1
        assert reopened.sealing.seal_all() == 1
        assert [reports for _, reports in _groups(reopened)] == [["r1"], ["r2"]]
        assert reopened.sealing.seal_all() == 0  # nothing twice


def test_two_writers_on_one_database_seal_every_report_once_in_commit_order(
    store: Store, target: DatabaseTarget
) -> None:
    """Two collectors share the database: numbers follow commits (the write lock), so no seal
    misses a report the other committed, and none is sealed twice."""
    other = Store.open(target)
    errors: list[BaseException] = []

    def write(writer: Store, prefix: str) -> None:
        try:
            for n in range(40):
                # received 20 s apart: seals fall due all along, written by either writer
                _store(writer, f"{prefix}{n:02d}", n * 20, "d1" if prefix == "a" else "d2")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, p))
               for w, p in ((store, "a"), (other, "b"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    assert not errors, errors
    store.sealing.seal_all()
    sealed = [r for _, reports in _groups(store) for r in reports]
    assert sorted(sealed) == sorted([f"a{n:02d}" for n in range(40)] +
                                    [f"b{n:02d}" for n in range(40)])  # fmt: skip
    numbered = [str(r[0]) for r in store._db.execute("SELECT report_id FROM reports ORDER BY n")]
    assert sealed == numbered  # one sequence, in the order stored
    assert table_disagreements(store).ok


def _three_sealed(store: Store) -> None:
    """Reports r0, r1 and r2 of d1, 20 s apart, sealed in one group."""
    for n in range(3):
        _store(store, f"r{n}", n * 20)
    store.sealing.seal_all(now_us=to_us(T0) + 60_000_000)


def test_a_row_slipped_into_a_sealed_range_is_named_as_added(
    store: Store, target: DatabaseTarget
) -> None:
    _three_sealed(store)
    assert table_disagreements(store).ok
    with unguarded(target) as db:  # numbered 2, pushed aside: its place taken by a forgery
        db.execute("UPDATE reports SET n = 100 WHERE report_id = 'r1'")
        db.execute(
            "INSERT INTO reports(report_id, device_id, received_us, collected_us, agent_version,"
            " body, n) VALUES ('forged', 'd1', ?, ?, '1.0', ?, 2)",
            (to_us(T0), to_us(T0), b"forged"),
        )
    found = table_disagreements(store)
    texts = [f.text() for f in found.found]
    assert any("'forged'" in t and "added outside the collector" in t for t in texts), texts
    assert not found.ok


def test_a_deleted_report_groups_row_does_not_get_its_reports_sealed_again(
    store: Store, target: DatabaseTarget
) -> None:
    # The seal took "sealed up to" from report_groups alone: its latest row deleted by hand,
    # the next seal sealed those reports again, each counted twice in every bundle and figure,
    # and audit check, the export and verify all agreed.
    _three_sealed(store)
    with unguarded(target) as db:
        db.execute("DELETE FROM report_groups WHERE seq = (SELECT MAX(seq) FROM report_groups)")
    _store(store, "r3", 80)
    store.sealing.seal_all(now_us=to_us(T0) + 120_000_000)
    assert [ids for _, ids in _groups(store)] == [["r0", "r1", "r2"], ["r3"]]
    assert table_disagreements(store).ok


def test_reports_sealed_twice_are_named_by_audit_check_the_export_and_verify(
    store: Store, target: DatabaseTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A chain where it happened (by a collector before this fix, or an entry inserted): the
    # seal is made to believe nothing was sealed, as it did once its report_groups row was gone.
    _three_sealed(store)
    with unguarded(target) as db:
        db.execute("DELETE FROM report_groups")
    monkeypatch.setattr(sealing, "_chained_through", lambda cur: 0)
    store.sealing.seal_all(now_us=to_us(T0) + 120_000_000)
    (first, _), (second, _) = _groups(store)
    said = f"seq {second}"
    found = table_disagreements(store)
    assert not found.ok
    assert any(said in f.text() and "counted twice" in f.text() for f in found.found), found.text()
    with pytest.raises(export.TablesDisagree, match="counted twice"):
        export.export_bundle(store, default_policy(), tmp_path, start=T0 - dt.timedelta(days=1),
                             end=dt.datetime.now(dt.UTC), out=tmp_path / "refused.zip")  # fmt: skip
    # What an older collector exported: the verifier names the second seal itself.
    monkeypatch.setattr(PeriodCheck, "sealed", lambda self, seals, entries: None)
    monkeypatch.setattr(PeriodCheck, "take", lambda self, findings, total: None)
    out = export.export_bundle(store, default_policy(), tmp_path, start=T0 - dt.timedelta(days=1),
                               end=dt.datetime.now(dt.UTC), out=tmp_path / "twice.zip")  # fmt: skip
    public = signing.load_or_create(tmp_path).public_key()
    text = verify.verify_bundle(out.path, public).text()
    assert "NOT VERIFIED" in text
    assert f"record seq {second} (1-3) seals reports 1–3, but seq {first} sealed" in text, text


def test_reports_received_before_the_clock_was_set_back_are_sealed_at_once(
    store: Store, tmp_path: Path
) -> None:
    # The collector's clock set back an hour (an NTP correction after running ahead): the
    # reports it received before waited, unsealed, until the clock passed their time again.
    _store(store, "r1", 3600)
    assert store.sealing.seal_due(to_us(T0)) == 1
    assert [reports for _, reports in _groups(store)] == [["r1"]]
    assert store.sealing.waiting() == 0
    # The seal dated before the report it seals is evidence like any other.
    out = export.export_bundle(store, default_policy(), tmp_path, start=T0 - dt.timedelta(days=1),
                               end=dt.datetime.now(dt.UTC), out=tmp_path / "back.zip")  # fmt: skip
    public = signing.load_or_create(tmp_path).public_key()
    assert "NOT VERIFIED" not in verify.verify_bundle(out.path, public).text()
