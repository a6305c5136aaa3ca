"""The urgent alert: when the database refuses writes (its disk full, a server that takes no
writes), no alert can be recorded, so none was sent, and IT heard nothing at the moment it
most needed to. The collector now tells IT through its channels without a record: once per
problem (at most once an hour, a reminder after `repeat_hours`), and once more when writes go
through again; the recorded digests then resume without repeating it.

Real receivers on loopback (HTTP for WeCom and the webhook, aiosmtpd for email); a real full
tmpfs under SQLite, and on PostgreSQL a role whose sessions take no writes, on both legs of
the suite. Time is data: the bound's clock is given, rounds are counted, nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devposture.collector.alerts import channels
from devposture.collector.alerts.task import keep_alerting
from devposture.collector.alerts.unrecorded import NEW_AT_MOST_EVERY_SECONDS, Unrecorded
from devposture.collector.clock import utcnow
from devposture.collector.refused_writes import (
    DISK_FULL,
    FOLDER_FULL,
    READ_ONLY,
    SERVER_DISK_FULL,
    Refusal,
    RefusedWrites,
)
from tests.collector.alert_fleet import settings
from tests.collector.alert_receivers import HttpReceiver, http_receiver, smtp_receiver
from tests.collector.test_hooks import scrape, scrape_until, value
from tests.collector.test_refused_writes import CUT, ROUNDS, Refusing, refusing_collector
from tests.waiting import wait_until

NOW = dt.datetime(2026, 12, 5, 8, 38, tzinfo=dt.UTC)  # 16:38 in Beijing
MINUTE = dt.timedelta(minutes=1)
DAY_SECONDS = 24 * 3600.0
URGENT = "devposture.alert-urgent"
DIGEST = "devposture.alert-digest"

EN_NEW = "\n".join([
    "**devposture urgent alert** (5 Dec 16:38 Beijing time)",
    "Collector collector-1 cannot write to its database since 5 Dec 16:38: the disk holding"
    " the collector's SQLite database is full.",
    "What to do: free space on that disk; the collector resumes by itself, without a restart."
    " Until then agents keep their reports and no alert digest can be recorded.",
    "Sent without a record in the database: each collector on that database sends its own,"
    " named by its host.",
])  # fmt: skip
EN_RESOLVED = "\n".join([
    "**devposture urgent alert resolved** (5 Dec 16:58 Beijing time)",
    "Collector collector-1 writes to its database again (refused since 5 Dec 16:38: the disk"
    " holding the collector's SQLite database is full).",
    "Reports and alerts are recorded again; agents deliver the reports they kept.",
])  # fmt: skip


class Clock:
    """The bound's clock (seconds), moved by the test."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


def _told(clock: Clock, repeat: float = DAY_SECONDS) -> Unrecorded:
    return Unrecorded("collector-1", repeat_seconds=lambda: repeat, clock=clock)


def _urgent(hook: HttpReceiver) -> list[tuple[str, str]]:
    """(status, problem) of each urgent alert the webhook received."""
    documents = [r.json() for r in hook.received]
    return [(d["status"], d["problem"]) for d in documents if d["schema"] == URGENT]


# --- the words, on every channel ---------------------------------------------------------------


