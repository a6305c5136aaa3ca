"""What each channel is sent for a message of the outbox.

- WeCom's group robot: a markdown message, whose content WeCom limits to 4096 bytes of UTF-8
  (the list is cut to fit, "… 还有 N 项 / … and N more").
- The generic webhook: one JSON document of a versioned schema (SCHEMA, VERSION; README's
  "Alerts / 告警" describes its fields), every item with its status (`waived`, with the
  waiver's end and owner, added in version 1: a failure a waiver now covers, not fixed).
- Email: a plain-text message, Chinese then English, with the counts in the subject.
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import format_datetime

from devposture.collector.alerts import render
from devposture.collector.alerts.detect import iso
from devposture.collector.alerts.digest import NEW, REMINDER, RESOLVED, WAIVED
from devposture.collector.store.alerts import Delivery
from devposture.policy.time_zone import DEFAULT_TIME_ZONE, company_zone

WECOM_MAX_BYTES = 4096
SCHEMA = "devposture.alert-digest"
VERSION = 1
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
    message = EmailMessage()
    message["Subject"] = (
        f"[devposture] 告警摘要：新增 {n[NEW]} 项，仍未解决 {n['open']} 项"
        f" / Alert digest: {n[NEW]} new, {n['open']} open"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = f"<{d.digest_id}.{d.delivery_id}@devposture>"
    # When the digest was composed, in the company's time zone (RFC 5322 requires a Date;
    # relays and filters mark mail without one).
    message["Date"] = format_datetime(d.composed.astimezone(company_zone(zone)))
    # Base64, not 8bit: a relay without 8BITMIME (RFC 6152; smtplib does not ask for it)
    # may mangle the Chinese.
    message.set_content(f"{zh}\n\n----\n\n{en}\n", cte="base64")
    return message
