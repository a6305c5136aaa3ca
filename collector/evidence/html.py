"""The printable audit report (Chinese and English), made only from the bundle's own members.

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

from devposture.collector.evidence.chain import ADMIN, DEVICE, REPORT, STATE, WAIVER, Entry

# 1: the first report; 2: the verification hint names `--after`. Bundles without the field
# were drawn by layout 1.
LAYOUT = 2

_CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       font-size: 10pt; margin: 2em; color: #111; }
h1 { font-size: 16pt; } h2 { font-size: 13pt; margin-top: 1.6em; border-bottom: 1px solid #999; }
h3 { font-size: 11pt; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1em; }
th, td { border: 1px solid #bbb; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #eee; }
.FAIL { color: #a00; font-weight: bold; } .PASS { color: #060; } .UNKNOWN { color: #850; }
.meta td:first-child { width: 14em; font-weight: bold; }
.mono { font-family: monospace; font-size: 8.5pt; word-break: break-all; }
@media print { body { margin: 0; } h2 { page-break-after: avoid; }
               tr { page-break-inside: avoid; } }
"""


def when(micros: object) -> str:
    if not isinstance(micros, int):
        return ""
    moment = dt.datetime.fromtimestamp(micros / 1_000_000, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """`rows` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if body else "<p>— none 无 —</p>"


def _state(state: object, reason: object = None) -> str:
    text = f'<span class="{_e(state)}">{_e(state)}</span>'
    return text + (f": {_e(reason)}" if reason else "")


def _head(header: Mapping[str, Any]) -> list[str]:
    period, chain = header["period"], header["chain"]
    out = [
        "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>审计证据 Audit evidence {_e(period['from'])} – {_e(period['to'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>员工微信管理办法 合规审计证据<br>Audit evidence: WeChat management measures</h1>",
        '<table class="meta">',
    ]  # fmt: skip
    meta = [
        ("期间 Period", f"{period['from']} – {period['to']}"),
        ("生成时间 Generated", header["generated_at"]),
        ("采集服务器 Collector", f"{header['collector']['hostname']}"
                                f" (CA {header['collector']['ca_fingerprint']})"),
        ("签名公钥 Signing key", header["signing_key"]),
        ("证据链 Chain entries", f"{chain['first_seq']} – {chain['last_seq']}"),
        ("期末哈希 Last hash", chain["last_hash"]),
        ("记录数 Records", ", ".join(f"{k} {v}" for k, v in sorted(header["counts"].items()))),
    ]  # fmt: skip
    out += [f"<tr><td>{_e(k)}</td><td class=mono>{_e(v)}</td></tr>" for k, v in meta]
    out.append("</table>")
    out.append(
        "<p>核验方法：<code>devposture-collector audit verify BUNDLE --public-key KEY.pem</code>"
        "（无需数据库）。To check this evidence, run the command above on any machine, with the"
        " collector's public key; it says whether any record was changed, removed or moved.</p>"
    )
    out.append(
        "<p>与上一份证据对照：<code>audit verify BUNDLE --after PREVIOUS_BUNDLE --public-key"
        " KEY.pem</code>，证明两次导出之间历史未被改写。With the bundle received before this"
        " one, <code>--after</code> proves that history was not rewritten between the two"
        " exports.</p>"
    )

    return out


def render(
    header: Mapping[str, Any], context: Mapping[str, Any], opening: list[Entry],
    entries: list[Entry],
) -> bytes:  # fmt: skip
    records = [(e, e.record()) for e in entries]
    hostnames: Mapping[str, str] = context.get("devices", {})
    checks: list[Mapping[str, str]] = context.get("checks", [])
    clauses = {c["clause_id"]: c for c in context.get("clauses", [])}

    def device(device_id: object) -> str:
        name = hostnames.get(str(device_id), "")
        return f"{_e(name)}<br><span class=mono>{_e(device_id)}</span>"

    out = _head(header)

    opening_states: dict[tuple[str, str], Mapping[str, Any]] = {}
    for entry in opening:
        if entry.kind == STATE:
            r = entry.record()
            opening_states[(str(r["device_id"]), str(r["check_id"]))] = r
    changes: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for entry, r in records:
        if entry.kind == STATE:
            changes.setdefault((str(r["device_id"]), str(r["check_id"])), []).append(r)
    device_ids = sorted({d for d, _ in opening_states} | {d for d, _ in changes},
                        key=lambda d: (hostnames.get(d, ""), d))  # fmt: skip

    out.append("<h2>各条款设备状态 Device states per clause and check</h2>")
    failing: list[list[str]] = []
    for check in checks:
        check_id = check["check_id"]
        clause = clauses.get(check["clause"], {})
        out.append(
            f"<h3>{_e(check['clause'])} {_e(clause.get('title_zh', ''))} —"
            f" {_e(check.get('title_zh', ''))} / {_e(check.get('title_en', ''))}"
            f" (<code>{_e(check_id)}</code>)</h3>"
        )
        rows = []
        for device_id in device_ids:
            start = opening_states.get((device_id, check_id))
            during = changes.get((device_id, check_id), [])
            if start is None and not during:
                continue
            last = during[-1] if during else start
            assert last is not None
            rows.append([
                device(device_id),
                _state(start["state"]) if start else "—",
                "<br>".join(f"{_e(when(c['since_us']))} → {_state(c['state'], c['reason'])}"
                            for c in during) or "—",
                _state(last["state"]),
            ])  # fmt: skip
            fails = [c for c in ([start] if start else []) + during if c["state"] == "FAIL"]
            if fails:
                failing.append([device(device_id), f"{_e(check['clause'])} {_e(check_id)}",
                                _e(when(fails[0]["since_us"])), _e(fails[-1]["reason"]),
                                _state(last["state"])])  # fmt: skip
        out.append(_table(["设备 Device", "期初 At start", "期间变化 Changes in the period",
                           "期末 At end"], rows))  # fmt: skip

    out.append("<h2>不合规设备 Devices failing during the period</h2>")
    out.append(_table(["设备 Device", "检查 Check", "失败起始 Failing since",
                       "原因 Reason", "期末 At end"], failing))  # fmt: skip

    waiver_rows = [
        [_e(when(r["at_us"])) + (" (期初 before the period)" if e in opening else ""),
         _e(r["waiver_id"]), _e(r["action"]), device(r["device_id"]), _e(r["check_id"]),
         _e(r["owner"]), _e(r["reason"]), _e(when(r["expires_us"])), _e(r["detail"])]
        for e, r in [(o, o.record()) for o in opening if o.kind == WAIVER]
        + [(e, r) for e, r in records if e.kind == WAIVER]
    ]  # fmt: skip
    out.append("<h2>豁免 Waivers</h2>")
    out.append(_table(["时间 At", "豁免 Waiver", "操作 Action", "设备 Device", "检查 Check",
                       "负责人 Owner", "理由 Reason", "到期 Expires", "详情 Detail"],
                      waiver_rows))  # fmt: skip

    out.append("<h2>设备身份变更 Device identity events</h2>")
    out.append(_table(["时间 At", "设备 Device", "操作 Action", "详情 Detail"], [
        [_e(when(r["at_us"])), device(r["device_id"]), _e(r["action"]), _e(r["detail"])]
        for e, r in records if e.kind == DEVICE
    ]))  # fmt: skip

    out.append("<h2>管理操作 Admin actions</h2>")
    out.append(_table(["时间 At", "操作者 Actor", "角色 Role", "命令 Command", "参数 Arguments",
                       "结果 Outcome", "说明 Message", "来源 Peer"], [
        [_e(when(r["at_us"])), _e(r["actor"]) + (f" ({_e(r['credential_id'])})"
                                                  if r["credential_id"] else ""),
         _e(r["role"]), _e(r["command"]), f"<span class=mono>{_e(r['arguments'])}</span>",
         _e(r["outcome"]), _e(r["message"]), _e(r["peer"])]
        for e, r in records if e.kind == ADMIN
    ]))  # fmt: skip

    per_device: dict[str, list[int]] = {}
    for e, r in records:
        if e.kind == REPORT:
            per_device.setdefault(str(r["device_id"]), []).append(int(str(r["received_us"])))
    out.append("<h2>收到的报告 Reports received</h2>")
    out.append(_table(["设备 Device", "报告数 Reports", "首份 First", "末份 Last"], [
        [device(d), str(len(times)), _e(when(min(times))), _e(when(max(times)))]
        for d, times in sorted(per_device.items(), key=lambda i: (hostnames.get(i[0], ""), i[0]))
    ]))  # fmt: skip
    out.append("</body></html>\n")
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
