"""A large period's export checks and writes its runs of the chain in worker processes beside
it (`evidence/check_pool`): real processes, on both engines. The bundle is the one the
export makes alone, byte for byte; an edited row is still named; a worker that dies stops the
export with nothing written; and each worker reads the export's state (PostgreSQL: its
snapshot, joined; SQLite: its own read, held to the export's prunings)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from devposture.collector.evidence import (
    batch_work,
    batches,
    check_pool,
    crosscheck,
    export,
    signing,
    verify,
)
from devposture.collector.store import CheckResult, DeviceRecord, ReportRecord, Store
from devposture.collector.store.base import to_us
from devposture.collector.store.target import DatabaseTarget, PostgresTarget
from devposture.collector.tokens import new_token
from devposture.policy import default_policy
from tests.collector.bundle_members import members_of
from tests.databases import fresh_database, unguarded

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
DEVICES = ("d1", "d2", "d3")
# The members that hold the period; report.html and the manifest carry the export's own time.
PERIOD_MEMBERS = ("chain.jsonl", "index.jsonl", "reports.jsonl", "opening.jsonl",
                  "pruned.jsonl", "context.json")  # fmt: skip


def _enroll(store: Store, device_id: str) -> None:
    token = new_token()
    store.identity.add_token(token, T0, T0 + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, T0, DeviceRecord(device_id, "01", T0 + dt.timedelta(days=90)))


def _report(store: Store, device: str, at: dt.datetime, firewall: str) -> None:
    report_id = f"{device}-{to_us(at)}"
    store.reports.store_report(
        ReportRecord(report_id, device, at, at, "1", b"facts of " + report_id.encode(), "h",
                     "linux", "Debian", "12"),
        [CheckResult("firewall", firewall, "on" if firewall == "PASS" else "off")],
    )  # fmt: skip


@pytest.fixture
def target(tmp_path: Path) -> DatabaseTarget:
    """Three devices reporting twice a day for ten days, d2's firewall off every third day
    (state changes beside the reports); a checkpoint recorded after."""
    target = fresh_database(tmp_path, "db.sqlite")
    with contextlib.closing(Store.open(target)) as store:
        for device in DEVICES:
            _enroll(store, device)
        for half_day in range(20):
            for device in DEVICES:
                off = device == "d2" and (half_day // 2) % 3 == 2
                _report(store, device, T0 + half_day * DAY / 2, "FAIL" if off else "PASS")
        store.sealing.seal_all()  # as every export does first: two exports read one chain
        head = store.evidence.chain_head()
        assert head is not None
        store.checkpoints.advance(head.at_us)
    return target


@pytest.fixture
def store(target: DatabaseTarget) -> Iterator[Store]:
    with contextlib.closing(Store.open(target)) as opened:
        yield opened


class _Counted(check_pool.Workers):
    """The real workers, remembered, so that a test can see they ran and how they ended."""

    started: list[check_pool.Workers]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).started.append(self)

    def processes(self) -> list[Any]:
        return [process for process, _ in self._workers]


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> type[_Counted]:
    """Every export of the test checked by two workers, in runs of three entries (many runs,
    so that each worker has several)."""
    _Counted.started = []
    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    monkeypatch.setattr(check_pool, "Workers", _Counted)
    monkeypatch.setattr(batches, "MOST_READ", 3)
    return _Counted


def _export(store: Store, folder: Path, name: str, **options: Any) -> export.Exported:
    # Entries are dated by the collector's clock when written (now), reports by the data.
    return export.export_bundle(store, default_policy(), folder, start=T0 - DAY,
                                end=dt.datetime.now(dt.UTC), out=folder / name,
                                **options)  # fmt: skip


@pytest.mark.parametrize("lines", ["raw", "pickled"])
def test_the_workers_bundle_is_the_one_the_export_makes_alone(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str
) -> None:
    """Also where the connection to a worker is no socket (multiprocessing's pipes on
    Windows): the runs' lines then travel in the pickle, as the export tells the worker."""
    alone = _export(store, tmp_path, "alone.zip")
    if lines == "pickled":
        monkeypatch.setattr(check_pool, "_raw", lambda connection: None)
    _Counted.started = []
    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    monkeypatch.setattr(check_pool, "Workers", _Counted)
    monkeypatch.setattr(batches, "MOST_READ", 3)
    shown: list[tuple[int, int]] = []
    beside = _export(store, tmp_path, "beside.zip", progress=lambda d, t: shown.append((d, t)))
    # Two real processes ran, and ended when the export was done with them.
    (pool,) = _Counted.started
    assert [p.exitcode for p in pool.processes()] == [0, 0]  # type: ignore[attr-defined]
    ours, theirs = members_of(alone.path), members_of(beside.path)
    for name in PERIOD_MEMBERS:
        assert ours[name] == theirs[name], name
    assert beside.counts == alone.counts and beside.counts["report"] == 60
    assert (beside.first_seq, beside.last_seq) == (alone.first_seq, alone.last_seq)
    # Progress in runs of at most three entries, in order, to the last.
    assert len(shown) >= 10 and shown == sorted(shown) and shown[-1][0] == shown[-1][1]
    public = signing.load_or_create(tmp_path).public_key()
    assert verify.verify_bundle(beside.path, public).ok


