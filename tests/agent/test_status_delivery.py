"""What the employee's `status` says about reports that have not reached the collector yet,
read from a real outbox."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from devposture.agent.employee.company_time import company_zone
from devposture.agent.outbox import Outbox
from devposture.agent.status import View, render_delivery
from tests.conftest import make_report

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
ZH = View("zh", "linux", company_zone(), NOW)
EN = View("en", "linux", company_zone(), NOW)


def test_nothing_is_said_when_everything_was_delivered(tmp_path: Path) -> None:
    assert render_delivery(Outbox(tmp_path / "outbox").stats(), ZH) == ""


def test_waiting_reports_are_counted_with_the_oldest_date_in_the_companys_time(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox")
    oldest = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
    outbox.put(make_report("d", oldest))
    outbox.put(make_report("d", oldest + dt.timedelta(hours=1)))
    assert "2 份报告等待发送（最早 11月24日 17:30）" in render_delivery(outbox.stats(), ZH)
    text = render_delivery(outbox.stats(), EN)
    assert "2 reports waiting to be sent since 24 Nov 17:30" in text
    assert "could not be kept" not in text


def test_reports_lost_to_a_full_outbox_are_told(tmp_path: Path) -> None:
    first = make_report("d", dt.datetime(2026, 11, 24, tzinfo=dt.UTC))
    # Room for about one report: each new one pushes the previous out.
    outbox = Outbox(tmp_path / "outbox", max_bytes=len(first.SerializeToString()) + 200)
    outbox.put(first)
    second = make_report("d", dt.datetime(2026, 11, 25, tzinfo=dt.UTC))
    second.firewall.profiles.add(name="ufw", enabled=False)  # other facts: not coalesced
    outbox.put(second)
    stats = outbox.stats()
    assert stats.dropped_total == 1
    assert "1 份报告未能保留" in render_delivery(stats, ZH)
    assert "1 report could not be kept" in render_delivery(stats, EN)
