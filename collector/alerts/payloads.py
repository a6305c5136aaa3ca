"""What each channel is sent for a message of the outbox.

- WeCom's group robot: a markdown message, whose content WeCom limits to 4096 bytes of UTF-8
  (the list is cut to fit, "… 还有 N 项 / … and N more").
- The generic webhook: one JSON document of a versioned schema (SCHEMA, VERSION; README's
  "Alerts / 告警" describes its fields), every item with its status (`waived`, with the
  waiver's end and owner, added in version 1: a failure a waiver now covers, not fixed).
- Email: a plain-text message, Chinese then English, with the counts in the subject.

An urgent alert (`urgent`: the database refuses writes, told without a record) goes the same
ways: WeCom's markdown, a webhook document of its own schema (URGENT_SCHEMA), an email.
"""

from __future__ import annotations

import datetime as dt
import json
from email.message import EmailMessage
from email.utils import format_datetime

from devposture.collector.alerts import render, urgent
from devposture.collector.alerts.detect import iso
from devposture.collector.alerts.digest import NEW, REMINDER, RESOLVED, WAIVED
from devposture.collector.store.alerts import Delivery
from devposture.policy.time_zone import DEFAULT_TIME_ZONE, company_zone

WECOM_MAX_BYTES = 4096
SCHEMA = "devposture.alert-digest"
VERSION = 1
URGENT_SCHEMA = "devposture.alert-urgent"
URGENT_VERSION = 1
# Lines per language in the webhook's texts and in an email (the webhook's items are whole).
MAX_TEXT_ITEMS = 500


def wecom(d: Delivery, zone: str = DEFAULT_TIME_ZONE) -> bytes:
    zh, en = render.texts(d, bold=True, max_bytes=WECOM_MAX_BYTES, zone=zone)
    content = {"msgtype": "markdown", "markdown": {"content": f"{zh}\n\n{en}"}}
    return json.dumps(content, ensure_ascii=False).encode()


def webhook(d: Delivery, zone: str = DEFAULT_TIME_ZONE) -> bytes:
    zh, en = render.texts(d, bold=False, max_items=MAX_TEXT_ITEMS, zone=zone)
    n = render.counts(d)
    document = {
        "schema": SCHEMA, "version": VERSION, "digest_id": d.digest_id,
        "composed_at": iso(d.composed), "time_zone": zone,
        "counts": {"new": n[NEW], "reminder": n[REMINDER], "waived": n[WAIVED],
                   "resolved": n[RESOLVED], "open": n["open"], "more": n["more"]},
        "items": d.items, "text_zh": zh, "text_en": en,
    }  # fmt: skip
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


def email(
    d: Delivery, sender: str, recipients: tuple[str, ...], zone: str = DEFAULT_TIME_ZONE
) -> EmailMessage:
    zh, en = render.texts(d, bold=False, max_items=MAX_TEXT_ITEMS, zone=zone)
    n = render.counts(d)
    return _mail(
        f"[devposture] 告警摘要：新增 {n[NEW]} 项，仍未解决 {n['open']} 项"
        f" / Alert digest: {n[NEW]} new, {n['open']} open",
        sender, recipients, message_id=f"{d.digest_id}.{d.delivery_id}", composed=d.composed,
        zone=zone, texts=(zh, en),
    )  # fmt: skip


def _mail(
    subject: str, sender: str, recipients: tuple[str, ...], *, message_id: str,
    composed: dt.datetime, zone: str, texts: tuple[str, str],
) -> EmailMessage:  # fmt: skip
    """A plain-text message, Chinese then English, dated when it was composed."""
    zh, en = texts
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<{message_id}@devposture>"
    # When the message was composed, in the company's time zone (RFC 5322 requires a Date;
    # relays and filters mark mail without one).
    message["Date"] = format_datetime(composed.astimezone(company_zone(zone)))
    # Base64, not 8bit: a relay without 8BITMIME (RFC 6152; smtplib does not ask for it)
    # may mangle the Chinese.
    message.set_content(f"{zh}\n\n----\n\n{en}\n", cte="base64")
    return message


def urgent_wecom(n: urgent.Urgent, zone: str = DEFAULT_TIME_ZONE) -> bytes:
    zh, en = urgent.texts(n, bold=True, zone=zone)
    content = {"msgtype": "markdown", "markdown": {"content": f"{zh}\n\n{en}"}}
    return json.dumps(content, ensure_ascii=False).encode()


def urgent_webhook(n: urgent.Urgent, zone: str = DEFAULT_TIME_ZONE) -> bytes:
    zh, en = urgent.texts(n, bold=False, zone=zone)
    document = {
        "schema": URGENT_SCHEMA, "version": URGENT_VERSION, "notice_id": n.notice_id,
        "status": n.status, "kind": urgent.KIND, "collector": n.collector,
        "problem": n.refusal.code, "since": iso(n.since), "composed_at": iso(n.at),
        "time_zone": zone, "text_zh": zh, "text_en": en,
    }  # fmt: skip
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


def urgent_email(
    n: urgent.Urgent, sender: str, recipients: tuple[str, ...], zone: str = DEFAULT_TIME_ZONE
) -> EmailMessage:
    return _mail(
        urgent.subject(n), sender, recipients, message_id=n.notice_id, composed=n.at, zone=zone,
        texts=urgent.texts(n, bold=False, zone=zone),
    )  # fmt: skip
