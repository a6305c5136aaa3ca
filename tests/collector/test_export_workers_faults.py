"""A large period's export, checked by worker processes (`evidence/check_pool`), faced with
what an auditor or an attacker with the database does: an edited chain, pruned and tampered
bodies, more findings than are named, a worker whose reads fail or whose PostgreSQL
connection is ended, a Ctrl-C. Each export either refuses, naming what differs, or writes the
bundle the export makes in its own process (`workers_for` 0), byte for byte; it never crashes
with a traceback, hangs, writes a bundle after a failure or leaves a process behind. Real
worker processes, real SQLite files and the real PostgreSQL; runs of three entries, so that
each worker has several."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from devposture.collector.cli import main as collector_cli
from devposture.collector.config import load
from devposture.collector.datadir import initialize
from devposture.collector.evidence import batch_work, batches, check_pool, export, signing, verify
from devposture.collector.evidence.crosscheck import table_disagreements
from devposture.collector.store import Store
from devposture.collector.store.base import to_us
from devposture.collector.store.chain import Evidence
from devposture.collector.store.crosscheck import Crosscheck
from devposture.collector.store.retention import PruneSpan
from devposture.collector.store.target import DatabaseTarget, PostgresTarget
from devposture.policy import default_policy
from tests.collector.bundle_members import members_of
from tests.collector.test_export_workers import (
    DAY,
    PERIOD_MEMBERS,
    T0,
    _Counted,
    _enroll,
    _export,
    _report,
    store,
    target,
)
from tests.databases import (
    collector_database,
    fresh_database,
    on_postgresql,
    terminate_backends,
    unguarded,
)

__all__ = ["store", "target"]  # fixtures of test_export_workers, used here too

# An export's outcome: the members that hold the period and the counts, or the error it
# stopped with (its type and its words).
Outcome = tuple[str, Any, Any]


def _outcome(store: Store, folder: Path, name: str) -> Outcome:
    try:
        done = _export(store, folder, name)
    except (export.TablesDisagree, check_pool.CheckFailed) as exc:
        assert not list(folder.glob(f"{name}*")), "an export that stopped wrote nothing"
        return ("refused", type(exc).__name__, str(exc))
    members = members_of(done.path)
    return ("written", {n: members[n] for n in PERIOD_MEMBERS}, done.counts)


def _both(
    store: Store, folder: Path, monkeypatch: pytest.MonkeyPatch, most_read: int = 3
) -> tuple[Outcome, Outcome]:  # fmt: skip
    """The export made in its own process, then by two workers in runs of `most_read`."""
    folder.mkdir(exist_ok=True)
    with monkeypatch.context() as alone:
        alone.setattr(check_pool, "workers_for", lambda entries: 0)
        ours = _outcome(store, folder, "alone.zip")
    _Counted.started = []
    with monkeypatch.context() as beside:
        beside.setattr(check_pool, "workers_for", lambda entries: 2)
        beside.setattr(check_pool, "Workers", _Counted)
        beside.setattr(batches, "MOST_READ", most_read)
        theirs = _outcome(store, folder, "beside.zip")
    assert _Counted.started, "the workers checked it"
    return ours, theirs


def _same(ours: Outcome, theirs: Outcome) -> None:
    """Both wrote the same bundle, or both refused naming the same rows (in the order of the
    runs they were found in, which differ in size) and counting as many."""
    assert ours[:2] == theirs[:2], (ours[2], theirs[2])
    if ours[0] == "written":
        assert ours[2] == theirs[2]
    else:
        assert sorted(ours[2].splitlines()) == sorted(theirs[2].splitlines())


def _seq_of(target: DatabaseTarget, kind: str, which: str = "MIN") -> int:
    with unguarded(target) as db:
        row = db.execute(f"SELECT {which}(seq) FROM evidence_chain WHERE kind = ?", (kind,))
        return int(row.fetchone()[0])


# --- an edited chain -----------------------------------------------------------------------


def _renumbered_from(db: Any, seq: int) -> None:
    """Every entry from `seq` on moved one place later (an entry can then be inserted)."""
    db.execute("UPDATE evidence_chain SET seq = -seq - 1 WHERE seq >= ?", (seq,))
    db.execute("UPDATE evidence_chain SET seq = -seq WHERE seq < 0")


EDITS = {
    # A gap in the sequence numbers: an entry deleted inside the period, or its last one.
    "gap": ["DELETE FROM evidence_chain WHERE seq = (SELECT MIN(seq) + 20 FROM evidence_chain)"],
    "last deleted": ["DELETE FROM evidence_chain WHERE seq = (SELECT MAX(seq) FROM"
                     " evidence_chain)"],
    # A report group's key edited to a range no seal holds: its reports read by id.
    "huge group key": ["UPDATE evidence_chain SET record_key = '1-999999999999' WHERE seq ="
                       " (SELECT MIN(seq) FROM evidence_chain WHERE kind = 'reports')"],
    "reversed group key": ["UPDATE evidence_chain SET record_key = '9-1' WHERE seq ="
                           " (SELECT MAX(seq) FROM evidence_chain WHERE kind = 'reports')"],
}


@pytest.mark.parametrize("edit", [*EDITS, "inserted"])
def test_an_edited_chain_is_exported_by_the_workers_as_the_export_alone_does(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    edit: str,
) -> None:  # fmt: skip
    seq = _seq_of(target, "state", "MAX")
    with unguarded(target) as db:
        if edit == "inserted":  # a copy of a state change put in after it, the rest moved on
            _renumbered_from(db, seq + 1)
            db.execute("INSERT INTO evidence_chain SELECT seq + 1, kind, at_us, record_key,"
                       " payload, prev_hash, hash FROM evidence_chain WHERE seq = ?",
                       (seq,))  # fmt: skip
        for sql in EDITS.get(edit, []):
            db.execute(sql)
    ours, theirs = _both(store, tmp_path, monkeypatch)
    _same(ours, theirs)


def test_an_entry_inserted_far_past_the_head_is_reached_in_a_few_reads(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of the last entry inserted 10^8 numbers on makes the period's span that wide:
    the export looked for the entries after a gap 2,000 numbers at a time, 50,000 reads of
    the chain's keys here, 5 * 10^14 for a row inserted at 10^18 (no end). Both ways it
    refuses: the copy seals its reports again."""
    seq = _seq_of(target, "reports", "MAX")
    with unguarded(target) as db:
        db.execute("INSERT INTO evidence_chain SELECT seq + ?, kind, at_us, record_key, payload,"
                   " prev_hash, hash FROM evidence_chain WHERE seq = ?", (10**8, seq))  # fmt: skip
    reads: list[tuple[int, int]] = []
    index = Evidence.chain_index

    def counted(self: Evidence, first: int, last: int, most: int | None = None) -> Any:
        reads.append((first, last))
        return index(self, first, last, most)

    monkeypatch.setattr(Evidence, "chain_index", counted)
    ours, theirs = _both(store, tmp_path, monkeypatch)
    _same(ours, theirs)
    assert ours[0] == "refused" and f"(chain seq {seq + 10**8}): seals reports" in ours[2]
    assert len(reads) < 100, len(reads)


