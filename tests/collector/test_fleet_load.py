"""bench/fleet_load.py on a tiny fleet: real collector processes, five agents enrolled through
the enrollment port, a few seconds of reports at a compressed cadence. Every report the
generator says was acknowledged is in the database, once; the generator's own counts agree
with each other and with the database. On the PostgreSQL leg the fleet is spread over two
collectors (`init --join`) sharing the test's schema, and each of them took reports.

No figure it measures is asserted: those depend on the machine and what else runs on it."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from bench import fleet_load
from devposture.collector.config import load
from devposture.collector.store import Store
from tests.databases import fresh_postgres, on_postgresql

pytestmark = pytest.mark.slow

DEVICES = 5


@pytest.mark.parametrize("connection", ["per-report", "kept"])
def test_every_acknowledged_report_is_stored_once(tmp_path: Path, connection: str) -> None:
    options = fleet_load.Options(
        devices=DEVICES,
        collectors=2 if on_postgresql() else 1,
        existing_database=fresh_postgres().url if on_postgresql() else None,
        interval_minutes=1,  # a report a simulated minute: one a second at x60
        speedup=60,
        warmup_minutes=1,
        minutes=3,
        connection=connection,
        idle_seconds=0,
        enroll_threads=2,
        work=tmp_path / "run",
        quiet=True,
    )
    result = fleet_load.run(options)

    acked = result.acknowledged_ids
    assert acked, "no report was acknowledged"
    assert len(acked) == len(set(acked)), "a report acknowledged twice"
    store = Store.open(load(result.data_folders[0]).database)
    try:
        stored = collections.Counter(store.reports.report_ids())
    finally:
        store.close()
    assert [i for i in acked if stored[i] != 1] == [], "acknowledged, but not stored once"
    assert set(stored.values()) == {1}, "a report stored twice"
    # The generator's own accounting: every report made was acknowledged, refused, or is
    # still waiting; what it read back from the database is what the test reads.
    assert result.made_total == len(acked) + result.rejected + result.unacknowledged
    assert result.stored_total == sum(stored.values())
    assert result.acked_not_stored == 0
    # Each device reported at least once after its first (policy change) report.
    assert result.made_total >= 2 * DEVICES
    if on_postgresql() and connection == "per-report":
        # Each delivery's connection goes to the next collector in turn.
        assert len(result.received) == 2
        assert all(count is not None and count > 0 for count in result.received), result.received
