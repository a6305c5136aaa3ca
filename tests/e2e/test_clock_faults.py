"""An agent's clock that is wrong, then set right, against a real collector and real agent code
(outbox, transport): what the wrong clock dated may be refused, with the reason; nothing
collected once the clock is right may be refused because of it.

The clocks are given as data: each report says when it was collected, as the agent's clock read.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.e2e.fleet import CollectorServer, SimAgent, enroll_agent, utcnow


def _collect(agent: SimAgent, at: dt.datetime) -> str:
    """A report collected at `at` on the agent's clock, put as the agent's collection puts it
    (its delivery stats stamped from the outbox's scan)."""
    report = agent.report(at)
    agent.outbox.put(report, stamp_delivery=True)
    agent.made.append(report.report_id)
    return report.report_id


def test_reports_collected_after_an_unset_clock_was_set_are_stored(
    collector: CollectorServer, tmp_path: Path
) -> None:
    # A computer without a battery-backed clock starts at 1970 and collects before the network
    # (and so the time) is up; its next reports, dated right, carried 1970 as their oldest
    # pending time, and the collector refused every one of them for good with it.
    agent = enroll_agent(collector, tmp_path / "laptop", "laptop", collector.token())
    unset = _collect(agent, dt.datetime(1970, 1, 1, 0, 0, 42, tzinfo=dt.UTC))
    now = utcnow()
    good = [_collect(agent, now - dt.timedelta(minutes=m)) for m in (3, 2, 1)]

    result = agent.drain()
    assert result.stopped_by is None, result.stopped_by
    assert result.set_aside == [unset]
    assert sorted(result.acknowledged) == sorted(good)
    assert sorted(collector.stored_ids()) == sorted(good)
    (reason,) = agent.outbox.rejected_dir.glob("*.reason")
    assert "collected_at: 1970-01-01T00:00:42Z is before 1990-01-01" in reason.read_text()
    assert agent.pending_count() == 0
    assert collector.stop() == 0
