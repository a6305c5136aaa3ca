"""What to tell the employee, from the collector's latest verdicts and what was told before.

* A check that is failing and was not failing at the last telling: tell it (with its grace
  deadline, when it has one). A new deadline is a new failure: it failed again, or the
  policy's grace changed.
* A day before a grace period ends: tell it once more, unless the first telling came within
  that last day (it named the deadline already; a 4-hour grace would otherwise be told
  twice in a row).
* A check no longer failing is forgotten, so failing again is told again.

Pure: the moment is given, never read here, so the tests give it as data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from devposture.v1 import devposture_pb2 as pb

REMIND_BEFORE = dt.timedelta(days=1)
Kind = Literal["failing", "reminder"]


@dataclass(frozen=True)
class Told:
    """One failing check the employee was told of."""

    deadline: dt.datetime | None  # its grace deadline then (None: no grace)
    told_at: dt.datetime
    reminded: bool = False


@dataclass(frozen=True)
class Notice:
    kind: Kind
    verdict: pb.CheckVerdict


def deadline_of(verdict: pb.CheckVerdict) -> dt.datetime | None:
    return verdict.grace_until.ToDatetime(dt.UTC) if verdict.HasField("grace_until") else None


def due(
    verdicts: Iterable[pb.CheckVerdict], told: dict[str, Told], now: dt.datetime
) -> list[Notice]:
    notices = []
    for verdict in verdicts:
        if verdict.state != "FAIL":
            continue
        deadline = deadline_of(verdict)
        known = told.get(verdict.check_id)
        if known is None or known.deadline != deadline:
            notices.append(Notice("failing", verdict))
        elif deadline is not None and not known.reminded:
            last_day = deadline - REMIND_BEFORE
            if last_day <= now < deadline and known.told_at < last_day:
                notices.append(Notice("reminder", verdict))
    return notices


def remember(
    told: dict[str, Told], verdicts: Iterable[pb.CheckVerdict], sent: Iterable[Notice],
    now: dt.datetime,
) -> dict[str, Told]:  # fmt: skip
    """What is known as told after `sent` reached the employee: the failing checks only."""
    failing = {v.check_id for v in verdicts if v.state == "FAIL"}
    kept = {check_id: t for check_id, t in told.items() if check_id in failing}
    for notice in sent:
        check_id = notice.verdict.check_id
        if notice.kind == "failing":
            kept[check_id] = Told(deadline_of(notice.verdict), now)
        elif check_id in kept:
            kept[check_id] = replace(kept[check_id], reminded=True)
    return kept
