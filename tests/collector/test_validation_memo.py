"""Validation answered from memory (validation._within) refuses and accepts exactly what the
whole check does: reports with the same facts at arrival times on both sides of a fact's
future limit, and collection times out of bounds on a report whose facts are remembered."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from devposture.collector import validation
from devposture.collector.validation import FUTURE_TOLERANCE, ReportInvalid, validate_report
from devposture.v1 import devposture_pb2 as pb
from tests.collector.same_facts import again, key
from tests.e2e.fleet import posture_report, timestamp

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

BASE = dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def _outcome(report: pb.PostureReport, now: dt.datetime, facts: bytes | None) -> str | None:
    try:
        validate_report(report, now, facts)
    except ReportInvalid as exc:
        return str(exc)
    return None


@pytest.fixture(autouse=True)
def _empty_memory() -> None:
    validation._found_within.clear()


def test_a_fact_past_the_future_limit_is_refused_though_its_facts_were_accepted_later() -> None:
    template = posture_report("d" * 32, BASE)
    future = BASE + dt.timedelta(days=3)  # a signature date three days ahead of the report
    template.antivirus.products[0].signatures_updated_at.CopyFrom(timestamp(future))
    limit = future - FUTURE_TOLERANCE  # the earliest arrival that accepts it
    arrivals = [limit + S, limit, limit - S, limit + dt.timedelta(days=1), limit - S, limit]
    outcomes = []
    for now in arrivals:
        report = again(template, now - dt.timedelta(minutes=5))
        got = _outcome(report, now, key(report))
        assert got == _outcome(report, now, None), now
        outcomes.append(got is None)
    assert outcomes == [True, True, False, True, False, True]


def test_a_remembered_reports_own_id_and_collection_time_are_still_checked() -> None:
    template = posture_report("d" * 32, BASE)
    seen = again(template, BASE)
    assert _outcome(seen, BASE + S, key(seen)) is None
    late = again(template, BASE + FUTURE_TOLERANCE + dt.timedelta(hours=1))  # a day ahead
    bad_nanos = again(template, BASE)
    bad_nanos.collected_at.nanos = 1_000_000_000
    bad_id = again(template, BASE)
    bad_id.report_id = bad_id.report_id.upper()
    for report in (late, bad_nanos, bad_id):
        assert key(report) == key(seen)
        got = _outcome(report, BASE + S, key(report))
        assert got is not None
        assert got == _outcome(report, BASE + S, None)


def test_random_arrivals_and_facts_agree_with_the_whole_check() -> None:
    rng = random.Random(5)
    templates = []
    for k in range(4):
        template = posture_report(f"{k:032x}", BASE)
        ahead = dt.timedelta(hours=rng.randrange(0, 72))
        template.chat_backups.backups[0].newest_backup_at.CopyFrom(timestamp(BASE + ahead))
        templates.append(template)
    for _ in range(600):
        template = rng.choice(templates)
        now = BASE + dt.timedelta(minutes=rng.randrange(-3000, 3000))
        report = again(template, now - dt.timedelta(minutes=rng.randrange(-1500, 30)))
        assert _outcome(report, now, key(report)) == _outcome(report, now, None)
    assert validation._found_within  # the memory was used
