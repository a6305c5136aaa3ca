"""When each failing check's grace period ends, for the verdicts an acknowledgement carries.

IT reads a fresh failure as GRACE until the moment it began plus the check's `grace_hours`
(`compliance.py`); the employee's agent only gets the report's verdicts, so without this it
shows FAIL with no date. The moment a failure began is the device's last state change of that
check, read after the report is stored, so it is the same history IT's reports read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from devposture.collector.compliance import Change
from devposture.policy import Policy


def needs_history(policy: Policy, failing: Iterable[str]) -> bool:
    """Whether any of the `failing` checks has a grace period (else nothing to read)."""
    return any(_grace_hours(policy, check_id) > 0 for check_id in failing)


def grace_deadlines(
    policy: Policy, changes: Iterable[Change], failing: Iterable[str]
) -> dict[str, dt.datetime]:
    """Per check of `failing` with a grace period and a FAIL as its last change in
    `changes` (one device's history, oldest first): when its grace period ends."""
    began: dict[str, tuple[str, dt.datetime]] = {}
    for _, check_id, state, _, since in changes:
        began[check_id] = (state, since)
    deadlines: dict[str, dt.datetime] = {}
    for check_id in failing:
        hours = _grace_hours(policy, check_id)
        last = began.get(check_id)
        if hours > 0 and last is not None and last[0] == "FAIL":
            deadlines[check_id] = last[1] + dt.timedelta(hours=hours)
    return deadlines


def _grace_hours(policy: Policy, check_id: str) -> int:
    spec = policy.check(check_id)
    return 0 if spec is None else spec.grace_hours
