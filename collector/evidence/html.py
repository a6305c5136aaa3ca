"""The printable audit report (Chinese and English), made only from the bundle's own members.

Drawn from a `Summary` (`summary.py`) that the exporter and the verifier fold the records into
as they stream them: the report stays a few pages whatever the fleet and the period.
Deterministic: the same manifest header, context and entries give the same bytes, so the
verifier renders it again and tells whether the report.html in a bundle is the one its
records say. Plain HTML and CSS, every value escaped.

The manifest names the layout that drew the report (`LAYOUT`). A verifier redraws only a
report of its own layout: a later devposture whose layout changed still verifies an older
bundle (its report.html is covered by the signature), and says it could not redraw it. Any
change to the output must therefore come with a new LAYOUT (a test holds the digest of a
fixed report to it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from devposture.collector.evidence.summary import Summary

# 1: the first report; 2: the verification hint names `--after`; 3: summaries that stay
# readable for a fleet and a quarter (weekly compliance per clause and group, failures past
# grace, waivers in force, counts), in the company's time zone. Bundles without the field were
# drawn by layout 1. 4: each reason in words, Chinese and English, as the exporter worded it
# (the context's `reason_words`: a verifier redraws them from the bundle, whatever its own
# catalogs say). 5: the time of the export in the company's time zone (it was UTC alone), and
# the device events and admin outcomes named in Chinese and English (they were the records'
# English words). 6: a device that left the fleet (revoked or retired) at a week's very end
# counts in that week's figures no more, as `standing_rule.in_fleet` decides, and neither does
# one that left by then whose chain entry came after the week's end (`summary.LEAVING_LAYOUT`).
LAYOUT = 6
# The layouts this version draws, so that it redraws (and so verifies) an older bundle's too.
DRAWS = (4, 5, 6)
# What a device event and an admin command's outcome are called (layout 5 on); another shows
# as the record has it.
EVENT_WORDS = {
    "enrolled": "注册 enrolled", "renewed": "证书续期 renewed",
    "reestablished": "身份重建 reestablished", "group": "分组变更 group",
    "clone suspected": "疑似克隆 clone suspected", "revoked": "吊销 revoked",
    "retired": "停用 retired",
}  # fmt: skip
OUTCOME_WORDS = {"ok": "成功 ok", "denied": "拒绝 denied", "error": "出错 error"}
LISTED = 500  # rows a list shows before saying how many more the members hold

_CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       font-size: 10pt; margin: 2em; color: #111; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; margin-top: 1.6em; border-bottom: 1px solid #999; }
h3 { font-size: 11pt; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #eee; }
.FAIL { color: #a00; font-weight: bold; } .PASS { color: #060; } .UNKNOWN { color: #850; }
.STALE { color: #850; } .GRACE { color: #a60; } .EXEMPT { color: #555; }
.meta td:first-child { width: 14em; font-weight: bold; }
.mono { font-family: monospace; font-size: 8.5pt; word-break: break-all; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; }
               tr { page-break-inside: avoid; } }
"""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """`rows` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if body else "<p>— none 无 —</p>"


def _listed(rows: list[list[str]], member: str) -> list[list[str]]:
    """At most LISTED rows, and a last one saying how many more the member holds."""
    if len(rows) <= LISTED:
        return rows
    more = len(rows) - LISTED
    return [*rows[:LISTED], [f"… 另有 {more:,} 项 and {more:,} more: see <code>{member}</code>"]]


def _state(state: object, reason: object = None) -> str:
    text = f'<span class="{_e(state)}">{_e(state)}</span>'
    return text + (f": {_e(reason)}" if reason else "")


def _duration(micros: int) -> str:
    days, rest = divmod(micros // 3_600_000_000, 24)
    return f"{days} 天 d {rest} 小时 h" if days else f"{rest} 小时 h"


def _share(part: int, whole: int) -> str:
    """A share rounded down: 1,999 of 2,000 is 99.9 %, never 100.0 %."""
    if not whole:
        return "—"
    tenths = 1000 * part // whole
    return f"{tenths // 10}.{tenths % 10}%<br><small>{part:,}/{whole:,}</small>"


class _Drawing:
    """The report's sections, drawn from a finished summary and the bundle's context."""

    def __init__(self, header: Mapping[str, Any], context: Mapping[str, Any],
                 summary: Summary, layout: int = LAYOUT) -> None:  # fmt: skip
        self.header, self.summary, self.zone = header, summary, summary.zone
        self.layout = layout
        self.hostnames: Mapping[str, str] = context.get("devices", {})
        self.checks: list[Mapping[str, Any]] = list(context.get("checks", []))
        self.clauses: list[Mapping[str, Any]] = list(context.get("clauses", []))
        self.reason_words: Mapping[str, Any] = context.get("reason_words", {})
        self.check_of = {str(c["check_id"]): c for c in self.checks}

    def when(self, micros: object) -> str:
        if not isinstance(micros, int):
            return ""
        return f"{self.zone.moment(micros):%Y-%m-%d %H:%M}"

    def generated(self) -> str:
        """When the bundle was made: in the company's time zone, the manifest's UTC beside it
        (as the period is shown); layout 4 showed the UTC alone."""
        raw = str(self.header["generated_at"])
        try:
            at = dt.datetime.fromisoformat(raw)
        except ValueError:  # not a time: shown as the manifest has it
            return raw
        if self.layout < 5 or at.tzinfo is None:
            return raw
        return f"{at.astimezone(self.zone.tzinfo):%Y-%m-%d %H:%M} ({raw})"

    def word(self, words: Mapping[str, str], value: str) -> str:
        """An event's or outcome's name in both languages (layout 5 on)."""
        return words.get(value, value) if self.layout >= 5 else value

    def day(self, micros: int) -> str:
        return f"{self.zone.moment(micros):%m-%d}"

    def device(self, device_id: str) -> str:
        name = self.hostnames.get(device_id, "")
        group = self.summary.groups.get(device_id, "")
        return (f"{_e(name)}{f' ({_e(group)})' if group else ''}<br>"
                f"<span class=mono>{_e(device_id)}</span>")  # fmt: skip

    def head(self) -> list[str]:
        period, chain = self.header["period"], self.header["chain"]
        start, end = self.when(period.get("from_us")), self.when(period.get("to_us"))
        tz = f"{self.zone.name} {self.zone.label()}"
        out = [
            "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
            f"<title>审计证据 Audit evidence {_e(start)} – {_e(end)}</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>员工微信管理办法 合规审计证据<br>Audit evidence: WeChat management measures</h1>",
            '<table class="meta">',
        ]  # fmt: skip
        meta = [
            ("期间 Period", f"{start} – {end} ({tz}; {period['from']} – {period['to']})"),
            ("生成时间 Generated", self.generated()),
            ("采集服务器 Collector", f"{self.header['collector']['hostname']}"
                                    f" (CA {self.header['collector']['ca_fingerprint']})"),
            ("签名公钥 Signing key", self.header["signing_key"]),
            ("证据链 Chain entries", f"{chain['first_seq']} – {chain['last_seq']}"),
            ("期末哈希 Last hash", chain["last_hash"]),
            ("记录数 Records", ", ".join(f"{k} {v:,}" for k, v in
                                         sorted(self.header["counts"].items()))),
        ]  # fmt: skip
        out += [f"<tr><td>{_e(k)}</td><td class=mono>{_e(v)}</td></tr>" for k, v in meta]
        out.append("</table>")
        out += self.pruned()
        out.append(
            "<p>核验方法：<code>devposture-collector audit verify BUNDLE --public-key"
            " KEY.pem</code>（无需数据库）。To check this evidence, run the command above on any"
            " machine, with the collector's public key; it says whether any record was changed,"
            " removed or moved.</p>"
        )
        out.append(
            "<p>与上一份证据对照：<code>audit verify BUNDLE --after PREVIOUS_BUNDLE --public-key"
            " KEY.pem</code>，证明两次导出之间历史未被改写。With the bundle received before this"
            " one, <code>--after</code> proves that history was not rewritten between the two"
            " exports.</p>"
        )
        out.append(
            f"<p>时间均为 {_e(tz)}。本报告为摘要，逐条记录见 <code>chain.jsonl</code>、"
            "<code>reports.jsonl</code>。Times are in the company's time zone. This report"
            " summarises; every record is in the bundle's machine-readable members.</p>"
        )
        return out

    def pruned(self) -> list[str]:
        """What the retention policy deleted of the period, said plainly (format 3)."""
        claim = self.header.get("pruned") or {}
        prunes = claim.get("prunes") or []
        if not prunes and not claim.get("bodies"):
            return []
        last = prunes[-1] if prunes else {}
        bodies, times = int(claim.get("bodies", 0)), len(prunes)
        days = _e(last.get("retention_days"))
        on, before = _e(self.when(last.get("at_us"))), _e(self.when(last.get("before_us")))
        return [
            f"<p class=FAIL>保留期删除：本期 {bodies:,} 份报告的正文已按保留策略（保留 {days} 天）"
            f"删除，共删除 {times:,} 次，最后一次于 {on}，删除了 {before} 之前收到的报告正文。"
            f"Pruned under the retention policy: the bodies of {bodies:,} of this period's"
            f" reports were deleted ({times:,} prunings, the last on {on}, of everything"
            f" received before {before}; {days} days kept). Their chain entries, with each"
            " body's SHA-256, remain and verify; the facts they held are no longer in the"
            " bundle.</p>"
        ]

    def weekly(self) -> list[str]:
        weeks = self.summary.weeks
        groups = sorted({g for w in weeks for g in w.assessed})
        out = ["<h2>每周合规率 Devices compliant at the end of each week</h2>",
               "<p>合规：该条款的每项检查均为通过（PASS）或已豁免（EXEMPT）；超过静默期未报告的设备"
               "计为不合规。Compliant: every check of the clause PASS or EXEMPT at the week's end"
               " (a device silent past the policy's window counts as not compliant), among the"
               " devices heard from by then and not revoked or retired.</p>"]  # fmt: skip
        columns = ["分组 Group"] + [f"{self.day(w.start_us)} – {self.day(w.end_us - 1)}"
                                    for w in weeks]  # fmt: skip
        for clause in self.clauses:
            clause_id = str(clause["clause_id"])
            if clause_id not in self.summary.clause_checks:
                continue
            names = ", ".join(self.summary.clause_checks[clause_id])
            out.append(f"<h3>{_e(clause_id)} {_e(clause.get('title_zh', ''))} /"
                       f" {_e(clause.get('title_en', ''))} (<code>{_e(names)}</code>)</h3>")
            rows = [[_e(g) if g else "全部设备 All devices"]
                    + [_share(w.compliant.get((clause_id, g), 0), w.assessed.get(g, 0))
                       for w in weeks] for g in groups]  # fmt: skip
            out.append(_table(columns, rows))
        return out

    def reason(self, stored: str) -> str:
        """A reason as the exporter worded it (the stored code where it did not)."""
        words = self.reason_words.get(stored)
        if not isinstance(words, list) or len(words) != 2:
            return _e(stored)
        return _e(words[0]) if words[0] == words[1] else f"{_e(words[0])}<br>{_e(words[1])}"

    def past_grace(self) -> list[str]:
        rows = []
        for item in self.summary.worst_past_grace():
            check = self.check_of.get(item.check_id, {})
            at_end = self.summary.standing(item.device_id, item.check_id, self.summary.to_us)
            rows.append([
                self.device(item.device_id),
                f"{_e(check.get('clause', ''))} <code>{_e(item.check_id)}</code>",
                _e(_duration(item.past_us)), _e(self.when(item.first_past_us)),
                _e(item.episodes), self.reason(item.reason), _state(at_end),
            ])  # fmt: skip
        return ["<h2>超过宽限期的不合规 Failures past their grace period</h2>",
                "<p>期间内失败且超过该检查宽限期的时长（豁免期间不计）。Time each device failed a"
                " check past the check's grace period within the period (time under a waiver"
                " not counted), longest first.</p>",
                _table(["设备 Device", "检查 Check", "超期时长 Past grace for",
                        "首次超期 First past grace", "次数 Times", "原因 Reason",
                        "期末 At end"], _listed(rows, "chain.jsonl"))]  # fmt: skip

    def waivers(self) -> list[str]:
        rows = [
            [_e(w.waiver_id), self.device(w.device_id), f"<code>{_e(w.check_id)}</code>",
             _e(w.owner), _e(w.reason), _e(self.when(w.created_us)),
             _e(self.when(w.expires_us)), _e(self.when(w.revoked_us))]
            for w in self.summary.waivers_in_period()
        ]  # fmt: skip
        return ["<h2>期间生效的豁免 Waivers in force during the period</h2>",
                _table(["豁免 Waiver", "设备 Device", "检查 Check", "负责人 Owner", "理由 Reason",
                        "生效 From", "到期 Expires", "撤销 Revoked"],
                       _listed(rows, "chain.jsonl"))]  # fmt: skip

    def activity(self) -> list[str]:
        weeks = self.summary.weeks
        rows = [[f"{self.day(w.start_us)} – {self.day(w.end_us - 1)}", f"{w.reports:,}",
                 f"{w.devices_heard:,}", f"{w.stale.get('', 0):,}"] for w in weeks]  # fmt: skip
        events = sorted(self.summary.device_events.items())
        actions = sorted(self.summary.admin_actions.items())
        return [
            "<h2>报告接收 Reports received</h2>",
            _table(["周 Week", "报告数 Reports", "报告设备数 Devices reporting",
                    "周末静默设备 Silent at week's end"], rows),
            "<h2>设备身份变更 Device identity events</h2>",
            _table(["操作 Action", "次数 Count"],
                   [[_e(self.word(EVENT_WORDS, a)), f"{n:,}"] for a, n in events]),
            "<h2>管理操作 Admin actions</h2>",
            _table(["命令 Command", "结果 Outcome", "次数 Count"],
                   [[_e(c), _e(self.word(OUTCOME_WORDS, o)), f"{n:,}"]
                    for (c, o), n in actions]),
        ]  # fmt: skip


def draw(
    header: Mapping[str, Any], context: Mapping[str, Any], summary: Summary,
    layout: int = LAYOUT,
) -> bytes:  # fmt: skip
    """The report of a finished summary (`Summary.finish`), in `layout` (one of `DRAWS`: a
    verifier redraws an older bundle's report in the layout its manifest names)."""
    assert summary.finished and layout in DRAWS
    drawing = _Drawing(header, context, summary, layout)
    out = [*drawing.head(), *drawing.weekly(), *drawing.past_grace(), *drawing.waivers(),
           *drawing.activity(), "</body></html>\n"]  # fmt: skip
    return "\n".join(out).encode("utf-8")


def layout_of(manifest: Mapping[str, Any]) -> int:
    """The layout that drew a bundle's report (1 for bundles from before it was named)."""
    layout = manifest.get("report_layout", 1)
    return layout if isinstance(layout, int) else 0


def header_of(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What of the manifest the report shows: all of it but the member digests (which
    include the report's own)."""
    return {k: v for k, v in manifest.items() if k != "members"}


def load_context(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    assert isinstance(value, dict)
    return value
