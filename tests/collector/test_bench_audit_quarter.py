"""bench/audit_quarter.py on a tiny fleet (20 devices, 3 days, a report every 6 hours, half of
them through failure episodes), so that its builder cannot drift from what the collector
really writes:

* the same fleet, its reports stored through the store's own ingest path (`store_reports`,
  each judged afresh by the policy's checks), leaves the same reports, verdicts, state
  history, device rows and certificates, and the same evidence chain records in the same
  order (their `at_us` aside: ingest dates a state change's entry by the clock when it writes);
* the built store's bundle, exported and verified by the CLI as the benchmark measures them,
  verifies.

No figure it measures is asserted: those depend on the machine and what else runs on it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench import audit_quarter
from devposture.collector.datadir import initialize
from devposture.collector.store import Store
from devposture.collector.store.base import to_us
from devposture.collector.store.chain import Appender
from devposture.collector.store.engine import AnyDatabase
from devposture.policy import default_policy
from devposture.policy.checks import utc
from devposture.v1 import devposture_pb2 as pb
from tests.databases import collector_database, fresh_database
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

SHAPE = audit_quarter.Shape(devices=20, days=3, every_hours=6, changing=0.5)

# What each table is compared by (devices: its certificate columns are set once at the end of
# a build, which the ingest path below does not imitate; device_certificates holds them).
QUERIES = {
    "reports": "SELECT report_id, device_id, received_us, collected_us, agent_version,"
    " clock_skew_ms, body, parts, n FROM reports ORDER BY report_id",
    "fact_parts": "SELECT digest, part, last_us FROM fact_parts ORDER BY digest",
    "report_groups": "SELECT * FROM report_groups ORDER BY seq",
    "state_changes": "SELECT * FROM state_changes ORDER BY device_id, check_id, since_us",
    "check_results": "SELECT device_id, check_id, state, reason, report_id, collected_us,"
    " evaluated_us, since_us FROM check_results ORDER BY device_id, check_id",
    "devices": "SELECT device_id, enrolled_us, token_id, hostname, os_family, os_name,"
    " os_version, agent_version, last_report_us, clock_skew_ms, outbox_pending,"
    " outbox_coalesced_total, outbox_dropped_total, outbox_corrupt_total, device_group"
    " FROM devices ORDER BY device_id",
    "device_certificates": "SELECT * FROM device_certificates ORDER BY device_id, generation",
    "device_events": "SELECT * FROM device_events ORDER BY event_id",
    "chain": "SELECT seq, kind, record_key, payload FROM evidence_chain ORDER BY seq",
}


def _rows(db: AnyDatabase) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in db.execute(query).fetchall()]
        for table, query in QUERIES.items()
    }  # fmt: skip


def _through_ingest(store: Store, shape: audit_quarter.Shape) -> None:
    """The shape's fleet with every report stored by `store_reports` and judged afresh; the
    enrollments and renewals by the builder's own identity writer."""
    judged = audit_quarter.Judged(default_policy())
    writer = audit_quarter.Writer(store._db)
    store.report_format.write(shape.report_format)
    store.reports.seal_after_us = round(shape.seal_seconds * 1e6)  # the builder's wait
    events = audit_quarter.fleet_events(shape, audit_quarter.add_tokens(store, shape),
                                        default_policy())  # fmt: skip
    for event in events:
        if isinstance(event, audit_quarter.IdentityEvent):
            with store._db.transaction() as cursor:
                writer.write(cursor, Appender(cursor), event)
                writer.flush(cursor)
            continue
        report = pb.PostureReport.FromString(event.record.body)
        results = judged.judge(report, utc(report.collected_at))
        # The builder judges once per day and variant: each report's own verdicts agree.
        assert results == event.results, event.record.report_id
        outcome = store.reports.store_reports([(event.record, results)])
        assert [o.value for o in outcome] == ["stored"]  # type: ignore[union-attr]
        last = event.record.received_at
    store.sealing.seal_all(now_us=to_us(last))  # as the collector seals when it stops


