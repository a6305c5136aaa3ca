"""The dashboard's own words in Chinese and English. Clause and check titles come from the
policy, which has both.

Templates read them as `t.key` and `t[key]`. They get a `Words`, never a dict: Jinja looks an
attribute up before an item, so on a dict `t.clear` was the dict's `clear` method and the page
showed `<built-in method clear of dict object at 0x…>` (issue 19). A `Words` has no attribute
but its words; a missing one fails the page (StrictUndefined), it never prints a repr.
"""

from __future__ import annotations

from collections.abc import Iterator

LANGS = ("zh", "en")
DEFAULT_LANG = "en"

_WORDS: dict[str, tuple[str, str]] = {
    # key: (中文, English)
    "app": ("设备合规看板", "Device compliance dashboard"),
    "overview": ("总览", "Overview"),
    "devices": ("设备", "Devices"),
    "failing": ("失败最久", "Failing longest"),
    "logout": ("退出", "Log out"),
    "login": ("登录", "Log in"),
    "login_title": ("登录设备合规看板", "Log in to the compliance dashboard"),
    "credential": ("管理凭据", "Admin credential"),
    "credential_help": (
        "粘贴 `devposture-collector admin add` 打印的凭据(dpa_…)。"
        "查看者角色即可(审计日志需审计员角色)。",
        "Paste the credential printed by `devposture-collector admin add` (dpa_…)."
        " The viewer role suffices (the audit log needs the auditor role).",
    ),
    "login_failed": (
        "凭据无效或已被吊销。请向采集器管理员索取新凭据。",
        "That credential is not valid or was revoked. Ask the collector's administrator"
        " for a new one.",
    ),
    "login_busy": (
        "来自您地址的登录尝试过多。请在 {seconds} 秒后再试,一次一个。",
        "Too many login attempts from your address at once. Try again in {seconds} s,"
        " one at a time.",
    ),
    "signed_in_as": ("当前用户", "Signed in as"),
    "clause": ("条款", "Clause"),
    "check": ("检查项", "Check"),
    "devices_n": ("设备数", "Devices"),
    "pass_rate": ("通过率", "Pass rate"),
    "trend": ("近 8 周通过率", "Pass rate over the last 8 weeks"),
    "trend_note": (
        "每个点为该周结束时的全体设备状态(当前周为现在);每 10 分钟重新计算。"
        "缺少的点表示该周结束时尚无记录:采集器启动时会根据历史补算。",
        "Each point is the fleet as it stood at the end of that week (this week: now);"
        " recomputed every 10 minutes. A missing point is a week whose end was not recorded"
        " yet: the collector counts it from the history when it starts.",
    ),
    "whole_fleet": ("全部设备", "whole fleet"),
    "trend_whole_fleet": ("趋势图统计的是全部设备,不分组。", "The trend is the whole fleet's."),
    "as_of": ("统计时间", "As of"),
    "no_devices": (
        "尚无设备注册。用 `devposture-collector token create` 创建令牌。",
        "No devices enrolled yet. Create a token with `devposture-collector token create`.",
    ),
    "search": ("搜索", "Search"),
    "search_hint": ("设备 ID 前缀或主机名", "device id prefix or hostname"),
    "filter": ("筛选", "Filter"),
    "any": ("全部", "any"),
    "state": ("状态", "State"),
    "os": ("操作系统", "OS"),
    "stale_only": ("仅失联设备", "Stale devices only"),
    "group": ("分组", "Group"),
    "apply": ("应用", "Apply"),
    "clear": ("清除", "Clear"),
    "device": ("设备", "Device"),
    "hostname": ("主机名", "Hostname"),
    "last_report": ("最近报告", "Last report"),
    "enrolled": ("注册时间", "Enrolled"),
    "status": ("设备状态", "Device status"),
    "matching": ("台设备符合条件", "matching devices"),
    "failures": ("项检查超过宽限期仍未通过", "failures past their grace period"),
    "page": ("页", "Page"),
    "prev": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "none_found": ("没有符合条件的设备。", "No device matches."),
    "since": ("起始时间", "Since"),
    "reason": ("原因", "Reason"),
    "evidence": ("证据", "Evidence"),
    "verdict": ("最近报告的判定", "Latest report's verdict"),
    "remediation": ("整改办法", "Remediation"),
    "waivers": ("豁免", "Waivers"),
    "no_waivers": ("无豁免。", "No waivers."),
    "owner": ("负责人", "Owner"),
    "expires": ("到期", "Expires"),
    "revoked": ("已撤销", "revoked"),
    "active": ("生效中", "active"),
    "ended": ("已结束", "ended"),
    "timeline": ("状态时间线", "State timeline"),
    "from": ("从", "From"),
    "until": ("至", "Until"),
    "hours": ("小时", "Hours"),
    "now": ("现在", "now"),
    "reports": ("收到的报告", "Reports received"),
    "reports_shown": ("显示最近 {shown} 份,共 {total} 份", "latest {shown} of {total}"),
    "received": ("接收时间", "Received"),
    "collected": ("采集时间", "Collected"),
    "report_id": ("报告 ID", "Report id"),
    "agent_version": ("代理版本", "Agent version"),
    "wifi_sessions": ("该报告中的 Wi-Fi 会话", "Wi-Fi sessions in that report"),
    "network": ("网络", "Network"),
    "classification": ("分类", "Class"),
    "started": ("开始", "Started"),
    "vpn": ("VPN", "VPN"),
    "vpn_none": ("无", "none"),
    "failing_since": ("失败起始", "Failing since"),
    "days": ("天数", "Days"),
    "no_failing": ("没有超出宽限期仍失败的设备。", "No device is failing past its grace period."),
    "not_found": ("未找到", "Not found"),
    "device_not_found": ("没有此设备。", "There is no such device."),
    "policy_error": (
        "策略文件有错误,看板无法判定设备。请先修正策略。",
        "The policy file has mistakes, so devices cannot be judged. Fix the policy first.",
    ),
    "forbidden": ("请求被拒绝。", "The request was refused."),
    "details": ("详情", "details"),
    # The overview's headline figures.
    "compliant_devices": ("完全合规的设备", "Devices fully compliant"),
    "compliant_hint": ("各检查项均通过或已豁免", "every check passing or waived"),
    "needing_action": ("需要处理的设备", "Devices needing action"),
    "needing_action_hint": ("有检查项超过宽限期仍未通过", "failing a check past its grace period"),
    "stale_devices": ("失联设备", "Stale devices"),
    "stale_hint": ("超过 {hours} 小时没有报告", "no report for over {hours} h"),
    "waivers_in_force": ("生效中的豁免", "Waivers in force"),
    "waivers_hint": ("按设备和检查项计", "counted per device and check"),
    "of_devices": ("共 {total} 台设备", "of {total} devices"),
    "compliant": ("完全合规", "fully compliant"),
    # The trend.
    "trend_values": ("查看各周数值", "Show the values"),
    "week_ending": ("截至", "Week ending"),
    "now_value": ("当前", "Now"),
    # Sorting and the failing-longest filters.
    "sort_hint": (
        "点击列标题排序,再点一次倒序。", "Click a column's title to sort by it; again to reverse."
    ),
    "sorted_by": ("排序", "Sorted by"),
    "min_days": ("至少失败(天)", "Failing at least (days)"),
    "whole_clause": ("整条条款", "whole clause"),
    # Waivers, tokens and the audit log.
    "waivers_title": ("豁免", "Waivers"),
    "waiver": ("豁免编号", "Waiver"),
    "created": ("创建时间", "Created"),
    "in_force_title": ("生效中", "In force"),
    "ended_title": ("已到期或已撤销", "Expired or revoked"),
    "ended_shown": (
        "显示最近 {shown} 条,共 {total} 条(下载可得全部)",
        "latest {shown} of {total} (the download has all)",
    ),
    "no_waivers_in_force": ("当前没有生效中的豁免。", "No waiver is in force."),
    "no_waivers_ended": ("没有已到期或已撤销的豁免。", "No waiver has expired or been revoked."),
    "waiver_state": ("状态", "State"),
    "waiver_active": ("生效中", "in force"),
    "waiver_expired": ("已到期", "expired"),
    "waiver_revoked": ("已撤销", "revoked"),
    "waiver_pending": ("尚未生效", "not yet in force"),
    "tokens": ("注册令牌", "Enrollment tokens"),
    "tokens_nav": ("令牌", "Tokens"),
    "token": ("令牌 ID", "Token"),
    "token_group": ("设备加入的分组", "Group its devices join"),
    "enrolled_devices": ("已注册设备", "Devices enrolled"),
    "uses_left": ("剩余次数", "Uses left"),
    "tokens_note": (
        "这里不显示令牌的密钥:密钥只在创建时打印一次,采集器只保存其散列值。",
        "No token's secret is shown: it is printed once, when the token is created, and the"
        " collector keeps only its hash.",
    ),
    "no_tokens": ("还没有注册令牌。", "No enrollment token yet."),
    "token_usable": ("可用", "usable"),
    "token_used_up": ("已用完", "used up"),
    "token_expired": ("已过期", "expired"),
    "token_revoked": ("已撤销", "revoked"),
    "audit": ("审计日志", "Audit log"),
    "audit_note": (
        "每条管理命令(本机或远程)和每次看板登录:谁、何时、做了什么、从哪里、结果如何。最新的在前。",
        "Every admin command, local or remote, and every dashboard login: who did what, when,"
        " from where, and the outcome. The newest first.",
    ),
    "audit_forbidden": (
        "审计日志只有审计员和管理员角色可以查看。",
        "The audit log is for the auditor and admin roles only.",
    ),
    "entries": ("条记录", "entries"),
    "at": ("时间", "When"),
    "actor": ("操作者", "Who"),
    "role": ("角色", "Role"),
    "command": ("命令", "Command"),
    "arguments": ("参数", "Arguments"),
    "outcome": ("结果", "Outcome"),
    "message": ("说明", "Message"),
    "peer": ("来源", "From"),
    "outcome_ok": ("成功", "ok"),
    "outcome_denied": ("被拒绝", "denied"),
    "outcome_error": ("出错", "error"),
    "role_viewer": ("查看者", "viewer"),
    "role_auditor": ("审计员", "auditor"),
    "role_admin": ("管理员", "admin"),
    "no_entries": ("审计日志为空。", "The audit log is empty."),
    # A device's page.
    "device_status_active": ("在用", "active"),
    "device_status_revoked": ("已吊销", "revoked"),
    "device_status_retired": ("已退役", "retired"),
    "report_collected": ("报告采集于", "report collected"),
    "net_PUBLIC": ("公共", "PUBLIC"),
    "net_TRUSTED": ("可信", "TRUSTED"),
    "net_OTHER": ("其他", "OTHER"),
    "net_UNKNOWN": ("未知", "UNKNOWN"),
    "net_UNSPECIFIED": ("未说明", "UNSPECIFIED"),
}

