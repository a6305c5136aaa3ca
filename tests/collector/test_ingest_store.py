"""How a group's verdicts and statements are written (collector/store/reports.py), on both
engines: what is left is exactly what storing the reports one by one leaves, while an
unchanged verdict leaves check_results' indexes alone, a backlog's reports of one device write
each verdict once, and the statements of the ingest path keep to a few texts."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devposture.collector.store import CheckResult, OutboxFigures, ReportRecord, Store, StoreOutcome
from devposture.collector.store.base import to_us
from devposture.collector.store.chain import SHAPES, SMALL, padded, pieces
from tests.collector.one_by_one import store_one_by_one
from tests.databases import fresh_database, statements_issued

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
CHECKS = ["antivirus", "firewall", "os-updates", "public-wifi", "chat-backup"]
TABLES = {
    "reports": "SELECT * FROM reports ORDER BY report_id",
    "devices": "SELECT device_id, last_report_us, hostname, agent_version, clock_skew_ms,"
    " outbox_pending FROM devices ORDER BY device_id",
    "check_results": "SELECT * FROM check_results ORDER BY device_id, check_id",
    "state_changes": "SELECT * FROM state_changes ORDER BY device_id, check_id, since_us",
    "chain": "SELECT seq, kind, record_key, payload FROM evidence_chain ORDER BY seq",
}


def _open(tmp_path: Path, name: str, devices: list[str]) -> Store:
    store = Store.open(fresh_database(tmp_path, f"{name}.sqlite"))
    for device_id in devices:
        store._db.execute(
            "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial,"
            " cert_not_after_us) VALUES (?, ?, 't', '1', ?)",
            (device_id, to_us(T0), to_us(T0)),
        )
    return store


def _tables(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(r) for r in store._db.execute(sql).fetchall()]
            for name, sql in TABLES.items()}  # fmt: skip


def _report(report_id: str, device_id: str, minute: int) -> ReportRecord:
    at = T0 + dt.timedelta(minutes=minute)
    return ReportRecord(
        report_id, device_id, at + dt.timedelta(seconds=30), at, "1.0",
        f"body {report_id}".encode(), "host", "linux", "Debian", "12", None,
        OutboxFigures(minute % 3, 0, 0, 0),
    )  # fmt: skip


def _verdicts(rng: random.Random, flip: float) -> list[CheckResult]:
    """Mostly the same states, reasons that often change wording: what a fleet sends."""
    return [
        CheckResult(c, "FAIL" if rng.random() < flip else "PASS",
                    f"{c} {rng.choice(['as before', 'reworded'])}")
        for c in CHECKS
    ]  # fmt: skip


def test_groups_with_steady_states_leave_what_one_by_one_leaves(tmp_path: Path) -> None:
    """Steady states (the quiet path: reason, report and times rewritten in place), states
    that flip now and then, several reports of one device in a group, late older ones."""
    rng = random.Random(7)
    devices = [f"d{i}" for i in range(6)]
    together, reference = (_open(tmp_path, n, devices) for n in ("together", "one-by-one"))
    try:
        minute = 0
        for round_ in range(8):
            group: list[tuple[ReportRecord, list[CheckResult]]] = []
            for n in range(rng.randint(1, 30)):
                minute += 1
                late = rng.random() < 0.1  # collected before the device's newest
                report = _report(f"r{round_}-{n}", rng.choice(devices),
                                 minute - 40 if late else minute)  # fmt: skip
                group.append((report, _verdicts(rng, 0.05)))
            outcomes = together.reports.store_reports(group)
            assert outcomes == store_one_by_one(reference, group)
            assert _tables(together) == _tables(reference), round_
    finally:
        together.close()
        reference.close()


def test_an_unchanged_verdict_is_written_without_touching_check_results_indexes(
    tmp_path: Path,
) -> None:
    store = _open(tmp_path, "db", ["d1"])
    rng = random.Random(1)
    try:
        store.reports.store_report(_report("a", "d1", 1), _verdicts(rng, 0.0))
        statements: list[str] = []
        store._db.trace(statements.append)
        store.reports.store_report(_report("b", "d1", 2), _verdicts(rng, 0.0))
        store._db.trace(None)
        rows = store._db.execute(
            "SELECT report_id, collected_us, since_us FROM check_results WHERE device_id = 'd1'"
        ).fetchall()
    finally:
        store.close()
    written = [s for s in statements if "check_results" in s and not s.startswith("SELECT")]
    # One UPDATE of the columns no index holds; no upsert (which sets state and since_us).
    assert len(written) == 1 and written[0].startswith("UPDATE check_results SET reason"), written
    assert "state =" not in written[0].split("FROM")[0]
    assert "since_us =" not in written[0].split("FROM")[0]
    # The current verdicts name the newest report, and their state holds since the first.
    b = to_us(T0 + dt.timedelta(minutes=2))
    assert sorted(tuple(r) for r in rows) == [("b", b, to_us(T0 + dt.timedelta(minutes=1)))] * 5


def test_a_stored_verdict_that_disagrees_with_its_history_is_upserted_whole(
    tmp_path: Path,
) -> None:
    """The quiet UPDATE is guarded by the stored state and since: a row that is not what the
    history says (changed by hand, or by an older collector) gets the full upsert, exactly
    as one by one."""
    stores = [_open(tmp_path, n, ["d1"]) for n in ("together", "one-by-one")]
    rng = random.Random(3)
    first, second = _verdicts(rng, 0.0), _verdicts(rng, 0.0)
    try:
        for store in stores:
            store.reports.store_report(_report("a", "d1", 1), first)
            store._db.execute(
                "UPDATE check_results SET state = 'UNKNOWN' WHERE check_id = 'firewall'"
            )
        group = [(_report("b", "d1", 2), second)]
        assert stores[0].reports.store_reports(group) == [StoreOutcome.STORED]
        store_one_by_one(stores[1], group)
        assert _tables(stores[0]) == _tables(stores[1])
        state = (
            stores[0]
            ._db.execute("SELECT state FROM check_results WHERE check_id = 'firewall'")
            .fetchone()[0]
        )
        assert state == "PASS"
    finally:
        for store in stores:
            store.close()


def test_a_backlog_of_one_device_writes_each_verdict_once(tmp_path: Path) -> None:
    """64 reports of one device (a ReportBatch after an outage), oldest first: each is its
    device's newest in turn, and only the last one's verdicts stay current; they are written
    in one statement, not one per report."""
    stores = [_open(tmp_path, n, ["d1"]) for n in ("together", "one-by-one")]
    rng = random.Random(5)
    group = [(_report(f"r{i:02d}", "d1", i), _verdicts(rng, 0.2)) for i in range(64)]
    try:
        statements: list[str] = []
        stores[0]._db.trace(statements.append)
        stores[0].reports.store_reports(group)
        stores[0]._db.trace(None)
        statements = statements_issued(statements)
        store_one_by_one(stores[1], group)
        assert _tables(stores[0]) == _tables(stores[1])
        groups = stores[0]._db.execute("SELECT COUNT(*), SUM(reports) FROM report_groups")
        assert tuple(groups.fetchone()) == (1, 64)  # one chain entry seals the backlog
    finally:
        for store in stores:
            store.close()
    verdict_writes = [s for s in statements if "INTO check_results" in s
                      or s.startswith("UPDATE check_results")]  # fmt: skip
    assert len(verdict_writes) <= 2, verdict_writes
    # and the seal after it (store/sealing.py): at most five statements, here one entry for
    # all 64 reports.
    sealing = statements.index("RELEASE reports") + 1
    # (and the report format, read at a store's first write)
    assert len(statements[:sealing]) < 21, statements
    assert len([s for s in statements[sealing:] if s != "COMMIT"]) <= 5, statements[sealing:]


class _Recording:
    """A cursor that notes the text of every statement (before any engine expands it)."""

    def __init__(self, cursor: Any, texts: set[str]) -> None:
        self._cursor = cursor
        self._texts = texts

    def execute(self, sql: str, parameters: Any = ()) -> _Recording:
        self._texts.add(sql)
        self._cursor.execute(sql, parameters)
        return self

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> Any:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


def _rows(text: str) -> int:
    """How many rows (values, lookups) a statement of the ingest path is written for."""
    if "UNION ALL" in text:
        return text.count("UNION ALL") + 1
    if "VALUES" in text:
        return text.count("(?")
    return text.count("?")


def test_statements_keep_to_a_few_texts_whatever_the_group_sizes(tmp_path: Path) -> None:
    """Groups of every size from 1 to 130: every read, and every write of more than SMALL
    rows, is written for a size in SHAPES, so that each kind of statement has few texts and
    the connection's statement cache keeps them."""
    devices = [f"d{i:03d}" for i in range(130)]
    store = _open(tmp_path, "db", devices)
    rng = random.Random(11)
    texts: set[str] = set()
    real = store.reports._write

    @contextmanager
    def recording() -> Iterator[Any]:
        with real() as cursor:
            yield _Recording(cursor, texts)

    store.reports._write = recording  # type: ignore[method-assign]
    try:
        minute = 0
        for size in range(1, 131):
            group = []
            for device_id in rng.sample(devices, size):
                minute += 1
                group.append((_report(f"r{minute}", device_id, minute), _verdicts(rng, 0.1)))
            store.reports.store_reports(group)
    finally:
        store.close()
    sizes: dict[str, set[int]] = {}
    for text in texts:
        sizes.setdefault(text[:40], set()).add(_rows(text))
    assert len(sizes) > 8, sorted(sizes)  # every kind of statement was seen
    for kind, rows in sizes.items():
        large = {n for n in rows if n > SMALL or kind.startswith("SELECT")} - {0}
        assert large <= set(SHAPES), (kind, sorted(large - set(SHAPES)))


def test_pieces_and_padding() -> None:
    for count in range(0, 300):
        rows = list(range(count))
        parts = list(pieces(rows))
        assert [r for part in parts for r in part] == rows
        assert all(len(p) in SHAPES or len(p) <= SMALL for p in parts)
        assert sum(1 for p in parts if len(p) <= SMALL and len(p) not in SHAPES) <= 1
        padded_parts = list(padded(rows))
        assert all(len(p) in SHAPES for p in padded_parts)
        assert [v for p in padded_parts for v in dict.fromkeys(p)] == rows
