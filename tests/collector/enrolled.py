"""A device enrolled directly in the store (a one-use token, certificate generation 1), for
tests that write its reports through the store's own writers."""

from __future__ import annotations

import datetime as dt

from devposture.collector.store import DeviceRecord, Store
from devposture.collector.tokens import new_token


def enroll(store: Store, device_id: str, at: dt.datetime) -> None:
    token = new_token()
    store.identity.add_token(token, at, at + dt.timedelta(hours=1), uses=1)
    store.identity.enroll(token, at, DeviceRecord(device_id, "01", at + dt.timedelta(days=90)))
