"""Retention probed as a privacy auditor and a compliance officer would (issue 18 item 7):
policy edits that shorten or lengthen it, bodies kept while current and freed later, late
reports, two collectors pruning at once, a pruning killed mid-way, and what an export and
`audit check` say afterwards. Real stores, on SQLite and PostgreSQL; times given as data.

The bodies are real serialized PostureReports with Wi-Fi sessions (tests/e2e/fleet.py), so
that their fact parts are cut and shared as a fleet's are."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from devposture.collector.evidence import bundle, export, signing, verify
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.store import CheckResult, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.target import DatabaseTarget
from devposture.policy import default_policy
from tests.collector.bundle_members import members_of
from tests.collector.enrolled import enroll
from tests.databases import fresh_database
from tests.e2e.fleet import closed_session, posture_report

# Local midnight in Beijing (16:00 UTC the day before): periods are cut at such a boundary.
T0 = dt.datetime(2026, 1, 4, 16, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def _body(device_id: str, at: dt.datetime, network: str) -> bytes:
    """A laptop's report at `at`, with a Wi-Fi session on `network` that day."""
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    session = closed_session(network, day + HOUR, day + 3 * HOUR, public=True)
    report = posture_report(device_id, at, sessions=[session])
    report.report_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device_id}/{to_us(at)}"))
    return report.SerializeToString()


def _store(store: Store, device_id: str, at: dt.datetime, network: str = "Cafe-Free") -> str:
    body = _body(device_id, at, network)
    report_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{device_id}/{to_us(at)}"))
    record = ReportRecord(report_id, device_id, at, at, "1.4.2", body, "PC", "linux",
                          "Debian", "12")  # fmt: skip
    store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
    return report_id


def _bodies(store: Store) -> dict[str, bytes]:
    return store.reports.report_bodies(store.reports.report_ids())


def _checkpoint(store: Store, at: dt.datetime) -> None:
    store.sealing.seal_all(to_us(at))
    head = store.evidence.chain_head()
    assert head is not None
    store.checkpoints.advance(head.at_us, every_us=0)


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    return fresh_database(tmp_path, "db.sqlite")


@pytest.fixture
def store(target: DatabaseTarget) -> Store:
    """d1 reports daily for 20 days; d2 once, on day 0 (its only report stays current)."""
    opened = Store.open(target)
    for device in ("d1", "d2"):
        enroll(opened, device, T0 - DAY)
    for day in range(20):
        _store(opened, "d1", T0 + day * DAY)
    _store(opened, "d2", T0, network="Home-Of-d2")
    _checkpoint(opened, T0 + 20 * DAY)
    return opened


def _export_all(store: Store, tmp_path: Path, name: str) -> verify.Verdict:
    first = store.evidence.chain_entries(1, 1)[0]
    start = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=first.at_us)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    out = export.export_bundle(store, default_policy(), tmp_path, start=start, end=end,
                               out=tmp_path / name)  # fmt: skip
    key = signing.load_or_create(tmp_path).public_key()
    return verify.verify_bundle(out.path, key)


def test_retention_shortened_then_lengthened_prunes_what_each_says_and_still_verifies(
    store: Store, tmp_path: Path
) -> None:
    now = T0 + 400 * DAY
    # 400 days: days 0-19 are all within it; nothing goes.
    assert store.retention.prune(retention_days=400, now_us=to_us(now)) is None
    # Ten days on, under 405 days: days 0-4 are past it.
    later = now + 10 * DAY
    first = store.retention.prune(retention_days=405, now_us=to_us(later))
    assert first is not None and first.reports == 5
    # Lengthened to 500: nothing more, and nothing comes back.
    assert store.retention.prune(retention_days=500, now_us=to_us(later + HOUR)) is None
    # Back to 400: days 5-10 go too (d2's day 0 stays: current).
    second = store.retention.prune(retention_days=400, now_us=to_us(later + 2 * HOUR))
    assert second is not None and second.reports == 6
    gone = sorted(r for r, b in _bodies(store).items() if not b)
    assert len(gone) == 11
    findings = table_disagreements(store)
    assert findings.ok, findings.text()
    verdict = _export_all(store, tmp_path, "edited.zip")
    assert verdict.ok, verdict.text()
    assert "11 report bodies of this period were deleted" in verdict.text()


def test_a_late_backlog_is_kept_its_retention_from_receipt_and_then_pruned(
    store: Store, tmp_path: Path
) -> None:
    # d1's first days are pruned; then d3 enrols and delivers a backlog collected long ago.
    now = T0 + 420 * DAY
    assert store.retention.prune(retention_days=400, now_us=to_us(now)) is not None
    enroll(store, "d3", now - DAY)
    for hour in range(3):
        at = now + hour * HOUR
        body = _body("d3", at - 300 * DAY, "Airport")
        record = ReportRecord(f"d3-{hour}", "d3", at, at - 300 * DAY, "1.4.2", body, "PC",
                              "linux", "Debian", "12")  # fmt: skip
        store.reports.store_reports([(record, [CheckResult("firewall", "PASS", "on")])])
    _checkpoint(store, now + DAY)
    assert all(_bodies(store)[f"d3-{h}"] for h in range(3))
    # 400 days after receipt they go (but the current one).
    after = store.retention.prune(retention_days=400, now_us=to_us(now + 401 * DAY))
    assert after is not None
    bodies = _bodies(store)
    assert [bool(bodies[f"d3-{h}"]) for h in range(3)] == [False, False, True]
    assert table_disagreements(store).ok
    verdict = _export_all(store, tmp_path, "late.zip")
    assert verdict.ok, verdict.text()


