"""The device page shows the device's certificate, when it expires and which CA signed it
("CA 1 (sha256:3f2a9c1e…)", as `device show` names it): during a CA rollover IT sees there
whether a device still holds the previous CA's certificate. A certificate whose CA is not
recorded (issued before schema 28) says so. Both languages, over real HTTP, on the test's
engine (the package's fleet, a real collector)."""

from __future__ import annotations

import datetime as dt
import html

from devposture.collector.issuing_ca import short_fingerprint
from tests.databases import raw
from tests.web.conftest import Fleet, fetch, login


def _expires(fleet: Fleet, device_id: str) -> dt.datetime:
    store = fleet.store()
    try:
        device = store.identity.device(device_id)
    finally:
        store.close()
    assert device is not None and device.certificate_expires_at is not None
    return device.certificate_expires_at.astimezone(dt.timezone(dt.timedelta(hours=8)))


def _dd(page: str, element: str) -> str:
    start = page.index(f'<dd id="{element}">') + len(f'<dd id="{element}">')
    return html.unescape(page[start:page.index("</dd>", start)])


def test_the_device_page_names_the_certificate_s_ca_beside_its_expiry(fleet: Fleet) -> None:
    device_id = fleet.passing_device
    short = short_fingerprint(fleet.collector.ca_fingerprint)
    until = _expires(fleet, device_id)
    english = fetch(fleet, "GET", f"/devices/{device_id}?lang=en",
                    cookie=login(fleet, lang="en")).text  # fmt: skip
    assert "<dt>Certificate valid until</dt>" in english
    assert _dd(english, "certificate-expires") == f"{until:%Y-%m-%d %H:%M} (UTC+08:00)"
    assert "<dt>Issuing CA</dt>" in english
    assert _dd(english, "certificate-ca") == f"CA 1 ({short})"
    chinese = fetch(fleet, "GET", f"/devices/{device_id}?lang=zh",
                    cookie=login(fleet, lang="zh")).text  # fmt: skip
    assert _dd(chinese, "certificate-expires") == f"{until:%Y-%m-%d %H:%M}（UTC+08:00）"
    assert short in _dd(chinese, "certificate-ca")


def test_a_certificate_whose_ca_is_not_recorded_says_so(fleet: Fleet) -> None:
    device_id = fleet.all_devices[-1]
    database = raw(fleet.collector.config.database)
    try:
        with database.transaction() as cursor:  # as an upgrade from schema 27 leaves it
            cursor.execute("UPDATE device_certificates SET issuer = NULL WHERE device_id = ?",
                           (device_id,))  # fmt: skip
        english = fetch(fleet, "GET", f"/devices/{device_id}?lang=en",
                        cookie=login(fleet, lang="en")).text  # fmt: skip
    finally:
        with database.transaction() as cursor:
            cursor.execute("UPDATE device_certificates SET issuer = ? WHERE device_id = ?",
                           (fleet.collector.ca_fingerprint, device_id))  # fmt: skip
        database.close()
    assert _dd(english, "certificate-ca").startswith("not recorded (issued before this collector")
