"""A recurring failure logged once every few seconds with its count (collector/log_every.py),
and the group committer through a database outage: one line, not one per group."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from devposture.collector import ingest
from devposture.collector.log_every import LogEvery
from devposture.collector.store import CheckResult, ReportRecord, StoreOutcome


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
