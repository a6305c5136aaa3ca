"""A digest's words, Chinese first then English, in the company's time zone (Beijing time by
default): a heading with the counts,
then the items by status (new, reminders, resolved), each one line, cut to fit a channel's
limit with "… 还有 N 项 / … and N more".

Lines name devices by hostname and checks by title; nothing else an agent reported.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.alerts import detect, local_time
from devposture.collector.alerts.digest import NEW, REMINDER, RESOLVED
from devposture.collector.store.alerts import Delivery, Detail
from devposture.policy.time_zone import DEFAULT_TIME_ZONE

SECTIONS = {
    NEW: ("新增", "New"),
    REMINDER: ("仍未解决（再次提醒）", "Still open (reminder)"),
    RESOLVED: ("已恢复", "Resolved"),
}


# Each kind's line (Chinese, English); `{t}` is its time, `{which}` the certificate's role.
LINES = {
    detect.FAILING: ("{hostname} · {check_title_zh}：超过宽限期仍不合规，自 {t} 起",
                     "{hostname} · {check_title_en}: failing past grace since {t}"),
    detect.STALE: ("{hostname}：失联（STALE），最后报告于 {t}",
                   "{hostname}: STALE, last heard {t}"),
    detect.CLONE: ("{hostname}：疑似克隆（其状态文件夹在另一台电脑上运行），{t} 发现",
                   "{hostname}: suspected clone (its state folder runs on a second computer),"
                   " flagged {t}"),
    detect.CERTIFICATE: ("采集器 {collector}：{which}将于 {t} 到期",
                         "collector {collector}: the {which} certificate expires {t}"),
    detect.DISK: ("采集器 {collector}：数据目录所在磁盘已用 {used_percent}%",
                  "collector {collector}: the disk holding the data folder is"
                  " {used_percent}% full"),
}  # fmt: skip
CERTIFICATES = {"server": ("服务器证书", "server"), "ca": ("CA 证书", "CA")}
MOMENTS = (local_time.in_chinese, local_time.in_english)


def line(d: Detail, lang: int, now: dt.datetime, zone: str = DEFAULT_TIME_ZONE) -> str:
    """An item's line in Chinese (`lang` 0) or English (1), its time in `zone`."""
    when = d.get("since", d.get("expires_at"))
    t = MOMENTS[lang](dt.datetime.fromisoformat(str(when)), now, zone) if when else ""
    which = CERTIFICATES.get(str(d.get("certificate", "")), ("", ""))[lang]
    return LINES[str(d["kind"])][lang].format(**d, t=t, which=which)


def counts(d: Delivery) -> dict[str, int]:
    """Items told per status, and open in all (the newest digest's count)."""
    told = {s: sum(1 for i in d.items if i["status"] == s) for s in (NEW, REMINDER, RESOLVED)}
    return told | {"open": d.open_items, "more": d.more}


def _reminders(count: int) -> str:
    """ "1 reminder", "2 reminders" (Chinese counts with 项, singular and plural alike)."""
    return "reminder" if count == 1 else "reminders"


def _one(
    d: Delivery, shown: int, now: dt.datetime, lang: int, *, bold: bool, zone: str
) -> list[str]:
    """One language's lines (0 Chinese, 1 English) with the first `shown` items."""
    n = counts(d)
    b = (lambda s: f"**{s}**") if bold else (lambda s: s)
    when = MOMENTS[lang](d.composed, d.composed, zone)
    words = local_time.zone_words(zone)[lang]
    if lang == 0:
        lines = [f"{b('devposture 告警摘要')}（{words} {when}）",
                 f"新增 {n[NEW]} 项 · 再次提醒 {n[REMINDER]} 项 · 已恢复 {n[RESOLVED]} 项"
                 f" · 仍未解决共 {n['open']} 项"]  # fmt: skip
    else:
        lines = [f"{b('devposture alert digest')} ({when} {words})",
                 f"{n[NEW]} new · {n[REMINDER]} {_reminders(n[REMINDER])} · {n[RESOLVED]} resolved"
                 f" · {n['open']} open in all"]  # fmt: skip
    section = None
    for item in d.items[:shown]:
        if item["status"] != section:
            section = str(item["status"])
            lines.append(b(SECTIONS[section][lang]))
        lines.append(f"- {line(item, lang, now, zone)}")
    left = len(d.items) - shown + d.more
    if left:
        lines.append(f"… 还有 {left} 项" if lang == 0 else f"… and {left} more")
    return lines


def texts(
    d: Delivery, *, bold: bool, max_bytes: int | None = None, max_items: int | None = None,
    zone: str = DEFAULT_TIME_ZONE,
) -> tuple[str, str]:  # fmt: skip
    """(Chinese, English), each listing the same items: as many as `max_items` allows and as
    keep both, joined by a blank line, within `max_bytes` of UTF-8."""
    now = d.composed

    def both(shown: int) -> tuple[str, str]:
        return (
            "\n".join(_one(d, shown, now, 0, bold=bold, zone=zone)),
            "\n".join(_one(d, shown, now, 1, bold=bold, zone=zone)),
        )

    def fits(shown: int) -> bool:
        zh, en = both(shown)
        return max_bytes is None or len(f"{zh}\n\n{en}".encode()) <= max_bytes

    low, high = 0, len(d.items) if max_items is None else min(max_items, len(d.items))
    while low < high:  # the most items that fit (fewer items never take more bytes)
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return both(low)
