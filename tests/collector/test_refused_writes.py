"""`serve`'s background tasks when the database refuses their writes: a real full file system
under a SQLite collector (a small tmpfs filled to the last byte), and on PostgreSQL a server
that takes no writes (the collector's own role set to `default_transaction_read_only`, its
sessions ended, as a failover to a standby ends them). Each task says once, in one warning,
what waits, the problem and the fix; never an ERROR or a traceback at each round; keeps
running; and once writes go through again does what it owed and says so once. Ingest pushes
agents back and they keep their reports. Rounds are paced by intervals given as data; the
tests wait for what the tasks do (refusals counted, rows, log lines), never for a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devposture.agent.outbox import Outbox
from devposture.agent.transport import drain, open_channel, send_report
from devposture.collector import refused_writes, server
from devposture.collector.alerts.task import keep_alerting
from devposture.collector.clock import utcnow
from devposture.collector.fleet_history import day_ended_by, week_ends
from devposture.collector.ingest import FullDiskAlarm
from devposture.collector.refused_writes import (
    DISK_FULL,
    READ_ONLY,
    SERVER_DISK_FULL,
    RefusedWrites,
    refusal_of,
)
from devposture.collector.store import Store
from devposture.collector.store.disk_space import StorageFull
from tests.collector.alert_receivers import http_receiver
from tests.conftest import LiveCollector, enroll_agent, make_report, running_collector
from tests.databases import on_postgresql, role_database
from tests.full_disk import fill, tmpfs
from tests.waiting import wait_until

BEIJING = ZoneInfo("Asia/Shanghai")  # the default policy's zone: its days are the records'
# Refused rounds a test waits for before giving the space back: the first is said, the rest
# must not be.
ROUNDS = 5


@dataclass
class Refusing:
    """A collector serving, how to make its database refuse writes and take them again, and
    a connection that reads meanwhile."""

    collector: LiveCollector
    refuse: Callable[[], None]
    allow: Callable[[], None]
    refusal: refused_writes.Refusal  # what the tasks must say
    reader: Store


def refusing_collector(
    stack: contextlib.ExitStack, tmp_path: Path, *, folder_on_tmpfs: bool = False,
    serve_metrics: bool = False,
) -> Refusing:  # fmt: skip
    """A collector serving until `stack` closes: on SQLite its data folder on a small tmpfs
    (refused: filled to its last byte), on PostgreSQL a role's database (refused: read-only),
    its data folder on a tmpfs too when `folder_on_tmpfs`; its metrics endpoint too when
    `serve_metrics`."""
    disk = tmp_path
    if folder_on_tmpfs or not on_postgresql():
        disk = stack.enter_context(tmpfs(tmp_path / "disk", "8m"))
    if on_postgresql():
        target, read_only = stack.enter_context(role_database())
        collector = stack.enter_context(
            running_collector(disk / "c", database=target, serve_metrics=serve_metrics)
        )
        refuse, allow = (lambda: read_only(True)), (lambda: read_only(False))
        refusal = READ_ONLY
    else:
        collector = stack.enter_context(running_collector(disk / "c", serve_metrics=serve_metrics))
        fillers: list[Path] = []
        refuse, allow = (lambda: fillers.append(fill(disk))), (lambda: fillers.pop().unlink())
        refusal = DISK_FULL
    reader = Store.open_reader(collector.config.database)
    stack.callback(reader.close)
    return Refusing(collector, refuse, allow, refusal, reader)


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[Refusing]:
    with contextlib.ExitStack() as stack:
        yield refusing_collector(stack, tmp_path)


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


Task = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def ride_out(
    refusing: Refusing, caplog: pytest.LogCaptureFixture, alarm: RefusedWrites, task: Task,
    *, meanwhile: Callable[[], object] = lambda: None,
    owed: tuple[Callable[[], bool], str] = (lambda: True, "nothing"),
) -> None:  # fmt: skip
    """Run `task` on the collector's event loop with its writes refused until it was refused
    ROUNDS times (`meanwhile` then checks what must not be written yet), give writes back,
    wait for what it `owed` and for its line that it writes again, and stop it. Then the
    task must have said its refusal in one warning and its end in one line, and no line of
    the collector's may be an ERROR or carry a traceback."""
    collector = refusing.collector
    refusing.refuse()
    stop = asyncio.Event()
    done = asyncio.run_coroutine_threadsafe(task(stop), collector._loop)
    try:
        wait_until(lambda: alarm.refused >= ROUNDS, f"refused rounds of {alarm.work}")
        meanwhile()
        refusing.allow()
        wait_until(*owed)
        wait_until(lambda: alarm.said is None, f"{alarm.work} resumed")
    finally:
        collector._loop.call_soon_threadsafe(stop.set)
        done.result(30)
    mine = [r for r in caplog.records if r.getMessage().startswith(alarm.work)]
    waits = [r for r in mine if " waits: " in r.getMessage()]
    assert [r.levelno for r in waits] == [logging.WARNING], [r.getMessage() for r in mine]
    refusal = refusing.refusal
    assert waits[0].getMessage() == (
        f"{alarm.work} waits: {refusal.problem}; {refusal.fix}, and it resumes by itself"
        " (no restart)"
    )
    resumed = [r.getMessage() for r in mine if " resumed: " in r.getMessage()]
    assert len(resumed) == 1, resumed
    assert resumed[0].startswith(f"{alarm.work} resumed: the database takes writes again (")
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    # PostgreSQL's sessions are ended as a failover ends them (`role_database`): a task may
    # meet its connection cut, which it says as an outage of its own, not as a refusal.
    assert [line for line in loud if not any(cut in line for cut in CUT)] == []