def test_the_urgent_alert_names_the_collector_the_problem_and_the_fix_chinese_first(
    tmp_path: Path,
) -> None:
    told = _told(Clock())
    with http_receiver() as robot, http_receiver() as hook, smtp_receiver() as smtp:
        found = channels.configured(settings(
            tmp_path, wecom=robot.url, webhook=hook.url, secret="signing", smtp_port=smtp.port,
        ))  # fmt: skip
        asyncio.run(told.refused(DISK_FULL, NOW, found))
        asyncio.run(told.wrote(NOW + 20 * MINUTE, found))
        new, resolved = (r.json()["markdown"]["content"] for r in robot.received)
        documents = [r.json() for r in hook.received]
        mails = list(smtp.messages)
    for content, english, count in ((new, EN_NEW, 4), (resolved, EN_RESOLVED, 3)):
        assert content.endswith(f"\n\n{english}"), content
        zh = content.removesuffix(f"\n\n{english}").splitlines()
        assert len(zh) == count  # the same lines, Chinese first
        assert "collector-1" in zh[1] and "12月5日 16:38" in zh[1]
    assert new.split("\n\n")[0].splitlines()[0].endswith("**（北京时间 12月5日 16:38）")
    assert resolved.split("\n\n")[0].splitlines()[0].endswith("**（北京时间 12月5日 16:58）")
    first, last = documents
    assert first == {
        "schema": URGENT, "version": 1, "notice_id": first["notice_id"], "status": "new",
        "kind": "writes_refused", "collector": "collector-1", "problem": "disk_full",
        "since": "2026-12-05T08:38:00Z", "composed_at": "2026-12-05T08:38:00Z",
        "time_zone": "Asia/Shanghai", "text_zh": first["text_zh"],
        "text_en": EN_NEW.replace("**", ""),
    }  # fmt: skip
    assert first["text_zh"] == new.split("\n\n")[0].replace("**", "")
    assert (last["status"], last["since"], last["composed_at"]) == (
        "resolved", "2026-12-05T08:38:00Z", "2026-12-05T08:58:00Z",
    )  # fmt: skip
    assert last["notice_id"] != first["notice_id"]
    assert [m["Subject"] for m in mails] == [
        f"[devposture] {mails[0]['Subject'].split(' / ')[0].removeprefix('[devposture] ')}"
        " / Urgent: collector collector-1 cannot write to its database",
        f"[devposture] {mails[1]['Subject'].split(' / ')[0].removeprefix('[devposture] ')}"
        " / Resolved: collector collector-1 writes to its database again",
    ]
    body = mails[0].get_content()
    assert body.index("北京时间") < body.index("Beijing time")
    assert body.endswith(EN_NEW.replace("**", "") + "\n")


def test_each_refusal_has_a_code_for_the_webhook() -> None:
    refusals = (DISK_FULL, SERVER_DISK_FULL, READ_ONLY, FOLDER_FULL)
    assert [r.code for r in refusals] == [
        "disk_full", "server_disk_full", "read_only", "folder_full",
    ]  # fmt: skip


# --- once, bounded, resolved once, retried ------------------------------------------------------


def test_told_once_at_most_hourly_per_problem_and_resolved_once(tmp_path: Path) -> None:
    clock = Clock()
    told = _told(clock)
    with http_receiver() as hook:
        found = channels.configured(settings(tmp_path, webhook=hook.url))

        def refused(why: Refusal, minutes: float) -> None:
            clock.seconds = minutes * 60
            asyncio.run(told.refused(why, NOW + minutes * MINUTE, found))

        def wrote(minutes: float) -> None:
            clock.seconds = minutes * 60
            asyncio.run(told.wrote(NOW + minutes * MINUTE, found))

        for minute in range(ROUNDS):  # a round every minute, refused
            refused(DISK_FULL, minute)
        assert _urgent(hook) == [("new", "disk_full")]
        wrote(10)
        wrote(11)
        assert _urgent(hook) == [("new", "disk_full"), ("resolved", "disk_full")]
        refused(DISK_FULL, 30)  # full again within the hour: not told again yet
        refused(DISK_FULL, 59)
        assert len(_urgent(hook)) == 2
        refused(DISK_FULL, NEW_AT_MOST_EVERY_SECONDS / 60)  # an hour after it was told
        assert _urgent(hook)[2:] == [("new", "disk_full")]
        refused(READ_ONLY, 61)  # another problem: told at once
        assert _urgent(hook)[3:] == [("new", "read_only")]
        refused(READ_ONLY, 62)
        wrote(63)  # each problem told is told resolved
        assert sorted(_urgent(hook)[4:]) == [("resolved", "disk_full"), ("resolved", "read_only")]
        wrote(64)
        assert len(_urgent(hook)) == 6


def test_a_problem_that_lasts_is_reminded_after_repeat_hours(tmp_path: Path) -> None:
    clock = Clock()
    told = _told(clock, repeat=DAY_SECONDS)
    with http_receiver() as hook:
        found = channels.configured(settings(tmp_path, webhook=hook.url))
        asyncio.run(told.refused(SERVER_DISK_FULL, NOW, found))
        clock.seconds = DAY_SECONDS - 1
        asyncio.run(told.refused(SERVER_DISK_FULL, NOW, found))
        assert _urgent(hook) == [("new", "server_disk_full")]
        clock.seconds = DAY_SECONDS
        asyncio.run(told.refused(SERVER_DISK_FULL, NOW, found))
        clock.seconds = DAY_SECONDS + 60
        asyncio.run(told.refused(SERVER_DISK_FULL, NOW, found))
        asyncio.run(told.wrote(NOW, found))
        assert _urgent(hook) == [
            ("new", "server_disk_full"), ("reminder", "server_disk_full"),
            ("resolved", "server_disk_full"),
        ]  # fmt: skip
        assert hook.received[1].json()["text_en"].startswith(
            "devposture urgent alert, still open ("
        )


