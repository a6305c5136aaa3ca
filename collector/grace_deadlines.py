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
    return deadlines_of_failures(
        policy, {check_id: since for check_id, (state, since) in began.items() if state == "FAIL"},
        failing,
    )  # fmt: skip


def deadlines_of_failures(
    policy: Policy, failing_since: dict[str, dt.datetime], failing: Iterable[str]
) -> dict[str, dt.datetime]:
    """Per check of `failing` with a grace period and a known start of its failure
    (`failing_since`, as the store recorded it): when its grace period ends."""
    deadlines: dict[str, dt.datetime] = {}
    for check_id in failing:
        hours = _grace_hours(policy, check_id)
        began = failing_since.get(check_id)
        if hours > 0 and began is not None:
            deadlines[check_id] = began + dt.timedelta(hours=hours)
    return deadlines


def _grace_hours(policy: Policy, check_id: str) -> int:
    spec = policy.check(check_id)
    return 0 if spec is None else spec.grace_hours
