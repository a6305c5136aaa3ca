"""The report writer process (collector/report_writer.py): a real child process with its own
connection to the test's database (SQLite file, or PostgreSQL on that leg) writes groups
exactly as the store's thread would, survives nothing it should not, and is replaced when it
dies."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from devposture.collector.child_start import bundled_libraries_found
from devposture.collector.report_writer import (
    ReportWriter,
    WriterFailed,
)
from devposture.collector.store import CheckResult, OutboxFigures, ReportRecord, Store, StoreOutcome
from devposture.collector.store.base import to_us
from tests.collector.one_by_one import store_one_by_one
from tests.databases import fresh_database
from tests.frozen import freeze

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
TABLES = {
    "reports": "SELECT * FROM reports ORDER BY report_id",
    "check_results": "SELECT * FROM check_results ORDER BY device_id, check_id",
    "state_changes": "SELECT * FROM state_changes ORDER BY device_id, check_id, since_us",
    "chain": "SELECT seq, kind, record_key, payload FROM evidence_chain ORDER BY seq",
}


def _open(tmp_path: Path, name: str) -> Store:
    store = Store.open(fresh_database(tmp_path, f"{name}.sqlite"))
    for device_id in ("d1", "d2"):
        store._db.execute(
            "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial,"
            " cert_not_after_us) VALUES (?, ?, 't', '1', ?)",
            (device_id, to_us(T0), to_us(T0)),
        )
    return store


def _group(first: int, size: int) -> list[tuple[ReportRecord, list[CheckResult]]]:
    group = []
    for n in range(first, first + size):
        at = T0 + dt.timedelta(minutes=n)
        state = "FAIL" if n % 3 == 0 else "PASS"
        record = ReportRecord(
            f"r{n}", f"d{1 + n % 2}", at + dt.timedelta(seconds=5), at, "1.0",
            f"body {n}".encode(), "host", "linux", "Debian", "12", None,
            OutboxFigures(0, 0, 0, 0),
        )  # fmt: skip
        group.append((record, [CheckResult("firewall", state, f"firewall {n}")]))
    return group


def _tables(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return {name: [tuple(r) for r in store._db.execute(sql).fetchall()]
            for name, sql in TABLES.items()}  # fmt: skip


def test_groups_written_by_the_process_leave_what_the_store_thread_leaves(
    tmp_path: Path,
) -> None:
    """Outcomes, `held`, rows and chain: those of storing in this process; a report sent
    again is a duplicate; another connection sees every report once the call returns."""
    here, reference = _open(tmp_path, "writer"), _open(tmp_path, "reference")
    writer = ReportWriter.started(here.target)

    async def scenario() -> list[StoreOutcome | Exception]:
        outcomes: list[StoreOutcome | Exception] = []
        for first, size in ((0, 5), (5, 12), (3, 4)):  # the last group repeats r3-r6
            group = _group(first, size)
            held: dict[str, dict[str, int]] = {}
            held_here: dict[str, dict[str, int]] = {}
            outcomes = await writer.store_reports(group, held)
            assert outcomes == store_one_by_one(reference, group, held_here)
            assert held == held_here
            assert _tables(here) == _tables(reference)
        return outcomes

    try:
        assert asyncio.run(scenario()) == [StoreOutcome.DUPLICATE] * 4
        assert writer.starts == 1
    finally:
        writer.close()
        here.close()
        reference.close()


def _gone(pid: int, within: float = 60.0) -> bool:
    """Whether process `pid` has ended (reaped or a zombie), waiting for it up to `within`."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    try:
        process.wait(within)
    except psutil.TimeoutExpired:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
    return True