@pytest.mark.sqlite_only
def test_pruned_bodies_and_parts_are_gone_from_the_sqlite_file_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pruning must leave nothing of what it deleted in the database file: SQLite keeps a
    deleted record's bytes in its pages (free space, free pages, the old copy a page split
    leaves) unless `secure_delete` is on, and that is a build option (Debian's is on;
    python.org's, Windows' and others are off). There, the file, a copy of it or a backup,
    read with `strings`, still held the pruned days' network names."""
    connect = sqlite3.connect

    def as_built_without_secure_delete(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection: sqlite3.Connection = connect(*args, **kwargs)
        connection.execute("PRAGMA secure_delete = OFF")
        return connection

    monkeypatch.setattr(sqlite3, "connect", as_built_without_secure_delete)
    opened = Store.open(fresh_database(tmp_path, "db.sqlite"))
    enroll(opened, "d1", T0 - DAY)
    for day in range(20):
        _store(opened, "d1", T0 + day * DAY, network=f"Cafe-{day:02d}-Free")
    _checkpoint(opened, T0 + 20 * DAY)
    pruned = opened.retention.prune(retention_days=400, now_us=to_us(T0 + 415 * DAY))
    assert pruned is not None and pruned.reports == 15
    opened.close()
    connection = sqlite3.connect(tmp_path / "db.sqlite")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    data = (tmp_path / "db.sqlite").read_bytes()
    # Days 0-14 pruned (their parts past the slack: 0-13); day 19's body is kept.
    assert b"Cafe-19-Free" in data
    left = [day for day in range(14) if f"Cafe-{day:02d}-Free".encode() in data]
    assert left == [], f"the file still holds the Wi-Fi sessions of pruned days {left}"


def test_a_body_kept_while_current_is_named_with_the_pruning_that_deleted_it(
    store: Store, tmp_path: Path
) -> None:
    """d2's only report is current at the first pruning, which keeps it; d2 reports again and
    the next pruning, an hour on, deletes it (and nothing else). An export made between the
    two holds that body, so the one made after may not say that the first deleted every
    body it lacks: it named the first pruning alone (its time, 400 days' "last pruning")."""
    first = store.retention.prune(retention_days=400, now_us=to_us(T0 + 409 * DAY + 12 * HOUR))
    assert first is not None
    between = _export_all(store, tmp_path, "between.zip")
    assert between.ok and "10 report bodies of this period were deleted" in between.text()
    _store(store, "d2", T0 + 409 * DAY + 12 * HOUR)  # d2 reports again: its first is freed
    second = store.retention.prune(retention_days=400, now_us=to_us(T0 + 409 * DAY + 13 * HOUR))
    assert second is not None and second.reports == 1
    verdict = _export_all(store, tmp_path, "after.zip")
    assert verdict.ok, verdict.text()
    manifest = json.loads(members_of(tmp_path / "after.zip")[bundle.MANIFEST])
    assert manifest["pruned"]["bodies"] == 11
    assert [p["seq"] for p in manifest["pruned"]["prunes"]] == [first.seq, second.seq]
    assert "the last pruning, at 2027-02-18 13:00 (UTC+08:00)" in verdict.text()
    page = members_of(tmp_path / "after.zip")[bundle.HTML].decode("utf-8")
    assert "共删除 2 次" in page and "(2 prunings, the last on 2027-02-18 13:00" in page


def test_audit_verify_tells_the_prunings_times_in_the_company_zone(
    store: Store, tmp_path: Path
) -> None:
    """The auditor read "the last pruning, at_us 1802923200000000, of everything received
    before at_us 1768363200000000", in English and in Chinese alike."""
    pruned = store.retention.prune(retention_days=400, now_us=to_us(T0 + 409 * DAY + 12 * HOUR))
    assert pruned is not None
    verdict = _export_all(store, tmp_path, "pruned.zip")
    assert verdict.ok, verdict.text()
    english = verdict.text()
    assert "at_us" not in english
    # Run at noon in Beijing (04:00 UTC), of everything received before noon 400 days back.
    assert (
        "(400 days; the last pruning, at 2027-02-18 12:00 (UTC+08:00), of everything received"
        " before 2026-01-14 12:00 (UTC+08:00))"
    ) in english
    chinese = verdict.worded("zh")
    assert "at_us" not in chinese and "2027-02-18 12:00" in chinese
