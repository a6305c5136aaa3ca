"""The standing rule, written once: which standing a device has on one check at a moment.

The first step that holds decides:

1. STALE: the device has been silent past the policy's window (whatever else holds: a device
   that stopped reporting proves nothing, waived or not);
2. EXEMPT: a waiver on the check is in force;
3. GRACE: its latest verdict is FAIL and the failure began within the check's grace period;
4. PASS or FAIL: its latest verdict;
5. UNKNOWN: never judged, or judged UNKNOWN (unknown is not pass).

`decide` applies the rule in Python (`compliance.standings`, the reference every view is
tested against); `sql_case` renders the same steps as one SQL CASE for the store's queries
that judge in the database (`store/device_list.py`). Both walk `STEPS`, so they cannot drift
apart; a test evaluates the CASE on both engines for every combination and compares.
The fleet's counts (`store/fleet.py`) aggregate instead of judging each device, and are tested
equal to `compliance.standings`.

Before any step: which devices the fleet holds at a moment (`in_fleet`, `sql_in_fleet`). A
device IT revoked (stolen) or retired (replaced) leaves the fleet's standings, counts and
lists from that moment on, as Fleet, Intune and Jamf leave them out of compliance, while its
record and history stay; as of an earlier moment it counts as it did then, so a past figure
never changes. A status never goes back to active (enrolling again makes a new key, a new
device), so the moment it was set tells the whole story.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Facts:
    """What the rule looks at (in Python)."""

    silent: bool  # no report within the policy's window
    waived: bool  # a waiver on this check in force
    latest: str | None  # the latest verdict's state (PASS, FAIL, UNKNOWN), None: never judged
    in_grace: bool  # the failure began within the check's grace period


@dataclass(frozen=True)
class Conditions:
    """The same facts as SQL expressions (their placeholders bound by the caller)."""

    silent: str
    waived: str | None  # None: no waiver in force on the check (the step is left out)
    latest: str  # an expression giving the latest state, NULL when never judged
    in_grace: str


@dataclass(frozen=True)
class Step:
    holds: Callable[[Facts], bool]
    standing: Callable[[Facts], str]
    sql_when: Callable[[Conditions], str | None]
    sql_then: Callable[[Conditions], str]


STEPS: tuple[Step, ...] = (
    Step(lambda f: f.silent, lambda f: "STALE", lambda c: c.silent, lambda c: "'STALE'"),
    Step(lambda f: f.waived, lambda f: "EXEMPT", lambda c: c.waived, lambda c: "'EXEMPT'"),
    Step(
        lambda f: f.latest == "FAIL" and f.in_grace, lambda f: "GRACE",
        lambda c: f"{c.latest} = 'FAIL' AND {c.in_grace}", lambda c: "'GRACE'",
    ),
    Step(
        lambda f: f.latest in ("PASS", "FAIL"), lambda f: str(f.latest),
        lambda c: f"{c.latest} IN ('PASS', 'FAIL')", lambda c: c.latest,
    ),
)
OTHERWISE = "UNKNOWN"

ACTIVE = "active"  # the status of a device in the fleet (`store.identity`: revoked, retired)


def in_fleet(left_at_us: int | None, at_us: int) -> bool:
    """Whether a device counts in the fleet at `at_us`: it had not left it by then
    (`left_at_us`: when IT revoked or retired it, None while it is active)."""
    return left_at_us is None or left_at_us > at_us


def sql_in_fleet(device: str, at: str) -> str:
    """`in_fleet` in SQL, of the `devices` row `device` (an alias) at `at` (a placeholder or
    an expression): active, or revoked or retired after the moment. A status without its
    moment (an operator's edit) counts as left since ever: never counted by a guess."""
    return f"({device}.status = '{ACTIVE}' OR {device}.status_us > {at})"


def sql_left_fleet(device: str, at: str) -> str:
    """The negation of `sql_in_fleet` (NULL-safe): revoked or retired by the moment."""
    return (
        f"({device}.status <> '{ACTIVE}'"
        f" AND ({device}.status_us IS NULL OR {device}.status_us <= {at}))"
    )


def decide(facts: Facts) -> str:
    for step in STEPS:
        if step.holds(facts):
            return step.standing(facts)
    return OTHERWISE


def sql_case(conditions: Conditions) -> str:
    whens = []
    for step in STEPS:
        when = step.sql_when(conditions)
        if when is not None:
            whens.append(f"WHEN {when} THEN {step.sql_then(conditions)}")
    return f"CASE {' '.join(whens)} ELSE '{OTHERWISE}' END"