def test_audit_check_reaches_an_entry_inserted_far_past_the_head_in_a_few_reads(
    target: DatabaseTarget, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit check` read the chain's keys 20,000 numbers at a time from 1 to the last seq
    (the rows no entry names, the findings' seqs): 5 * 10^13 reads for a row inserted at
    10^18. It names the copy, in a few reads."""
    seq = _seq_of(target, "reports", "MAX")
    with unguarded(target) as db:
        # A row no entry names: the keys of the chain are read to find what names its range.
        db.execute("INSERT INTO state_changes(device_id, check_id, state, reason, since_us,"
                   " report_id) SELECT device_id, check_id, 'PASS', 'added', since_us + 1,"
                   " report_id FROM state_changes WHERE since_us = (SELECT MAX(since_us)"
                   " FROM state_changes)")  # fmt: skip
        db.execute("INSERT INTO evidence_chain SELECT seq + ?, kind, at_us, record_key, payload,"
                   " prev_hash, hash FROM evidence_chain WHERE seq = ?", (10**8, seq))  # fmt: skip
    reads: list[tuple[str, int, int]] = []
    keys = Crosscheck.chain_keys

    def counted(self: Crosscheck, kind: str, first: int, last: int) -> list[tuple[int, str]]:
        reads.append((kind, first, last))
        return keys(self, kind, first, last)

    monkeypatch.setattr(Crosscheck, "chain_keys", counted)
    found = table_disagreements(store)
    assert not found.ok
    assert any(f"seq {seq + 10**8}" in f.text() for f in found.found), found.text()
    assert any("was added outside the collector" in f.text() for f in found.found), found.text()
    assert len(reads) < 100, len(reads)


def test_runs_of_one_entry_write_the_bundle_the_export_writes_alone(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = _both(store, tmp_path, monkeypatch, most_read=1)
    assert ours[0] == "written"
    _same(ours, theirs)


# What an attacker writes into a chain entry's payload: each is named as an edit, by the
# workers and by the export alone, where it crashed the export (a KeyError's traceback, or
# "error: unexpected character: line 1 column 1 (char 0)" naming nothing).
PAYLOADS = {
    "group not JSON": ("reports", b"not json"),
    "group of no list": ("reports", b'{"first_n":1,"last_n":3,"reports":5}'),
    "group of a report without its id": ("reports", b'{"first_n":1,"last_n":3,"reports":[{}]}'),
    "state not JSON": ("state", b"\xff not json"),
    "state of another shape": ("state", b'{"check_id":"firewall","device_id":"d1",'
                                        b'"reason":"r","report_id":"x","since_us":"x",'
                                        b'"state":"FAIL"}'),
    "device not an object": ("device", b"[1, 2]"),
}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_payload_that_is_not_a_record_is_named_by_the_workers_and_by_the_export_alone(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    payload: str,
) -> None:  # fmt: skip
    kind, value = PAYLOADS[payload]
    seq = _seq_of(target, kind)
    with unguarded(target) as db:
        db.execute("UPDATE evidence_chain SET payload = ? WHERE seq = ?", (value, seq))
    ours, theirs = _both(store, tmp_path, monkeypatch)
    _same(ours, theirs)
    assert ours[:2] == ("refused", "TablesDisagree")
    assert f"(chain seq {seq})" in ours[2], ours[2]


@pytest.mark.sqlite_only  # PostgreSQL's bytea holds only bytes
def test_a_payload_typed_in_by_hand_as_text_is_named_as_an_edit(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sqlite3 devposture.db "UPDATE evidence_chain SET payload = '…'"` stores text: reading
    it as bytes failed ("string argument without an encoding"), a traceback in the worker,
    raised again by the export."""
    seq = _seq_of(target, "state")
    with unguarded(target) as db:
        db.execute("UPDATE evidence_chain SET payload = 'PASS' WHERE seq = ?", (seq,))
        db.execute("UPDATE evidence_chain SET hash = 'typed' WHERE seq = ?", (seq + 1,))
    ours, theirs = _both(store, tmp_path, monkeypatch)
    _same(ours, theirs)
    assert ours[:2] == ("refused", "TablesDisagree")
    assert "entry key" in ours[2] and f"(chain seq {seq}): its payload is not JSON" in ours[2]


# --- pruned and tampered bodies, findings past the limit ----------------------------------


def _prune(target: DatabaseTarget, days: int, now: dt.datetime) -> PruneSpan | None:
    with contextlib.closing(Store.open(target)) as other:
        return other.retention.prune(retention_days=days, now_us=to_us(now))


def test_pruned_bodies_and_a_tampered_one_are_told_by_the_workers_as_by_the_export_alone(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 400 days after the fifth day: the bodies of the first five days are gone.
    assert _prune(target, 400, T0 + 405 * DAY) is not None
    ours, theirs = _both(store, tmp_path, monkeypatch)
    assert ours[0] == "written" and ours[1]["pruned.jsonl"] != b""
    _same(ours, theirs)
    key = signing.load_or_create(tmp_path).public_key()
    checked = verify.verify_bundle(tmp_path / "beside.zip", key)
    assert checked.ok and "30 report bodies of this period were deleted" in checked.text()
    for name in ("alone.zip", "beside.zip"):
        (tmp_path / name).unlink()
    kept, emptied = f"d1-{to_us(T0 + 8 * DAY)}", f"d2-{to_us(T0 + 9 * DAY)}"
    pruned = f"d3-{to_us(T0 + DAY)}"
    with unguarded(target) as db:
        db.execute("UPDATE reports SET body = ? WHERE report_id = ?", (b"edited", kept))
        db.execute("UPDATE reports SET body = ? WHERE report_id = ?", (b"", emptied))
        db.execute("UPDATE reports SET agent_version = '0' WHERE report_id = ?", (pruned,))
    ours, theirs = _both(store, tmp_path, monkeypatch)
    _same(ours, theirs)
    assert ours[0] == "refused" and "hold 3 records" in ours[2]
    for report_id in (kept, emptied, pruned):
        assert f"reports row [report_id '{report_id}']" in ours[2]
    assert "agent_version is '0' here, '1' in the chain" in ours[2]


def test_findings_past_the_limit_are_counted_by_the_workers_as_by_the_export_alone(
    target: DatabaseTarget, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with unguarded(target) as db:
        db.execute("UPDATE reports SET body = ?", (b"edited",))
        db.execute("UPDATE state_changes SET reason = 'edited'")
    ours, theirs = _both(store, tmp_path, monkeypatch)
    assert ours[0] == theirs[0] == "refused"
    for _, _, text in (ours, theirs):
        # 60 reports and 9 state changes; the first 50 named.
        assert "the tables no longer hold 69 records of the period" in text
        assert text.count("\n  ") == 50


def test_a_pruning_between_the_export_and_its_workers_is_seen_whatever_its_before_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """d3's first body was kept by the pruning (its verdicts named it) until d3 reported
    again; IT then raised retention_days (400 to 409), and the next pruning freed it with the
    before_us of the one before (nothing newer was due). On SQLite the workers read after the
    export: such a pruning came between them unseen, and the bundle left out a body the
    export's state holds, counting it pruned. On PostgreSQL they share one snapshot and see
    none."""
    target = fresh_database(tmp_path, "db.sqlite")
    with contextlib.closing(Store.open(target)) as opened:
        for device in ("d1", "d2", "d3"):
            _enroll(opened, device)
        for day in range(10):
            for device in ("d1", "d2"):
                _report(opened, device, T0 + day * DAY, "PASS")
        _report(opened, "d3", T0, "PASS")
        opened.sealing.seal_all()
        head = opened.evidence.chain_head()
        assert head is not None
        opened.checkpoints.advance(head.at_us)
    first = _prune(target, 400, T0 + 409 * DAY)
    with contextlib.closing(Store.open(target)) as opened:
        _report(opened, "d3", T0 + 10 * DAY, "PASS")
    pruned: list[PruneSpan | None] = []
    opened_as = check_pool.Workers.opened

    def pruning_first(self: check_pool.Workers, terms: batch_work.Terms) -> None:
        pruned.append(_prune(target, 409, T0 + 410 * DAY))
        opened_as(self, terms)

    with contextlib.closing(Store.open(target)) as exporting:
        ours = _both(exporting, tmp_path / "before", monkeypatch)[0]
        monkeypatch.setattr(_Counted, "opened", pruning_first)
        theirs = _both(exporting, tmp_path / "between", monkeypatch)[1]
    assert first is not None and pruned[0] is not None
    assert pruned[0].before_us == first.before_us
    if isinstance(target, PostgresTarget):
        _same(ours, theirs)
    else:
        assert theirs[0] == "refused" and "pruned reports while the export" in theirs[2]


# --- empty and boundary periods ----------------------------------------------------------------


def test_an_empty_period_checked_by_workers_is_the_empty_bundle(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    done = export.export_bundle(store, default_policy(), tmp_path, start=T0 - 2 * DAY,
                                end=T0 - DAY, out=tmp_path / "empty.zip")  # fmt: skip
    assert (done.first_seq, done.last_seq) == (None, None) and sum(done.counts.values()) == 0
    members = members_of(done.path)
    assert members["chain.jsonl"] == members["reports.jsonl"] == b""
    assert verify.verify_bundle(done.path, signing.load_or_create(tmp_path).public_key()).ok


def test_a_period_of_exactly_workers_from_records_is_checked_by_workers(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records, not entries: each report group counts as the reports it seals."""
    head = store.evidence.chain_head()
    assert head is not None
    records = store.evidence.chain_records(1, head.seq)
    assert records > head.seq  # groups of several reports
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(check_pool, "Workers", _Counted)
    monkeypatch.setattr(check_pool, "WORKERS_FROM", records + 1)  # one more than there are
    _Counted.started = []
    _export(store, tmp_path, "alone.zip")
    assert _Counted.started == []
    monkeypatch.setattr(check_pool, "WORKERS_FROM", records)  # every record of the chain
    beside = _export(store, tmp_path, "beside.zip")
    assert len(_Counted.started) == 1
    ours, theirs = members_of(tmp_path / "alone.zip"), members_of(beside.path)
    assert all(ours[name] == theirs[name] for name in PERIOD_MEMBERS)


# --- a worker that fails, a Ctrl-C ---------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A collector's data folder holding the same three devices' ten days."""
    config, _ = initialize(tmp_path / "collector", "127.0.0.1", database=collector_database())
    with contextlib.closing(Store.open(config.database)) as opened:
        for device in ("d1", "d2", "d3"):
            _enroll(opened, device)
        for half_day in range(20):
            for device in ("d1", "d2", "d3"):
                off = device == "d2" and (half_day // 2) % 3 == 2
                _report(opened, device, T0 + half_day * DAY / 2, "FAIL" if off else "PASS")
        opened.sealing.seal_all()
    return config.data_dir


def _export_argv(data: Path, out: Path) -> list[str]:
    return ["audit", "export", "--data", str(data), "--from", (T0 - DAY).isoformat(),
            "--to", (dt.datetime.now(dt.UTC) + DAY).isoformat(), "--out", str(out)]  # fmt: skip


def _children_left() -> list[int]:
    """This process's children still running, but multiprocessing's resource tracker (one
    per process that ever starts a child with "spawn", which ends with it)."""
    left = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if (child.status() != psutil.STATUS_ZOMBIE
                    and "resource_tracker" not in " ".join(child.cmdline())):  # fmt: skip
                left.append(child.pid)
    return left


@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Counted]]:
    """The command line's exports checked by two workers, in runs of three entries."""
    _Counted.started = []
    monkeypatch.setattr(check_pool, "workers_for", lambda entries: 2)
    monkeypatch.setattr(check_pool, "Workers", _Counted)
    monkeypatch.setattr(batches, "MOST_READ", 3)
    yield _Counted
    assert _children_left() == [], "no process of the export is left behind"