# A seal's wait longer than the fleet's cycle (`--seal-seconds`): each group holds reports
# of several cycles, as the collector's would with that wait.
@pytest.mark.parametrize(("report_format", "seal_seconds"), [(4, 30.0), (5, 30.0), (5, 7 * 3600.0)])
def test_the_built_store_is_what_ingest_writes_and_its_bundle_verifies(
    tmp_path: Path, report_format: int, seal_seconds: float
) -> None:
    shape = dataclasses.replace(SHAPE, report_format=report_format, seal_seconds=seal_seconds)
    folder = tmp_path / "collector"
    config, _ = initialize(folder, "127.0.0.1", database=collector_database())
    built = Store.open(config.database)
    ingested = Store.open(fresh_database(tmp_path))
    try:
        figures = audit_quarter.build(built, shape)
        _through_ingest(ingested, shape)
        mine, theirs = _rows(built._db), _rows(ingested._db)
    finally:
        built.close()
        ingested.close()
    assert figures.reports == len(mine["reports"]) > 200
    assert figures.entries == len(mine["chain"])
    # Episodes happened: more state changes than each device's first verdicts.
    assert figures.state_changes > shape.devices * len(default_policy().checks)
    kinds = {row[1] for row in mine["chain"]}
    # Format 5 seals both kinds: a group of mostly devices' first reports (stored as format
    # 4: neither their facts nor their device met yet) as `reports`, the others as
    # `report_facts`.
    assert ("report_facts" in kinds) == (report_format == 5) and "reports" in kinds
    # The devices' reports are spread over each 6-hour cycle: within 30 s a group holds a few
    # of them, within a wait longer than the cycle more than a cycle's (and less than two).
    largest = max(int(str(row[3])) for row in mine["report_groups"])
    assert largest <= 2 * shape.devices
    assert (largest > shape.devices) == (seal_seconds > 6 * 3600)
    assert {row[2] for row in mine["state_changes"]} >= {"PASS", "FAIL", "UNKNOWN"}
    for table in QUERIES:
        assert mine[table] == theirs[table], f"{table} differs from what ingest writes"

    runs = audit_quarter.measure(folder, shape, tmp_path, period_days=None, timeout=120,
                                 memory_mb=0)  # fmt: skip
    export, verify = runs
    assert export.ok, export.output
    assert verify.ok and verify.output.startswith("VERIFIED"), verify.output
    # The last day's bundle links into the chain mid-way and verifies as well.
    runs = audit_quarter.measure(folder, shape, tmp_path, period_days=1, timeout=120,
                                 memory_mb=0)  # fmt: skip
    assert all(run.ok for run in runs), [run.output for run in runs]
    assert shape.end - dt.timedelta(days=1) > SHAPE.start


@pytest.mark.engine_free  # processes only: the PostgreSQL leg leaves it out
def test_the_cpu_of_the_processes_beside_a_command_is_told_apart_from_its_own() -> None:
    """`_tree_sample` (the benchmark's line "of its CPU: ..."): each process the launched
    command started, with its CPU so far; neither the launcher's nor the command's own. The
    memory is the command's and its processes' together."""
    burn = "x = 0\nwhile True:\n    x += 1"
    command = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1]])"
               ".wait()")  # fmt: skip
    launcher = subprocess.Popen([sys.executable, "-c", "import subprocess, sys;"
                                 " subprocess.run(sys.argv[1:])",
                                 sys.executable, "-c", command, burn])  # fmt: skip
    try:
        wait_until(lambda: sum(audit_quarter._tree_sample(launcher.pid)[1].values()) > 0.05,
                   what="the process beside the command to spend CPU")  # fmt: skip
        held, seen = audit_quarter._tree_sample(launcher.pid)
        assert len(seen) == 1 and launcher.pid not in seen
        (beside,) = seen
        assert beside not in {c.pid for c in psutil.Process(launcher.pid).children()}
        assert held > 0
    finally:
        for process in psutil.Process(launcher.pid).children(recursive=True):
            process.kill()
        launcher.kill()
        launcher.wait()