STATE_WORDS: dict[str, tuple[str, str]] = {
    "PASS": ("通过", "PASS"),
    "GRACE": ("宽限期", "GRACE"),
    "FAIL": ("失败", "FAIL"),
    "UNKNOWN": ("未知", "UNKNOWN"),
    "EXEMPT": ("豁免", "EXEMPT"),
    "STALE": ("失联", "STALE"),
}


def pick_lang(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the `?lang=` switch, else the remembered choice, else the
    browser's first preference, else English."""
    for candidate in (query, cookie):
        if candidate in LANGS:
            return candidate
    if accept_language and accept_language.strip().lower().startswith("zh"):
        return "zh"
    return DEFAULT_LANG


class Words:
    """One language's words, by attribute or by item; nothing else is reachable from it."""

    __slots__ = ("_table",)
    _table: dict[str, str]

    def __init__(self, table: dict[str, str]) -> None:
        object.__setattr__(self, "_table", table)

    def __getattr__(self, key: str) -> str:
        try:
            return self._table[key]
        except KeyError:
            raise AttributeError(key) from None

    def __getitem__(self, key: str) -> str:
        return self._table[key]

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)


def words(lang: str) -> Words:
    index = 0 if lang == "zh" else 1
    table = {key: pair[index] for key, pair in _WORDS.items()}
    table |= {f"state_{key}": pair[index] for key, pair in STATE_WORDS.items()}
    return Words(table)