def test_a_writer_that_died_fails_its_group_and_the_next_group_gets_a_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed (out of memory, an operator): the group in flight raises WriterFailed, nothing
    of it stored; the next group starts a new child and is stored. The log says how the
    writer ended (it said "exit code None" when the child was not reaped yet)."""
    store = _open(tmp_path, "killed")
    writer = ReportWriter.started(store.target)

    async def scenario() -> None:
        await writer.store_reports(_group(0, 2), {})
        process = writer._process
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        # Not waited for here: waiting would reap it, as only the writer's owner may (a
        # SIGKILLed child ends whatever happens; the call meets its closed socket).
        with pytest.raises(WriterFailed):
            await writer.store_reports(_group(2, 2), {})
        assert await writer.store_reports(_group(2, 2), {}) == [StoreOutcome.STORED] * 2

    try:
        with caplog.at_level(logging.ERROR):
            asyncio.run(scenario())
        assert writer.starts == 2
        assert "the report writer ended (killed by SIGKILL); starting another" in [
            r.getMessage() for r in caplog.records
        ]
        ids = [r[0] for r in store._db.execute("SELECT report_id FROM reports ORDER BY 1")]
        assert ids == ["r0", "r1", "r2", "r3"]
    finally:
        writer.close()
        store.close()


def _collector(
    store: Store, tmp_path: Path, then: str, last: str
) -> tuple[subprocess.Popen[bytes], dict[str, Path]]:
    """A collector of its own (a process the test can kill): it starts a writer on the test's
    database, stores group 0, writes the writer's pid to the step `started`, waits for the
    step `go`, then runs `then` (the rest of its coroutine; `step(name)` writes a step, the
    last one `last`). Returns the process and the steps' files."""
    target = tmp_path / "target.pickle"
    target.write_bytes(pickle.dumps(store.target))
    steps = {name: tmp_path / name for name in ("started", "go", last)}
    script = textwrap.dedent(f"""
        import asyncio, pickle
        from pathlib import Path
        from devposture.collector.report_writer import ReportWriter
        from tests.collector.test_report_writer import _group

        STEPS = {({n: str(p) for n, p in steps.items()})!r}

        def step(name, text="done"):
            Path(STEPS[name]).write_text(text)

        async def collector():
            writer = ReportWriter.started(pickle.loads(Path({str(target)!r}).read_bytes()))
            await writer.store_reports(_group(0, 1), {{}})
            step("started", str(writer._process.pid))
            while not Path(STEPS["go"]).exists():
                await asyncio.sleep(0.05)
    """) + textwrap.indent(textwrap.dedent(then), "    ") + "\nasyncio.run(collector())\n"
    process = subprocess.Popen([sys.executable, "-c", script],
                               cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    return process, steps


def test_the_writer_outlives_sigterm_to_its_group_and_ends_with_its_collector(
    tmp_path: Path,
) -> None:
    """A terminal's Ctrl-C or a service manager's stop reaches the whole process group: the
    writer stays to write what the collector drains, and ends once the collector is gone,
    even one killed outright (it reads end of file)."""
    store = _open(tmp_path, "parent")
    collector, steps = _collector(store, tmp_path, """
        await writer.store_reports(_group(1, 1), {})
        step("stored")
        await asyncio.sleep(600)
    """, last="stored")  # fmt: skip
    try:
        _wait_for(steps["started"], collector)
        child = int(steps["started"].read_text())
        os.kill(child, signal.SIGTERM)
        os.kill(child, signal.SIGINT)
        steps["go"].write_text("go")
        _wait_for(steps["stored"], collector)  # written by the writer that got both signals
        ids = [r[0] for r in store._db.execute("SELECT report_id FROM reports ORDER BY 1")]
        assert ids == ["r0", "r1"]
        collector.kill()
        collector.wait()
        assert _gone(child)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
        store.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's parent-death signal")
def test_a_group_sent_to_the_writer_of_a_killed_collector_is_never_committed(
    tmp_path: Path,
) -> None:
    """A collector SIGKILLed with a group handed to its writer: the writer dies with it, and
    the group is not committed afterwards for nobody (the fault tests sample the database
    right after the kill). The writer is stopped (SIGSTOP) before the group reaches it, so
    that the group waits in its socket: without the parent-death signal it would wake up,
    read it and commit it."""
    store = _open(tmp_path, "orphan")
    collector, steps = _collector(store, tmp_path, """
        sending = asyncio.create_task(writer.store_reports(_group(1, 1), {}))
        # Handed to the kernel: in the stopped writer's socket, all of it.
        w = writer
        while w._streams is None or w._streams[1].transport.get_write_buffer_size():
            await asyncio.sleep(0.01)
        step("sent")
        await sending
    """, last="sent")  # fmt: skip
    child = 0
    try:
        _wait_for(steps["started"], collector)
        child = int(steps["started"].read_text())
        freeze(child)
        steps["go"].write_text("go")
        _wait_for(steps["sent"], collector)
        collector.kill()
        collector.wait()
        assert _gone(child), "the writer outlived its killed collector"
        ids = [r[0] for r in store._db.execute("SELECT report_id FROM reports ORDER BY 1")]
        assert ids == ["r0"]
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
        if child and not _gone(child, within=0):
            os.kill(child, signal.SIGKILL)
        store.close()


def _wait_for(step: Path, collector: subprocess.Popen[bytes]) -> None:
    """Until the collector's process has written `step` (it fails if it ends first)."""
    deadline = time.monotonic() + 120
    while not step.exists() or not step.read_text():
        assert collector.poll() is None, f"the collector process ended before {step.name}"
        assert time.monotonic() < deadline, f"no {step.name} within 120 s"
        time.sleep(0.05)


def test_the_frozen_collector_s_writer_gets_its_libraries_folder_for_its_start_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The packaged collector takes its libraries' folder out of what children inherit; its
    writer is the same program and needs it (the package test, tests/packaging, starts the
    real one). Here: the environment while the child starts, and after."""
    bundle = str(tmp_path / "_internal")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", bundle, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/lib")
    with bundled_libraries_found():
        assert os.environ["LD_LIBRARY_PATH"] == f"{bundle}:/usr/local/lib"
    assert os.environ["LD_LIBRARY_PATH"] == "/usr/local/lib"
    monkeypatch.delenv("LD_LIBRARY_PATH")
    with bundled_libraries_found():
        assert os.environ["LD_LIBRARY_PATH"] == bundle
    assert "LD_LIBRARY_PATH" not in os.environ


# Writes two groups of 200 reports from 200 devices (the second touching the pages the
# first made) with SQLite's temporary files going to the folder given, which is watched
# (inotify, by watchdog): prints how many files SQLite made there while writing. A child
# process, since SQLite reads SQLITE_TMPDIR once, when it starts in a process.
_TEMPORARY_FILES = """
import datetime as dt, os, sys
from pathlib import Path
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from devposture.collector.store import CheckResult, OutboxFigures, ReportRecord, Store
from devposture.collector.store.base import to_us

path, watched, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
store = Store.open_for_reports(path) if how == "writer" else Store.open(path)
t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
devices = [f"d{k:03d}" for k in range(200)]
for device in devices:
    store._db.execute(
        "INSERT INTO devices(device_id, enrolled_us, token_id, cert_serial, cert_not_after_us)"
        " VALUES (?, ?, 't', '1', ?)", (device, to_us(t0), to_us(t0)))
made = []
seen_end = []

class Made(FileSystemEventHandler):
    def on_created(self, event):
        name = os.path.basename(event.src_path)
        (seen_end if name == "end" else made).append(name)

observer = Observer()
observer.schedule(Made(), str(watched))
observer.start()
for cycle in range(2):
    group = []
    for k, device in enumerate(devices):
        at = t0 + dt.timedelta(hours=cycle, seconds=k)
        record = ReportRecord(f"r{cycle}-{k}", device, at, at, "1.0", os.urandom(600), "host",
                              "linux", "Debian", "12", None, OutboxFigures(0, 0, 0, 0))
        checks = [CheckResult(c, "PASS" if (k + cycle) % 2 else "FAIL", f"{c} {cycle}")
                  for c in ("antivirus", "firewall", "updates", "wifi", "backup")]
        group.append((record, checks))
    store.reports.store_reports(group, {})
(watched / "end").write_text("")  # its event comes after every event before it
while not seen_end:
    observer.join(0.05)
observer.stop()
observer.join()
print(len(made))
"""


@pytest.mark.sqlite_only
def test_the_writer_keeps_its_statement_journals_in_memory(tmp_path: Path) -> None:
    """Each report of a group is written inside a savepoint, whose journal SQLite spills to
    a temporary file past 64 KiB: a file made, written page by page and deleted by every
    group of the writer under load. The writer's connection keeps it in memory; a
    connection for everything else still lets it spill (its large sorts must not be held
    in memory), which shows what is watched is what SQLite makes."""
    made: dict[str, int] = {}
    for how in ("writer", "shared"):
        watched = tmp_path / f"temporary-{how}"
        watched.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _TEMPORARY_FILES, str(tmp_path / f"{how}.sqlite"),
             str(watched), how],
            env={**os.environ, "SQLITE_TMPDIR": str(watched)}, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        made[how] = int(done.stdout)
    assert made["writer"] == 0
    assert made["shared"] >= 1