def test_workers_that_end_before_they_open_stop_the_export_in_words(
    data: Path, tmp_path: Path, forced: type[_Counted], monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Killed as they start (the out-of-memory killer, a library the frozen program lacks):
    the export is waiting for them to open on its state."""
    opened_as = _Counted.opened

    def killed_first(self: _Counted, terms: batch_work.Terms) -> None:
        for process in self.processes():
            os.kill(process.pid, signal.SIGKILL)
            process.join()
        opened_as(self, terms)

    monkeypatch.setattr(_Counted, "opened", killed_first)
    out = tmp_path / "ended.zip"
    assert collector_cli(_export_argv(data, out)) == 1
    err = capfd.readouterr().err
    stopped = ("devposture-collector: error: audit export stopped: a process checking the"
               " period's rows beside it ended (killed by SIGKILL)")  # fmt: skip
    assert err.startswith(stopped), err
    assert len(err.splitlines()) == 1 and list(tmp_path.glob("ended*")) == []


@pytest.mark.sqlite_only  # only SQLite keeps bytes that are not UTF-8 in a text column
def test_a_worker_whose_read_fails_stops_the_export_in_words_with_nothing_written(
    data: Path, tmp_path: Path, forced: type[_Counted], capfd: pytest.CaptureFixture[str]
) -> None:
    """A state change's reason made bytes SQLite cannot read as text: only the workers read
    the period's rows, so the read fails in one of them, inside `write_run`."""
    with unguarded(load(data).database) as db:
        db.execute("UPDATE state_changes SET reason = CAST(x'ff8081' AS TEXT)"
                   " WHERE device_id = 'd2' AND state = 'FAIL'")  # fmt: skip
    out = tmp_path / "failed.zip"
    assert collector_cli(_export_argv(data, out)) == 1
    err = capfd.readouterr().err
    assert forced.started, "the workers read it"
    assert "holds bytes that are not text in column reason" in err, err
    assert "Traceback" not in err and "\udcff" not in err
    assert list(tmp_path.glob("failed*")) == []


@pytest.mark.skipif(not on_postgresql(), reason="PostgreSQL's own: pg_terminate_backend")
def test_a_worker_whose_connection_the_server_ends_stops_the_export_in_words(
    data: Path, tmp_path: Path, forced: type[_Counted], monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """pg_terminate_backend on the workers' connections once they joined the export's
    snapshot, before their first run."""
    opened_as = _Counted.opened
    ended: list[int] = []

    def opened_then_ended(self: _Counted, terms: batch_work.Terms) -> None:
        opened_as(self, terms)
        ports = {c.laddr.port for p in self.processes() for c in
                 psutil.Process(p.pid).net_connections(kind="tcp")
                 if c.raddr and c.raddr.port == 5432}  # fmt: skip
        ended.append(terminate_backends(client_ports=ports))

    monkeypatch.setattr(_Counted, "opened", opened_then_ended)
    out = tmp_path / "failed.zip"
    assert collector_cli(_export_argv(data, out)) == 1
    err = capfd.readouterr().err
    assert ended and ended[0] >= 2, "each worker's connection was ended"
    # One line saying what to check, as the command says it of its own connection: the
    # workers' pool warned of each connection it found closed, on the auditor's terminal.
    assert err.startswith("devposture-collector: error: cannot use the collector's PostgreSQL"
                          " database"), err  # fmt: skip
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.glob("failed*")) == []


# The command line with the workers forced, stopping where the test sends its Ctrl-C: while
# the workers start ("start-0"/"start-1": inside that worker's start, its process being made;
# "between": the first started, the second not yet), once they are started (before they are
# opened), or once a run came back from them (others being made). It prints the workers'
# process ids there and goes on once the test has sent the signal (a line on its standard
# input), then, when the command returns, prints its children still running.
_DRIVER = """
import contextlib, json, sys
import psutil
from multiprocessing import context
from devposture.collector.cli import main
from devposture.collector import child_start
from devposture.collector.evidence import batches, check_pool

check_pool.workers_for = lambda entries: 2
batches.MOST_READ = 3
where = sys.argv[1]
opened, answer = check_pool.Workers.opened, check_pool.Workers._answer
launch, libraries = context.SpawnProcess._Popen, child_start.bundled_libraries_found
started = []

def stop():
    print(json.dumps([p.pid for p in started]), flush=True)
    sys.stdin.readline()

def launched(process):
    if where == f"start-{len(started)}":
        stop()
    popen = launch(process)
    started.append(popen)
    return popen

@contextlib.contextmanager
def libraries_here():
    if where == "between" and len(started) == 1:
        stop()
    with libraries():
        yield

def opened_here(self, terms):
    if where == "opening":
        stop()
    opened(self, terms)

def answer_here(self, number, kind):
    value = answer(self, number, kind)
    if where == "running" and kind == "done":
        stop()
    return value

context.SpawnProcess._Popen = staticmethod(launched)
child_start.bundled_libraries_found = libraries_here  # what start_child starts a worker within
check_pool.Workers.opened = opened_here
check_pool.Workers._answer = answer_here
code = main(sys.argv[2:])
left = [c.pid for c in psutil.Process().children(recursive=True)
        if c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline())]
print(json.dumps(left), flush=True)
sys.exit(code)
"""
# Where the Ctrl-C lands, and how many workers were started by then.
_STOPS = {"start-0": 0, "start-1": 1, "between": 1, "opening": 2, "running": 2}


@pytest.mark.parametrize("where", list(_STOPS))
def test_ctrl_c_during_a_worker_export_writes_nothing_and_leaves_no_process(
    data: Path, tmp_path: Path, where: str
) -> None:
    """Wherever it lands, the command ends as an interrupted one does, at once: a Ctrl-C
    that came while a worker started was ignored, and the export went on to write its bundle;
    one between two starts left the first worker running."""
    out = tmp_path / "interrupted.zip"
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, where, *_export_argv(data, out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, env={**os.environ, "LANGUAGE": "en"},
    )  # fmt: skip
    try:
        assert driver.stdout is not None
        started = json.loads(driver.stdout.readline())
        assert len(started) == _STOPS[where]
        os.killpg(driver.pid, signal.SIGINT)  # what the terminal sends the whole group
        rest, err = driver.communicate(input="go on\n", timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, (rest, err)
    assert json.loads(rest.splitlines()[-1]) == [], "a worker was left running"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err == "devposture-collector: error: interrupted (Ctrl-C)\n", err
    assert list(tmp_path.glob("interrupted*")) == []
