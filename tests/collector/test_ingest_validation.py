"""The compiled validation check (`validation._within_limits`) against the walk it shortcuts.

`validate_report` asks the compiled check first and walks the report (`_walk`) only when the
check says a limit may be broken; the walk finds and words the problem. So the compiled check
must never pass a report the walk refuses, and `validate_report` must accept and refuse
exactly what walking every report did, with the same messages. Checked here on reports
generated from the descriptor (every field filled, then random changes across every limit),
deterministically.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from google.protobuf.descriptor import FieldDescriptor

from devposture.collector import validation
from devposture.collector.validation import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    MAX_BYTES,
    MAX_CHARS,
    MAX_ITEMS,
    ReportInvalid,
    validate_report,
)
from devposture.v1 import devposture_pb2 as pb
from tests.collector.report_fields import PATHS, TIMESTAMP, fill, holder, scalar

# Never reaches the run's database engine: the PostgreSQL leg leaves it out (Makefile).
pytestmark = pytest.mark.engine_free

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
MOMENT = int(NOW.timestamp())
DAY = 86_400

def _text(rng: random.Random, limit: int) -> str:
    length = rng.choice([0, 1, limit - 1, limit, limit + 1, 2 * limit])
    return rng.choice(["a", "é", "财", "😀"]) * length


def _mutate(rng: random.Random, report: pb.PostureReport) -> None:
    path = rng.choice(PATHS)
    fd = path[-1]
    parent = holder(report, path[:-1])
    if fd.is_repeated:
        items = getattr(parent, fd.name)
        limit = MAX_ITEMS.get(fd.full_name, DEFAULT_MAX_ITEMS)
        count = rng.choice([0, 1, 2, limit - 1, limit, limit + 1])
        template = items[0] if len(items) else None
        del items[:]
        for _ in range(count):
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                added = items.add()
                if template is not None:
                    added.CopyFrom(template)
            elif fd.type == FieldDescriptor.TYPE_STRING and rng.random() < 0.02:
                items.append(_text(rng, MAX_CHARS.get(fd.full_name, DEFAULT_MAX_CHARS)))
            elif fd.type == FieldDescriptor.TYPE_ENUM and rng.random() < 0.02:
                items.append(rng.choice([-1, 99, 2**31 - 1]))
            else:
                items.append(template if template is not None else scalar(fd))
        return
    if fd.type == FieldDescriptor.TYPE_STRING:
        setattr(parent, fd.name, _text(rng, MAX_CHARS.get(fd.full_name, DEFAULT_MAX_CHARS)))
    elif fd.type == FieldDescriptor.TYPE_BYTES:
        limit = MAX_BYTES.get(fd.full_name, DEFAULT_MAX_BYTES)
        setattr(parent, fd.name, b"b" * rng.choice([0, limit, limit + 1]))
    elif fd.type == FieldDescriptor.TYPE_ENUM:
        assert fd.enum_type is not None
        known = sorted(fd.enum_type.values_by_number)
        setattr(parent, fd.name, rng.choice([*known, -1, known[-1] + 1, 2**31 - 1]))
    elif fd.message_type is not None and fd.message_type.full_name == TIMESTAMP:
        if rng.random() < 0.1:
            parent.ClearField(fd.name)
            return
        stamp = getattr(parent, fd.name)
        stamp.seconds = rng.choice([
            MOMENT, MOMENT - 401 * DAY, MOMENT + 23 * 3600, MOMENT + 25 * 3600, 0, -1,
            631_152_000 - 1, 631_152_000, 2**40, 253_402_300_800,
        ])  # fmt: skip
        stamp.nanos = rng.choice([0, 999_999_999, 1_000_000_000, -1, 5])
    elif fd.type == FieldDescriptor.TYPE_MESSAGE:
        parent.ClearField(fd.name)
    elif fd.type == FieldDescriptor.TYPE_BOOL:
        setattr(parent, fd.name, rng.random() < 0.5)


def _reference(report: pb.PostureReport, now: dt.datetime) -> str | None:
    """validate_report as it was before the compiled check: the early checks (missing
    collected_at, report id; no walk is involved in them), the walk of every report, then
    the report's age (asked of validate_report once the walk found nothing)."""
    if not report.HasField("collected_at") or not validation._is_canonical_uuid(report.report_id):
        return _said(report, now)
    bounds = validation._Bounds(now)
    try:
        validation._walk(report, None, bounds)
    except ReportInvalid as exc:
        return str(exc)
    return _said(report, now)


def _said(report: pb.PostureReport, now: dt.datetime) -> str | None:
    try:
        validate_report(report, now)
    except ReportInvalid as exc:
        return str(exc)
    return None


def _report(rng: random.Random, changes: int) -> pb.PostureReport:
    report = pb.PostureReport()
    fill(report, MOMENT - DAY)
    report.report_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    report.collected_at.seconds = MOMENT - 60
    for _ in range(changes):
        _mutate(rng, report)
    return report


def test_a_fully_filled_report_passes_the_compiled_check() -> None:
    report = _report(random.Random(0), 0)
    bounds = validation._Bounds(NOW)
    assert validation._within_limits(report, bounds.earliest, bounds.latest)
    assert _said(report, NOW) is None


@pytest.mark.parametrize("seed", range(4))
def test_validation_accepts_and_refuses_what_walking_every_report_did(seed: int) -> None:
    rng = random.Random(seed)
    bounds = validation._Bounds(NOW)
    passed = refused = 0
    for example in range(1500):
        report = _report(rng, rng.randint(0, 4))
        within = validation._within_limits(report, bounds.earliest, bounds.latest)
        try:
            validation._walk(report, None, bounds)
            walked = None
        except ReportInvalid as exc:
            walked = str(exc)
        # Never a report passed that the walk refuses.
        assert not (within and walked is not None), (example, walked)
        assert _said(report, NOW) == _reference(report, NOW), example
        passed += within
        refused += walked is not None
    # Both answers were exercised, and the compiled check passes what it should.
    assert passed > 300 and refused > 300, (passed, refused)
