"""A digest's words, Chinese first then English, in the company's time zone (Beijing time by
default): a heading with the counts, then the items by status (new, reminders, waived,
resolved), each one line (a device by hostname and its id's start, a failure with its clause;
a waived one with the waiver's last day and owner), cut to fit a channel's limit with "… 还有
N 项 / … and N more", then what IT does about each kind still open.

Lines name devices by hostname and checks by title; nothing else an agent reported.
"""

from __future__ import annotations

import datetime as dt

from devposture.collector.alerts import detect, local_time
from devposture.collector.alerts.digest import NEW, REMINDER, RESOLVED, STATUSES, WAIVED
from devposture.collector.store.alerts import Delivery, Detail
from devposture.policy.time_zone import DEFAULT_TIME_ZONE

SECTIONS = {
    NEW: ("新增", "New"),
    REMINDER: ("仍未解决（再次提醒）", "Still open (reminder)"),
    WAIVED: ("已豁免", "Waived"),
    RESOLVED: ("已恢复", "Resolved"),
}
# A waived failure's line: still failing, not fixed; `{until}` the waiver's last day, `{owner}`
# who owns it (as `waiver add --owner` gave).
WAIVED_LINE = (
    "{who} · {clause}{check_title_zh}：仍不合规，已豁免至 {until}（{owner}）",
    "{who} · {clause}{check_title_en}: still failing, waived until {until} ({owner})",
)


# Each kind's line (Chinese, English); `{t}` is its time, `{which}` the certificate's role,
# `{who}` the device (its hostname, then its id's start: a hostname is the device's own text,
# which two devices may share or one may copy), `{clause}` the measures' clause and a space.
LINES = {
    detect.FAILING: ("{who} · {clause}{check_title_zh}：超过宽限期仍不合规，自 {t} 起",
                     "{who} · {clause}{check_title_en}: failing past grace since {t}"),
    detect.STALE: ("{who}：失联（STALE），最后报告于 {t}",
                   "{who}: STALE, last heard {t}"),
    detect.CLONE: ("{who}：疑似克隆（其状态文件夹在另一台电脑上运行），{t} 发现",
                   "{who}: suspected clone (its state folder runs on a second computer),"
                   " flagged {t}"),
    detect.CERTIFICATE: ("采集器 {collector}：{which}将于 {t} 到期",
                         "collector {collector}: the {which} certificate expires {t}"),
    detect.DISK: ("采集器 {collector}：数据目录所在磁盘已用 {used_percent}%",
                  "collector {collector}: the disk holding the data folder is"
                  " {used_percent}% full"),
}  # fmt: skip
# What IT does about each kind still open (new or a reminder), once per digest, after the list.
TO_DO = {
    detect.FAILING: ("不合规：请设备使用人整改（在该电脑上运行 devposture-agent status 可见步骤）；"
                     "详情：devposture-collector device show 设备号",
                     "failing: ask the device's user to fix it (devposture-agent status on that"
                     " computer shows how); details: devposture-collector device show ID"),
    detect.STALE: ("失联：确认该电脑已开机联网、devposture-agent 服务在运行；不再使用的电脑："
                   "devposture-collector device retire 设备号",
                   "STALE: check that the computer is on, online and running the"
                   " devposture-agent service; one no longer used: devposture-collector device"
                   " retire ID"),
    detect.CLONE: ("疑似克隆：用 devposture-collector device show 设备号 核对两台电脑，吊销"
                   "（device revoke 设备号）后为本人的电脑重新登记",
                   "suspected clone: compare the two computers with devposture-collector device"
                   " show ID, revoke it (device revoke ID) and enroll the owner's computer again"),
    detect.CERTIFICATE: ("证书到期：服务器证书用 devposture-collector tls rotate 更换，CA 用"
                         " devposture-collector ca rollover（见 docs/certificates.md）",
                         "certificate expiring: replace the server's with devposture-collector"
                         " tls rotate, a CA with devposture-collector ca rollover"
                         " (docs/certificates.md)"),
    detect.DISK: ("磁盘将满：清理或扩容数据目录所在的磁盘",
                  "disk filling up: free space on the data folder's disk, or grow it"),
}  # fmt: skip
TO_DO_HEADING = ("处理建议", "What to do")
CERTIFICATES = {"server": ("服务器证书", "server"), "ca": ("CA 证书", "CA")}
MOMENTS = (local_time.in_chinese, local_time.in_english)


def line(d: Detail, lang: int, now: dt.datetime, zone: str = DEFAULT_TIME_ZONE) -> str:
    """An item's line in Chinese (`lang` 0) or English (1), its time in `zone`."""
    when = d.get("since", d.get("expires_at"))
    t = MOMENTS[lang](dt.datetime.fromisoformat(str(when)), now, zone) if when else ""
    which = CERTIFICATES.get(str(d.get("certificate", "")), ("", ""))[lang]
    name, device_id = str(d.get("hostname", "")), str(d.get("device_id", ""))[:8]
    who = name if not device_id or name.startswith(device_id) else (
        f"{name}（{device_id}）" if lang == 0 else f"{name} ({device_id})"
    )  # fmt: skip
    clause = f"{d['clause']} " if d.get("clause") else ""  # an item told before it was kept
    if d.get("status") == WAIVED:
        until = dt.datetime.fromisoformat(str(d["waived_until"]))
        return WAIVED_LINE[lang].format(
            **d | {"clause": clause}, who=who, until=local_time.last_day(until, now, zone, lang),
            owner=d["waiver_owner"],
        )  # fmt: skip
    return LINES[str(d["kind"])][lang].format(**d | {"clause": clause}, t=t, which=which, who=who)


def counts(d: Delivery) -> dict[str, int]:
    """Items told per status, and open in all (the newest digest's count)."""
    told = {s: sum(1 for i in d.items if i["status"] == s) for s in STATUSES}
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
    # Waived counted only in a digest that tells some (waivers are few; most digests none).
    if lang == 0:
        waived = f" · 已豁免 {n[WAIVED]} 项" if n[WAIVED] else ""
        lines = [f"{b('devposture 告警摘要')}（{words} {when}）",
                 f"新增 {n[NEW]} 项 · 再次提醒 {n[REMINDER]} 项{waived} · 已恢复 {n[RESOLVED]} 项"
                 f" · 仍未解决共 {n['open']} 项"]  # fmt: skip
    else:
        waived = f" · {n[WAIVED]} waived" if n[WAIVED] else ""
        lines = [f"{b('devposture alert digest')} ({when} {words})",
                 f"{n[NEW]} new · {n[REMINDER]} {_reminders(n[REMINDER])}{waived}"
                 f" · {n[RESOLVED]} resolved · {n['open']} open in all"]  # fmt: skip
    section = None
    for item in d.items[:shown]:
        if item["status"] != section:
            section = str(item["status"])
            lines.append(b(SECTIONS[section][lang]))
        lines.append(f"- {line(item, lang, now, zone)}")
    left = len(d.items) - shown + d.more
    if left:
        lines.append(f"… 还有 {left} 项" if lang == 0 else f"… and {left} more")
    still_open = {str(i["kind"]) for i in d.items if i["status"] in (NEW, REMINDER)}
    if still_open:
        lines.append(b(TO_DO_HEADING[lang]))
        lines += [f"- {TO_DO[kind][lang]}" for kind in detect.KINDS if kind in still_open]
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
