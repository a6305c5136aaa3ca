"""Each device's count of passing verdicts (`devices.passing`, schema 18), which the overview
counts the fully compliant devices from, is kept by the database itself: whatever writes the
verdicts (reports one by one and in groups, a policy re-judging a device, an operator's edit
by hand) leaves it equal to counting the verdicts, and a database upgraded to schema 18 has
it counted. On a real database (a SQLite file, or PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from devposture.collector.store import CheckResult, Store
from devposture.collector.store.schema import SCHEMA_VERSION
from tests.collector.mixed_fleet import NOW, mixed_fleet
from tests.databases import fresh_database, raw


def _counted(store: Store) -> dict[str, tuple[int, int]]:
    """Each device's kept count beside the count of its PASS verdicts."""
    rows = store._db.execute(
        "SELECT d.device_id, d.passing, (SELECT COUNT(*) FROM check_results c"
        " WHERE c.device_id = d.device_id AND c.state = 'PASS') FROM devices d"
    ).fetchall()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


def _agree(store: Store) -> None:
    counted = _counted(store)
    assert counted, "the fleet has devices"
    wrong = {d: pair for d, pair in counted.items() if pair[0] != pair[1]}
    assert not wrong, f"kept count != verdicts counted: {wrong}"


def test_every_write_of_the_verdicts_keeps_the_count(tmp_path: Path) -> None:
    store, policy = mixed_fleet(fresh_database(tmp_path))
    try:
        _agree(store)
        counted = _counted(store)
        assert any(kept for kept, _ in counted.values()), "some devices pass some checks"
        # A policy re-judging a device's latest report: its verdicts deleted and written again.
        device_id = next(d for d, (kept, _) in counted.items() if kept >= 2)
        later = NOW + dt.timedelta(minutes=5)
        results = [CheckResult(c.check_id, "FAIL", "re-judged") for c in policy.checks]
        report_id = store._db.execute(
            "SELECT report_id FROM check_results WHERE device_id = ? LIMIT 1", (device_id,)
        ).fetchone()[0]
        store.reports.replace_results(device_id, report_id, later, later, results)
        assert _counted(store)[device_id] == (0, 0)
        _agree(store)
        # An operator's edit by hand, beside the collector: PASS to FAIL and back, a delete.
        other = raw(store.target)
        try:
            with other.transaction() as cursor:
                cursor.execute(
                    "UPDATE check_results SET state = 'PASS' WHERE state = 'FAIL'"
                    " AND device_id IN (SELECT device_id FROM devices ORDER BY device_id LIMIT 5)"
                )
                cursor.execute(
                    "DELETE FROM check_results WHERE state = 'PASS' AND device_id IN"
                    " (SELECT device_id FROM devices ORDER BY device_id DESC LIMIT 3)"
                )
        finally:
            other.close()
        _agree(store)
    finally:
        store.close()


def test_a_database_upgraded_to_schema_18_has_the_count(tmp_path: Path) -> None:
    """As schema 17 left it: no count kept (here zeroed). Opening it counts the verdicts."""
    target = fresh_database(tmp_path)
    store, _ = mixed_fleet(target)
    store.close()
    other = raw(target)
    try:
        with other.transaction() as cursor:
            cursor.execute("UPDATE devices SET passing = 0")
            cursor.execute("UPDATE schema_version SET version = 17")
    finally:
        other.close()
    upgraded = Store.open(target)
    try:
        version = upgraded._db.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == SCHEMA_VERSION
        assert any(kept for kept, _ in _counted(upgraded).values())
        _agree(upgraded)
    finally:
        upgraded.close()
