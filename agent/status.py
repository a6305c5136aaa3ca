"""What the person at the computer sees: each clause, its state, and what to do about it.

The collector's judgment comes back with every acknowledgement and is kept in the state
folder, so `status` shows it even when the collector cannot be reached. Before the first
judgment, `status` shows a local view instead: the agent collects now and runs the same pure
checks the collector runs (devposture.policy.checks, with the bundled policy's thresholds), and says
plainly that this is not the collector's judgment.
"""

from __future__ import annotations

import datetime as dt

from devposture.policy import default_policy
from devposture.policy.checks import CheckParameters, evaluate
from devposture.v1 import devposture_pb2 as pb

STATE_NAMES = {
    "PASS": "合规 PASS",
    "FAIL": "不合规 FAIL",
    "UNKNOWN": "无法判断 UNKNOWN",
    "EXEMPT": "已豁免 EXEMPT",
    "STALE": "未按时上报 STALE",
}


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
        item.state, item.reason = verdict.state.value, verdict.reason
        item.title_zh, item.title_en = spec.title_zh, spec.title_en
        item.remediation_zh, item.remediation_en = spec.remediation_zh, spec.remediation_en
        out.append(item)
    return out


def render_status(verdicts: list[pb.CheckVerdict], heading: str) -> str:
    lines = [heading, ""]
    for v in verdicts:
        lines.append(f"{v.clause}  {v.title_zh} / {v.title_en}")
        lines.append(f"       {STATE_NAMES.get(v.state, v.state)}: {v.reason}")
        if v.state != "PASS":
            lines.append(f"       怎么办: {v.remediation_zh}")
            lines.append(f"       What to do: {v.remediation_en}")
        lines.append("")
    failing = sum(1 for v in verdicts if v.state not in ("PASS", "EXEMPT"))
    if failing:
        lines.append(f"需要处理 {failing} 项 / {failing} item(s) need your attention.")
    else:
        lines.append("全部合规 / Everything is in order.")
    return "\n".join(lines) + "\n"


def collector_heading(ack: pb.ReportAck) -> str:
    when = ack.stored_at.ToDatetime(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"本机合规状态(公司服务器于 {when} 判定)\n"
        f"Compliance of this computer, as the company's collector judged it at {when}"
    )


LOCAL_HEADING = (
    "本机合规状态(本地检查,尚未经公司服务器判定)\n"
    "Compliance of this computer: a local check, not yet judged by the company's collector"
)


def render_delivery(stats: pb.DeliveryStats) -> str:
    """A line or two on what is waiting to reach the collector, and what a full outbox cost.
    Empty when everything has been delivered and nothing was ever lost."""
    lines = []
    if stats.pending_reports:
        zh = en = ""
        if stats.HasField("oldest_pending_at"):
            oldest = stats.oldest_pending_at.ToDatetime(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            zh, en = f"(最早 {oldest})", f" (the oldest from {oldest})"
        lines.append(
            f"{stats.pending_reports} 份报告等待发送{zh},连接公司网络后会自动发送。\n"
            f"{stats.pending_reports} report(s) waiting to be sent{en}; they go by themselves"
            " once the company's collector can be reached."
        )
    if stats.dropped_total:
        lines.append(
            f"离线期间存储已满,{stats.dropped_total} 份报告未能保留。\n"
            f"{stats.dropped_total} report(s) could not be kept while offline (the outbox was"
            " full); IT can see this."
        )
    return "\n".join(lines) + ("\n" if lines else "")
