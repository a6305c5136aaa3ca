"""What the person at the computer sees: each clause, its state, and what to do about it.

The collector's judgment comes back with every acknowledgement and is kept in the state
folder, so `status` shows it even when the collector cannot be reached. Before the first
judgment, `status` shows a local view instead: the agent collects now and runs the same pure
checks the collector runs (devposture.policy.checks, with the bundled policy's thresholds), and says
plainly that this is not the collector's judgment.

It is read as IT reads it: a failure within its grace period says until when (the deadline
the collector sent), in the company's time zone (the policy's `time_zone`, which the
collector hands out with the agent's configuration), in the computer's language, with the
remedy for this OS. A reason is the collector's reason code worded here, in that language
and zone (`devposture.policy.reasons`); from an older collector, its English text as it came.
The desktop notifications (`agent/notify/`) use the same lines.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from devposture.agent.employee.company_time import company_zone, moment_text
from devposture.agent.employee.language import Lang, os_language
from devposture.agent.employee.remediation import OsName, steps_for, this_os
from devposture.agent.employee.words import WORDS, Words
from devposture.policy import default_policy
from devposture.policy.checks import CheckParameters, evaluate
from devposture.policy.moments import offset_label
from devposture.policy.reasons import render
from devposture.v1 import devposture_pb2 as pb


def local_verdicts(report: pb.PostureReport, now: dt.datetime) -> list[pb.CheckVerdict]:
    """The checks run here, on this report, with the bundled policy's thresholds and texts."""
    policy = default_policy()
    params = CheckParameters.from_values({c.check_id: c.parameters for c in policy.checks})
    out = []
    for check, verdict in evaluate(report, now, params):
        spec = policy.check(check.check_id)
        if spec is None:
            continue
        item = pb.CheckVerdict(check_id=check.check_id, clause=spec.clause)
        item.state, item.reason_code = verdict.state.value, verdict.reason
        item.title_zh, item.title_en = spec.title_zh, spec.title_en
        item.remediation_zh, item.remediation_en = spec.remediation_zh, spec.remediation_en
        out.append(item)
    return out


@dataclass(frozen=True)
class View:
    """How this person reads it: language, OS (for the remedies), the company's time zone,
    and the moment it is read (a deadline passed is said as passed)."""

    lang: Lang
    os_name: OsName
    zone: dt.tzinfo
    now: dt.datetime

    @classmethod
    def here(cls, now: dt.datetime, zone_name: str = "") -> View:
        return cls(os_language(), this_os(), company_zone(zone_name), now)

    @property
    def words(self) -> Words:
        return WORDS[self.lang]

    def moment(self, ts: Timestamp) -> str:
        return moment_text(ts.ToDatetime(dt.UTC), self.lang, self.zone, self.now)


# Exit codes of `status` (its help lists them): a script or a management tool can tell a
# failing computer from one not judged yet.
EXIT_COMPLIANT = 0
EXIT_FAILING = 3
EXIT_NOT_JUDGED = 4


def standing(verdict: pb.CheckVerdict, now: dt.datetime) -> str:
    """The state as IT reads it now: a FAIL before its grace deadline is GRACE."""
    in_grace = verdict.state == "FAIL" and verdict.HasField("grace_until")
    if in_grace and now < verdict.grace_until.ToDatetime(dt.UTC):
        return "GRACE"
    return verdict.state


def state_text(verdict: pb.CheckVerdict, view: View) -> str:
    """ "不合规，宽限期至 12月3日 16:38" / "failing, grace until 3 Dec 16:38"."""
    words = view.words
    label = words.states.get(verdict.state, verdict.state)
    if verdict.state == "FAIL" and verdict.HasField("grace_until"):
        when = view.moment(verdict.grace_until)
        grace = words.grace_until if standing(verdict, view.now) == "GRACE" else words.grace_ended
        label += ("，" if view.lang == "zh" else ", ") + grace(when)
    return label


def reason_text(verdict: pb.CheckVerdict, view: View) -> str:
    """The verdict's reason in the reader's language, times in the company's time zone; a
    collector older than reason codes sent English words only: those, as they came."""
    if verdict.reason_code:
        return render(verdict.reason_code, view.lang, view.zone)
    return verdict.reason


def title(verdict: pb.CheckVerdict, lang: Lang) -> str:
    return verdict.title_zh if lang == "zh" else verdict.title_en


def remedies(verdict: pb.CheckVerdict, view: View) -> list[str]:
    """The policy's remedy, then where to do it on this OS (when the agent knows)."""
    words = view.words
    policy = verdict.remediation_zh if view.lang == "zh" else verdict.remediation_en
    lines = [words.labelled(words.what_to_do, policy)] if policy else []
    steps = steps_for(verdict.check_id, view.os_name)
    if steps is not None:
        lines.append(words.labelled(words.on_this_computer, steps.text(view.lang)))
    return lines


def render_status(verdicts: list[pb.CheckVerdict], heading: str, view: View) -> str:
    lines = [heading, ""]
    for v in verdicts:
        lines.append(f"{v.clause}  {title(v, view.lang)}")
        lines.append("       " + view.words.labelled(state_text(v, view), reason_text(v, view)))
        if v.state != "PASS":
            lines += [f"       {line}" for line in remedies(v, view)]
        lines.append("")
    failing = sum(1 for v in verdicts if v.state == "FAIL")
    unknown = sum(1 for v in verdicts if v.state in ("UNKNOWN", "STALE"))
    if failing:
        lines.append(view.words.failing(failing))
    if unknown:
        lines.append(view.words.unknown(unknown))
    if not failing and not unknown:
        lines.append(view.words.all_in_order)
    return "\n".join(lines) + "\n"


def exit_code(verdicts: list[pb.CheckVerdict], judged: bool) -> int:
    """EXIT_FAILING when any check fails (within its grace too); else EXIT_NOT_JUDGED when
    one cannot be told or the collector has not judged this computer yet; else 0."""
    if any(v.state == "FAIL" for v in verdicts):
        return EXIT_FAILING
    if not judged or any(v.state in ("UNKNOWN", "STALE") for v in verdicts):
        return EXIT_NOT_JUDGED
    return EXIT_COMPLIANT


def collector_heading(ack: pb.ReportAck, view: View) -> str:
    """The heading, with the zone every time below is in (the company's, which need not be
    this computer's: an employee abroad reads Beijing time, and is told so), in the brackets
    of the reader's language: "…判定）（UTC+08:00）", not "…判定） (UTC+08:00)"."""
    return view.words.judged_at(view.moment(ack.stored_at)) + view.words.bracketed(zone_label(view))


def zone_label(view: View) -> str:
    """ "UTC+08:00": the company's offset at the moment the status is read."""
    return offset_label(view.now, view.zone)


def render_delivery(stats: pb.DeliveryStats, view: View) -> str:
    """A line or two on what is waiting to reach the collector, and what a full outbox cost.
    Empty when everything has been delivered and nothing was ever lost."""
    lines = []
    if stats.pending_reports and stats.HasField("oldest_pending_at"):
        oldest = view.moment(stats.oldest_pending_at)
        lines.append(view.words.waiting(stats.pending_reports, oldest))
    elif stats.pending_reports:  # none has a believable time (a clock reset at boot): no "?"
        lines.append(view.words.waiting_undated(stats.pending_reports))
    if stats.dropped_total:
        lines.append(view.words.dropped(stats.dropped_total))
    return "\n".join(lines) + ("\n" if lines else "")
