"""A verdict as the collector acknowledges it: the bundled policy's clause, titles and
remedies for a check, with a state (and a grace deadline), for the employee-facing tests."""

from __future__ import annotations

import datetime as dt

from devposture.policy import default_policy
from devposture.v1 import devposture_pb2 as pb


def policy_verdict(
    check_id: str, state: str, grace_until: dt.datetime | None = None,
    reason: str = "firewall is off",
) -> pb.CheckVerdict:  # fmt: skip
    spec = default_policy().check(check_id)
    assert spec is not None
    verdict = pb.CheckVerdict(
        check_id=check_id, clause=spec.clause, state=state, reason=reason,
        title_zh=spec.title_zh, title_en=spec.title_en,
        remediation_zh=spec.remediation_zh, remediation_en=spec.remediation_en,
    )  # fmt: skip
    if grace_until is not None:
        verdict.grace_until.FromDatetime(grace_until)
    return verdict