def test_a_row_edited_in_the_tables_is_named_by_the_workers(
    store: Store, target: DatabaseTarget, tmp_path: Path, workers: type[_Counted]
) -> None:
    edited = f"d1-{to_us(T0 + 3 * DAY)}"
    with unguarded(target) as db:
        db.execute("UPDATE reports SET body = ? WHERE report_id = ?", (b"edited", edited))
        db.execute("UPDATE state_changes SET state = 'PASS' WHERE state = 'FAIL'")
    with pytest.raises(export.TablesDisagree) as refused:
        _export(store, tmp_path, "refused.zip")
    text = str(refused.value)
    assert f"reports row [report_id '{edited}']" in text, text
    assert text.count("state_changes row [device 'd2', check 'firewall'") == 3, text
    assert workers.started, "the workers checked it"
    assert not (tmp_path / "refused.zip").exists()


def test_a_worker_killed_midway_stops_the_export_and_nothing_is_written(
    store: Store, tmp_path: Path, workers: type[_Counted]
) -> None:
    assert batches.MOST_READ == 3  # eleven runs: most are still to be made at the first

    niceness: list[int] = []

    def kill_workers(done: int, total: int) -> None:
        # At the first run taken back: the others are still to be made.
        for process in workers.started[0].processes():  # type: ignore[attr-defined]
            if process.is_alive():
                niceness.append(psutil.Process(process.pid).nice())
                os.kill(process.pid, signal.SIGKILL)
                process.join()

    with pytest.raises(check_pool.CheckFailed) as stopped:
        _export(store, tmp_path, "killed.zip", progress=kill_workers)
    assert "killed by SIGKILL" in str(stopped.value)
    # The workers gave way to the machine's other work (serve, on a collector's machine).
    assert niceness == [min(os.nice(0) + check_pool.NICENESS, 19)] * 2  # 19: the lowest
    assert "导出已停止" in stopped.value.worded("zh")
    assert list(tmp_path.glob("killed*")) == []
    # No process of the export is left behind.
    assert not [c for c in psutil.Process().children() if c.is_running()
                and c.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(c.cmdline())]


def test_each_worker_reads_the_state_the_export_reads(
    store: Store, target: DatabaseTarget, tmp_path: Path, workers: type[_Counted],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Bodies pruned by the retention policy after the export took its state, before the
    workers took theirs: PostgreSQL's workers join the export's snapshot and see none pruned,
    as the export does; SQLite's cannot, and the export stops rather than mix the two."""
    opened = check_pool.Workers.opened
    pruned: list[object] = []

    def prune_first(self: check_pool.Workers, terms: batch_work.Terms) -> None:
        with contextlib.closing(Store.open(target)) as other:
            pruned.append(other.retention.prune(retention_days=400,
                                                now_us=to_us(T0 + 409 * DAY)))  # fmt: skip
        opened(self, terms)

    monkeypatch.setattr(_Counted, "opened", prune_first)
    if isinstance(target, PostgresTarget):
        done = _export(store, tmp_path, "joined.zip")
        assert pruned[0] is not None  # bodies were pruned, after the export's snapshot
        manifest = verify.verify_bundle(done.path, signing.load_or_create(tmp_path).public_key())
        assert manifest.ok
        assert b'"pruned"' not in members_of(done.path)["reports.jsonl"]
        assert done.counts["report"] == 60 and members_of(done.path)["pruned.jsonl"] == b""
    else:
        with pytest.raises(check_pool.CheckFailed, match="pruned reports while the export"):
            _export(store, tmp_path, "mixed.zip")
        assert pruned[0] is not None
        assert not (tmp_path / "mixed.zip").exists()


def test_a_small_period_is_done_in_the_export_s_own_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert check_pool.workers_for(check_pool.WORKERS_FROM - 1) == 0
    assert check_pool.workers_for(check_pool.WORKERS_FROM) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert check_pool.workers_for(10**6) == check_pool.MOST_WORKERS == 2  # memory, not cores
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert check_pool.workers_for(10**6) == 0  # one core: a worker would only take turns


def test_groups_held_as_written_give_what_each_report_held_to_its_row_gives(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose groups are each exactly what their rows write is written from the rows
    at once (`groups_as_written`); one by one (`batch_rows`' groups, the path of any run
    with an edited or pruned row) gives the same bundle."""
    assert crosscheck.groups_as_written(store.crosscheck, store.evidence.chain_entries(1, 40))
    fast = _export(store, tmp_path, "fast.zip")
    monkeypatch.setattr(batch_work, "groups_as_written", lambda tables, batch: None)
    each = _export(store, tmp_path, "each.zip")
    ours, theirs = members_of(fast.path), members_of(each.path)
    for name in PERIOD_MEMBERS:
        assert ours[name] == theirs[name], name
    assert fast.counts == each.counts
