"""A recurring failure logged once every few seconds with its count (collector/log_every.py),
and the group committer through a database outage: one line, not one per group."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from types import SimpleNamespace

import pytest

from devposture.collector import ingest, server
from devposture.collector.log_every import EveryFew, LogEvery
from devposture.collector.store import CheckResult, ReportRecord, StoreOutcome

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free


def test_a_line_then_silence_then_a_line_with_the_count() -> None:
    now = [100.0]
    every = LogEvery(lambda: 10.0, clock=lambda: now[0])
    assert every.due() == ""
    now[0] = 105.0
    assert every.due() is None and every.due() is None
    now[0] = 110.0
    assert every.due() == " (2 more since the last line)"
    assert every.due() is None
    now[0] = 121.0
    assert every.due() == " (1 more since the last line)"


def test_an_outage_under_load_is_one_line_not_one_per_group(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A PostgreSQL outage of a few seconds gave a line for each failed group (40 in one
    # second): the first says so, the rest are counted into the next line.
    Items = list[tuple[ReportRecord, list[CheckResult]]]

    async def failing(items: Items, held: dict[str, dict[str, int]]) -> list[StoreOutcome]:
        raise sqlite3.OperationalError("the database is gone")

    async def groups() -> int:
        committer = ingest.GroupCommitter(None, None, write=failing, linger=0)  # type: ignore[arg-type]
        failed = 0
        for _ in range(12):
            try:
                await committer.store([])
            except sqlite3.OperationalError:
                failed += 1
        await committer.close()
        return failed

    with caplog.at_level(logging.ERROR, logger=ingest.__name__):
        assert asyncio.run(groups()) == 12
    lines = [r.getMessage() for r in caplog.records if r.name == ingest.__name__]
    assert lines == ["could not commit 0 report(s): the database is gone"]


def test_a_library_loggers_recurring_warnings_are_one_line_every_few_seconds() -> None:
    # psycopg's pool warns of each connection it fails to make, a few a second through a
    # PostgreSQL outage: the service's log gets one line per message every few seconds.
    now = [100.0]
    library = logging.getLogger("tests.log_every.pool")
    library.propagate = False
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    library.addHandler(Keep())
    library.addFilter(EveryFew(lambda: 10.0, clock=lambda: now[0]))
    for second in (100.0, 100.5, 101.0, 111.0):
        now[0] = second
        library.warning("error connecting in %r: %s", "pool-1", "connection refused")
    library.warning("pool %r is closed", "pool-1")  # another message: its own line
    assert seen == [
        "error connecting in 'pool-1': connection refused",
        "error connecting in 'pool-1': connection refused (2 more since the last line)",
        "pool 'pool-1' is closed",
    ]


class _Failing:
    """A running collector's parts whose database is gone after `ok` calls; `stop` is set
    once `calls` were made."""

    def __init__(self, stop: asyncio.Event, calls: int, ok: int = 0) -> None:
        self.stop, self.calls, self.ok, self.made = stop, calls, ok, 0
        self.service, self.store = self, self
        # What the tasks hand to in_db (never run: the database is gone).
        self.sealing = self.policies = SimpleNamespace(
            seal_due=None, version=None, latest=None
        )
        self.coordination = SimpleNamespace()  # the re-judging's leases, read inside in_db

    def now(self) -> object:
        import datetime as dt  # noqa: PLC0415

        return dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

    async def in_db(self, work: object) -> int:
        self.made += 1
        if self.made >= self.calls:
            self.stop.set()
        if self.made <= self.ok:
            return 0
        raise sqlite3.OperationalError("the database is gone")


def test_sealing_and_following_the_policy_through_an_outage_log_one_line_each(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def frozen() -> LogEvery:  # time as data: every failure within one window
        return LogEvery(lambda: 10.0, clock=lambda: 0.0)

    async def both() -> None:
        stop = asyncio.Event()
        await server.keep_sealing(_Failing(stop, 12), stop, every=0, failing=frozen())  # type: ignore[arg-type]
        stop = asyncio.Event()
        monkeypatch.setattr(server, "POLICY_POLL_SECONDS", 0)
        running = _Failing(stop, 12, ok=1)  # the version read at start, then the outage
        await server.watch_policy(None, running, stop, file=False, failing=frozen())  # type: ignore[arg-type]

    with caplog.at_level(logging.ERROR, logger=server.__name__):
        asyncio.run(both())
    lines = [r.getMessage() for r in caplog.records if r.name == server.__name__]
    assert lines == ["could not seal reports into the evidence chain: the database is gone",
                     "could not follow the policy in force: the database is gone"]  # fmt: skip