def test_a_failed_send_is_logged_and_tried_again_at_the_next_round(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    told = _told(clock)
    with http_receiver([(500, {}), (503, {})]) as hook, http_receiver() as robot:
        found = channels.configured(settings(tmp_path, webhook=hook.url, wecom=robot.url))
        for minute in range(ROUNDS):
            clock.seconds = minute * 60.0
            asyncio.run(told.refused(DISK_FULL, NOW + minute * MINUTE, found))
        # The webhook failed twice and had it at the third round; WeCom at the first.
        assert [r.json()["status"] for r in hook.received] == ["new"] * 3
        assert len({r.json()["notice_id"] for r in hook.received}) == 1  # the same alert
        assert len(robot.received) == 1
    failed = [r for r in caplog.records if "could not send the urgent alert" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.WARNING]  # once, not at every round
    assert "webhook" in failed[0].getMessage() and "HTTP 500" in failed[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_receiver_away_never_stops_the_rounds_and_nothing_untold_is_resolved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with http_receiver() as gone:
        url = gone.url  # closed when the block ends: connections are refused from then on
    told = _told(Clock())
    found = channels.configured(settings(tmp_path, webhook=url))
    with caplog.at_level(logging.INFO):
        asyncio.run(told.refused(DISK_FULL, NOW, found))
        asyncio.run(told.refused(DISK_FULL, NOW + MINUTE, found))
    assert "could not send the urgent alert to webhook (no answer (ConnectionRefusedError" in (
        caplog.text
    )
    with http_receiver() as hook:  # back, but the disk was freed first: nothing to resolve
        found = channels.configured(settings(tmp_path, webhook=hook.url))
        asyncio.run(told.wrote(NOW + 2 * MINUTE, found))
        assert hook.received == []


# --- serve's alert task on a database that refuses writes ---------------------------------------

# Free space left on the data folder's disk besides what the test fills: the disk stays over
# disk_warning_percent once the filler is gone, so the recorded disk warning is due after.
HEADROOM = 512 * 1024


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Refusing]:
    """A collector whose data folder is on a small real tmpfs nearly full (over 90 %), and
    how to make its database refuse writes: on SQLite that disk filled to its last byte, on
    PostgreSQL its role's sessions made read-only (as after a failover to a standby)."""
    with contextlib.ExitStack() as stack:
        refusing = refusing_collector(stack, tmp_path, folder_on_tmpfs=True)
        disk = refusing.collector.config.data_dir.parent
        figures = os.statvfs(disk)
        (disk / "ballast").write_bytes(b"\0" * (figures.f_bavail * figures.f_frsize - HEADROOM))
        yield refusing


def test_serve_tells_it_a_database_refusing_writes_then_resolved_then_digests_resume(
    site: Refusing, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The alert about the full disk could not be recorded, so it was never sent: IT heard
    # nothing unless the 90 % warning happened to come first.
    caplog.set_level(logging.INFO)
    collector = site.collector
    rounds = [0]

    def counted() -> dt.datetime:  # each alert round reads the service's clock
        rounds[0] += 1
        return utcnow()

    monkeypatch.setattr(collector.service, "_clock", counted)
    alarm = RefusedWrites("alerting")
    with http_receiver() as hook, smtp_receiver() as smtp:
        alerts = dataclasses.replace(
            collector.config.alerts, webhook_url=f"{hook.url}/hooks/devposture",
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none",
            smtp_from="devposture@example.com", smtp_to=("it-team@example.com",),
            disk_warning_percent=90,
        )  # fmt: skip
        config = dataclasses.replace(collector.config, alerts=alerts)
        site.refuse()
        stop = asyncio.Event()
        done = asyncio.run_coroutine_threadsafe(
            keep_alerting(collector._running, config, stop, every=0.01, refused=alarm),
            collector._loop,
        )  # fmt: skip
        try:
            wait_until(lambda: len(_urgent(hook)) == 1 and len(smtp.messages) == 1,
                       "the urgent alert on both channels")  # fmt: skip
            seen = rounds[0]
            wait_until(lambda: rounds[0] >= seen + ROUNDS, "more refused rounds")
            assert site.reader.alerts.last_composed() is None  # nothing could be recorded
            site.allow()
            wait_until(lambda: len(_schemas(hook)) == 3 and len(smtp.messages) == 3,
                       "the urgent alert resolved, then the digest")  # fmt: skip
            seen = rounds[0]
            wait_until(lambda: rounds[0] >= seen + ROUNDS, "more rounds after")
        finally:
            collector._loop.call_soon_threadsafe(stop.set)
            done.result(30)
        documents = [r.json() for r in hook.received]
        subjects = [m["Subject"] for m in smtp.messages]
    host, code = socket.gethostname(), site.refusal.code
    assert _schemas(hook) == [URGENT, URGENT, DIGEST]  # nothing more, nothing twice
    new, resolved, digest = documents
    assert (new["status"], new["problem"], new["collector"]) == ("new", code, host)
    assert (resolved["status"], resolved["problem"]) == ("resolved", code)
    assert str(site.refusal.problem) in new["text_en"] and str(site.refusal.fix) in new["text_en"]
    assert host in new["text_zh"] and host in new["text_en"]
    # The normal disk warning is recorded and told once writes go through.
    ((item),) = digest["items"]
    assert (item["status"], item["kind"], item["collector"]) == ("new", "disk", host)
    assert int(item["used_percent"]) >= 90
    assert subjects[0].endswith(f"Urgent: collector {host} cannot write to its database")
    assert subjects[1].endswith(f"Resolved: collector {host} writes to its database again")
    assert "Alert digest: 1 new" in subjects[2]
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert [line for line in loud if not any(cut in line for cut in CUT)] == []


def _schemas(hook: HttpReceiver) -> list[str]:
    return [r.json()["schema"] for r in hook.received]


def test_urgent_alerts_are_counted_on_the_metrics_endpoint(tmp_path: Path) -> None:
    """What IT was told without a record, and what failed to reach it, by channel and
    status, on the collector's real metrics endpoint (each collector counts its own, as each
    sends its own): the first attempt answered 500, then the alert, then resolved."""
    with contextlib.ExitStack() as stack:
        site = refusing_collector(stack, tmp_path, serve_metrics=True)
        collector = site.collector
        url = f"http://127.0.0.1:{collector._running.metrics_port}/metrics"
        hook = stack.enter_context(http_receiver([(500, {})]))
        alerts = dataclasses.replace(collector.config.alerts, webhook_url=hook.url)
        config = dataclasses.replace(collector.config, alerts=alerts)
        assert value(scrape(url), "devposture_urgent_alerts_total", channel="webhook",
                     status="new") == 0  # fmt: skip
        site.refuse()
        stop = asyncio.Event()
        done = asyncio.run_coroutine_threadsafe(
            keep_alerting(collector._running, config, stop, every=0.01,
                          refused=RefusedWrites("alerting")),
            collector._loop,
        )  # fmt: skip
        try:
            wait_until(lambda: len(_urgent(hook)) == 2, "the urgent alert, tried twice")
            samples = scrape_until(url, lambda s: value(
                s, "devposture_urgent_alerts_total", channel="webhook", status="new") == 1)
            assert value(samples, "devposture_urgent_alert_failures_total",
                         channel="webhook") == 1  # fmt: skip
            site.allow()
            wait_until(lambda: ("resolved", site.refusal.code) in _urgent(hook),
                       "the urgent alert resolved")  # fmt: skip
            samples = scrape_until(url, lambda s: value(
                s, "devposture_urgent_alerts_total", channel="webhook", status="resolved") == 1)
        finally:
            collector._loop.call_soon_threadsafe(stop.set)
            done.result(30)
        counted = {status: value(samples, "devposture_urgent_alerts_total", channel="webhook",
                                 status=status) for status in ("new", "reminder", "resolved")}
        assert counted == {"new": 1, "reminder": 0, "resolved": 1}
        assert value(samples, "devposture_urgent_alert_failures_total", channel="webhook") == 1