# What psycopg says of a connection pg_terminate_backend ended under it.
CUT = (
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
    "the connection is closed",
    "the connection is lost",
)


def reported(collector: LiveCollector, folder: Path) -> None:
    """A device enrolled in `folder` and its first report stored."""
    agent = enroll_agent(collector, folder)
    with open_channel(agent.state, agent.enrollment) as channel:
        send_report(channel, make_report(agent.enrollment.device_id))


def test_the_fleets_day_waits_said_once_and_is_recorded_once_writes_go_through(
    refusing: Refusing, log_lines: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # It logged an ERROR every round (the hour) and tried again only an hour later: a disk
    # freed at 23:30 left the day without its record.
    collector, reader = refusing.collector, refusing.reader
    enroll_agent(collector, tmp_path / "agent")
    alarm = RefusedWrites("recording the fleet's day")
    now = utcnow()
    today = now.astimezone(BEIJING).date().isoformat()
    owed = {today} | {day_ended_by(m, BEIJING) for m in week_ends(now, BEIJING)[:-1]}

    def task(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        return server.keep_fleet_days(
            collector._running, stop, every=3600, database=collector.config.database,
            retry=0.01, refused=alarm,
        )  # fmt: skip

    def nothing_recorded() -> None:
        assert reader.fleet.fleet_days() == {}

    def recorded() -> bool:  # today's and the trend's week ends, within the retry
        return owed <= set(reader.fleet.fleet_days())

    ride_out(refusing, log_lines, alarm, task, meanwhile=nothing_recorded,
             owed=(recorded, "the day's records"))  # fmt: skip


def test_the_presence_waits_said_once_and_is_kept_again(
    refusing: Refusing, log_lines: pytest.LogCaptureFixture
) -> None:
    # An ERROR every 30 s ("could not count the collectors serving on the database").
    alarm = RefusedWrites("counting the collectors")

    def task(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        return server.keep_present(refusing.collector._running, stop, every=0.01, refused=alarm)

    ride_out(refusing, log_lines, alarm, task)


def test_sealing_waits_said_once_and_seals_what_waited(
    refusing: Refusing, log_lines: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # An ERROR every ten seconds while a stored report waited for its seal.
    collector, reader = refusing.collector, refusing.reader
    reported(collector, tmp_path / "agent")
    later = dt.timedelta(minutes=2)  # past the seal's half minute: the report is due
    monkeypatch.setattr(collector.service, "_clock", lambda: utcnow() + later)
    alarm = RefusedWrites("sealing")

    def task(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        return server.keep_sealing(collector._running, stop, every=0.01, refused=alarm)

    def waiting() -> None:
        assert reader.sealing.waiting() == 1

    ride_out(refusing, log_lines, alarm, task, meanwhile=waiting,
             owed=(lambda: reader.sealing.waiting() == 0, "the report sealed"))  # fmt: skip


def test_alerting_waits_said_once_and_its_rounds_go_on(
    refusing: Refusing, log_lines: pytest.LogCaptureFixture
) -> None:
    # "alerts: this round failed and is tried again in 30 s", an ERROR every round.
    collector = refusing.collector
    alarm = RefusedWrites("alerting")
    with http_receiver() as webhook:
        alerts = dataclasses.replace(collector.config.alerts, webhook_url=webhook.url)
        config = dataclasses.replace(collector.config, alerts=alerts)

        def task(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
            return keep_alerting(collector._running, config, stop, every=0.01, refused=alarm)

        ride_out(refusing, log_lines, alarm, task)


def test_a_policy_edit_met_by_refused_writes_is_applied_and_judged_once_they_go_through(
    refusing: Refusing, log_lines: pytest.LogCaptureFixture, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The edit was marked seen before it was published: refused, it was never applied (nor
    # the fleet judged by it) until the file was edited again.
    collector, reader = refusing.collector, refusing.reader
    reported(collector, tmp_path / "agent")
    config = collector.config
    text = config.policy.read_text(encoding="utf-8")
    edited = text.replace("report_interval_minutes = 60", "report_interval_minutes = 61")
    assert edited != text
    before = collector.service.policy
    version = reader.policies.version()
    config.policy.write_text(edited, encoding="utf-8")
    alarm = RefusedWrites("following the policy")
    monkeypatch.setattr(server, "POLICY_POLL_SECONDS", 0.01)

    def task(stop: asyncio.Event) -> Coroutine[Any, Any, None]:
        return server.watch_policy(config, collector._running, stop, refused=alarm)

    def not_yet() -> None:
        assert reader.policies.version() == version
        assert collector.service.policy == before

    def rejudged() -> bool:
        return reader.coordination.done_through(server.REJUDGE_LEASE) == version + 1

    ride_out(refusing, log_lines, alarm, task, meanwhile=not_yet,
             owed=(rejudged, "the edit applied and the fleet judged again under it"))  # fmt: skip
    assert collector.service.policy != before
    applied = f"policy version {version + 1} applied; 1 device(s) re-evaluated"
    assert [r.getMessage() for r in log_lines.records].count(applied) == 1


def test_ingest_pushes_agents_back_they_keep_their_reports_and_deliver_them_after(
    refusing: Refusing, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    collector = refusing.collector
    agent = enroll_agent(collector, tmp_path / "agent")
    agent.state.network_hash_key()
    outbox = Outbox(agent.state.outbox_dir)
    outbox.put(make_report(agent.enrollment.device_id))
    assert drain(agent.state, agent.enrollment, outbox).stopped_by is None  # admitted, stored
    report = make_report(agent.enrollment.device_id)
    outbox.put(report)
    refusing.refuse()
    refused = drain(agent.state, agent.enrollment, outbox)
    assert refused.stopped_by is not None and refused.stopped_by.startswith("UNAVAILABLE: ")
    assert refused.retry_after is not None  # the hint the agent waits by
    assert refused.acknowledged == []
    assert [p.report.report_id for p in outbox.pending()] == [report.report_id]
    # Ingest's own line says what refused and what to do: it said "the disk holding the data
    # folder is full" of the PostgreSQL server's disk, and only the class name
    # (ReadOnlySqlTransaction) of a database that takes no writes.
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    expected = ("the disk holding the data folder is full" if refusing.refusal is DISK_FULL
                else refusing.refusal.problem)  # fmt: skip
    assert any(expected in line for line in said), said
    assert not any("ReadOnlySqlTransaction" in line for line in said), said
    refusing.allow()
    delivered = drain(agent.state, agent.enrollment, outbox)
    assert delivered.stopped_by is None
    assert delivered.acknowledged == [report.report_id]
    assert outbox.pending() == []


# --- the words, and when they are said ---------------------------------------------------------


def test_a_refusal_is_said_once_again_on_a_change_or_an_hour_later_and_its_end_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    alarm = RefusedWrites("recording the fleet's day", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger=refused_writes.__name__)
    full, server_full = StorageFull(Path("/srv/collector")), StorageFull(None)

    def lines() -> list[str]:
        said = [r.getMessage() for r in caplog.records]
        caplog.clear()
        return said

    assert alarm.failed(full) and alarm.failed(full)
    assert lines() == [
        "recording the fleet's day waits: the disk holding the collector's SQLite database is"
        " full; free space on that disk, and it resumes by itself (no restart)"
    ]
    now[0] = refused_writes.SAY_AGAIN_SECONDS - 1
    assert alarm.failed(full) and lines() == []
    now[0] = refused_writes.SAY_AGAIN_SECONDS
    assert alarm.failed(full)
    assert lines()[0].endswith("(no restart) (2 more since the last line)")
    assert alarm.failed(server_full)  # another problem: at once
    assert lines()[0].startswith("recording the fleet's day waits: the PostgreSQL server's disk")
    assert not alarm.failed(RuntimeError("a bug")) and lines() == []  # not a refusal
    alarm.wrote()
    alarm.wrote()
    assert lines() == [
        "recording the fleet's day resumed: the database takes writes again (5 attempt(s) were"
        " refused)"
    ]
    assert alarm.failed(full) and len(lines()) == 1  # a new episode is said at once


def test_what_a_refusal_names_by_what_refused(tmp_path: Path) -> None:
    assert refusal_of(StorageFull(tmp_path)) == DISK_FULL
    assert refusal_of(StorageFull(None)) == SERVER_DISK_FULL  # PostgreSQL's: no folder here
    assert refusal_of(OSError(28, "No space left on device")) == refused_writes.FOLDER_FULL
    assert refusal_of(OSError(13, "Permission denied")) is None
    assert refusal_of(RuntimeError("the database is gone")) is None
    for refusal in (DISK_FULL, SERVER_DISK_FULL, READ_ONLY, refused_writes.FOLDER_FULL):
        assert str(tmp_path) not in refusal.problem + refusal.fix


def test_ingests_full_disk_line_names_the_disk_that_is_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL the disk that filled is the database server's (SQLSTATE 53100, no folder
    here): ingest's one line said "the disk holding the data folder is full", a disk IT then
    looked for on the collector's machine."""
    caplog.set_level(logging.ERROR)
    for full, expected in ((StorageFull(None), "the PostgreSQL server's disk is full"),
                           (StorageFull(tmp_path), "the disk holding the data folder is full")):
        caplog.clear()
        alarm = FullDiskAlarm()
        alarm.failed(full)
        alarm.failed(full)  # once while it lasts
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [expected]
